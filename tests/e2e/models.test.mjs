// Models API through the SDK: models/NAME.gguf files in the data directory
// are listed as model NAME; retrieve; 404 model_not_found; delete.
import fs from 'node:fs';
import path from 'node:path';
import { suite } from './lib/harness.mjs';
import { assert, expectApiError, tinyGguf, collect } from './lib/util.mjs';

function setup(dataDir) {
  fs.mkdirSync(path.join(dataDir, 'models'), { recursive: true });
  for (const n of ['tiny', 'other-model', 'deleteme']) fs.writeFileSync(path.join(dataDir, 'models', `${n}.gguf`), tinyGguf());
  // Not a model: wrong extension.
  fs.writeFileSync(path.join(dataDir, 'models', 'notes.txt'), 'not a model');
}

function checkModel(m, id) {
  assert.equal(m.object, 'model');
  assert.equal(m.id, id);
  assert.ok(Number.isInteger(m.created), 'created integer');
  assert.equal(typeof m.owned_by, 'string');
}

suite('models', { setup, server: { extraArgs: ['--alias', 'gpt-4o-mini=tiny'] } }, (test) => {
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

  test('retrieve', async (t) => {
    checkModel(await t.client.models.retrieve('tiny'), 'tiny');
    checkModel(await t.client.models.retrieve('other-model'), 'other-model');
  });

  test('unknown model is a 404 model_not_found', async (t) => {
    await expectApiError(t.client.models.retrieve('no-such-model'), { status: 404, code: 'model_not_found', type: 'invalid_request_error' });
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
