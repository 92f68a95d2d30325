// Models API through the SDK: models/NAME.gguf files in the data directory
// are listed as model NAME; aliases (--alias flags, HEARTH_ALIASES and
// <data>/aliases.json) map application model names to them; retrieve; 404
// model_not_found with the platform's wording; delete.
import fs from 'node:fs';
import path from 'node:path';
import { suite } from './lib/harness.mjs';
import { assert, expectApiError, tinyGguf, collect } from './lib/util.mjs';

function setup(dataDir) {
  fs.mkdirSync(path.join(dataDir, 'models'), { recursive: true });
  for (const n of ['tiny', 'other-model', 'deleteme']) fs.writeFileSync(path.join(dataDir, 'models', `${n}.gguf`), tinyGguf());
  // Not a model: wrong extension.
  fs.writeFileSync(path.join(dataDir, 'models', 'notes.txt'), 'not a model');
  // Aliases from the data directory's config; one points at no model.
  fs.writeFileSync(path.join(dataDir, 'aliases.json'), JSON.stringify({ 'gpt-5.4-mini': 'other-model', dangling: 'missing-model' }));
}

// The platform's 404 for a model name it does not know.
async function expectNotFound(promise, id) {
  const e = await expectApiError(promise, { status: 404, code: 'model_not_found', type: 'invalid_request_error' });
  assert.equal(e.error.message, `The model \`${id}\` does not exist or you do not have access to it.`);
  assert.equal(e.error.param ?? null, null, 'param null');
}

function checkModel(m, id) {
  assert.equal(m.object, 'model');
  assert.equal(m.id, id);
  assert.ok(Number.isInteger(m.created), 'created integer');
  assert.equal(typeof m.owned_by, 'string');
}

suite('models', { setup, server: { extraArgs: ['--alias', 'gpt-4o-mini=tiny'], env: { HEARTH_ALIASES: 'gpt-4.1-nano=tiny,o4-mini=other-model' } } }, (test) => {
  test('list shows models/NAME.gguf as NAME', async (t) => {
    const page = await t.client.models.list();
    const ids = page.data.map((m) => m.id);
    for (const id of ['tiny', 'other-model', 'deleteme']) assert.ok(ids.includes(id), `${id} listed in ${ids}`);
    assert.ok(!ids.some((i) => /notes/.test(i)), 'non-gguf file not listed');
    for (const m of page.data) assert.equal(m.object, 'model');
    checkModel(page.data.find((m) => m.id === 'tiny'), 'tiny');
    const all = await collect(t.client.models.list());
    assert.deepEqual(all.map((m) => m.id), ids, 'SDK iteration sees the same list');
  });

  test('an alias maps an application model name to a local model', async (t) => {
    const ids = (await t.client.models.list()).data.map((m) => m.id);
    assert.ok(ids.includes('gpt-4o-mini'), `alias listed in ${ids}`);
    checkModel(await t.client.models.retrieve('gpt-4o-mini'), 'gpt-4o-mini');
  });

  test('aliases from aliases.json and HEARTH_ALIASES; a dangling alias is not a model', async (t) => {
    const list = (await t.client.models.list()).data;
    const ids = list.map((m) => m.id);
    for (const id of ['gpt-5.4-mini', 'gpt-4.1-nano', 'o4-mini']) {
      assert.ok(ids.includes(id), `${id} listed in ${ids}`);
      checkModel(await t.client.models.retrieve(id), id);
    }
    // An alias carries its target's creation time.
    const created = (id) => list.find((m) => m.id === id).created;
    assert.equal(created('gpt-5.4-mini'), created('other-model'));
    assert.equal(created('gpt-4o-mini'), created('tiny'));
    assert.ok(!ids.includes('dangling'), 'alias of a missing file not listed');
    await expectNotFound(t.client.models.retrieve('dangling'), 'dangling');
    // Listed ids are unique and sorted.
    assert.deepEqual([...new Set(ids)].sort(), ids);
  });

  test('retrieve', async (t) => {
    checkModel(await t.client.models.retrieve('tiny'), 'tiny');
    checkModel(await t.client.models.retrieve('other-model'), 'other-model');
  });

  test('unknown model is a 404 model_not_found', async (t) => {
    await expectNotFound(t.client.models.retrieve('no-such-model'), 'no-such-model');
    await expectNotFound(t.client.models.retrieve('gpt-4o'), 'gpt-4o');
    await expectApiError(t.client.models.delete('no-such-model'), { status: 404, code: 'model_not_found' });
  });

  test('delete removes the model, or refuses with an error (never a fake 200)', async (t) => {
    let d;
    try {
      d = await t.client.models.delete('deleteme');
    } catch (e) {
      if (e.status >= 400 && e.status < 500 && e.error?.message) {
        // Refused: the model must still be there.
        checkModel(await t.client.models.retrieve('deleteme'), 'deleteme');
        t.note(`delete refused: ${e.status} ${e.error.message}`);
        return;
      }
      throw e;
    }
    assert.deepEqual({ id: d.id, deleted: d.deleted }, { id: 'deleteme', deleted: true });
    await expectApiError(t.client.models.retrieve('deleteme'), { status: 404, code: 'model_not_found' });
    const ids = (await t.client.models.list()).data.map((m) => m.id);
    assert.ok(!ids.includes('deleteme'));
  });

  test('model ids with odd characters are 404s, not crashes', async (t) => {
    for (const id of ['..%2F..%2Fetc%2Fpasswd', 'a%00b', 'x'.repeat(2000), 'ft:gpt-4o-mini:org:suffix:abc']) {
      const r = await t.json(`/v1/models/${id}`);
      assert.ok(r.status === 404 || r.status === 400 || r.status === 414, `${id.slice(0, 40)}: ${r.status}`);
      assert.ok(r.body?.error?.message, 'error format');
    }
    assert.equal((await t.fetch('/health', { key: false })).status, 200);
  });
});
