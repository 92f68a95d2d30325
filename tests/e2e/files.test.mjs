// Files API through the SDK: create with every purpose and expires_after,
// list with purpose/limit/after/order and paging both ways, retrieve, content
// (bytes and content type), delete then 404. Open mode (no keys: any bearer
// token is the default project).
import { suite } from './lib/harness.mjs';
import { assert, expectApiError, expectErrorBody, toFile, bytes, collect, multipart } from './lib/util.mjs';

const SDK_PURPOSES = ['assistants', 'batch', 'fine-tune', 'vision', 'user_data', 'evals'];

function purposes(t) {
  return t.spec?.schemaEnum('FilePurpose') || SDK_PURPOSES;
}

function checkFile(f, { filename, bytes: n, purpose }) {
  assert.equal(f.object, 'file');
  assert.match(f.id, /^file-[A-Za-z0-9]+$/);
  assert.equal(f.filename, filename);
  assert.equal(f.bytes, n);
  assert.equal(f.purpose, purpose);
  assert.ok(Number.isInteger(f.created_at), 'created_at integer');
  const now = Date.now() / 1000;
  assert.ok(Math.abs(f.created_at - now) < 120, `created_at ${f.created_at} is now-ish (Unix seconds)`);
}

suite('files', {}, (test) => {
  test('create with every purpose in the spec', async (t) => {
    for (const purpose of purposes(t)) {
      const data = Buffer.from(purpose === 'batch' || purpose === 'fine-tune' ? '{"a":1}\n' : `hello ${purpose}`);
      const filename = `p-${purpose}.jsonl`;
      const f = await t.client.files.create({ file: await toFile(data, filename), purpose });
      checkFile(f, { filename, bytes: data.length, purpose });
      const g = await t.client.files.retrieve(f.id);
      assert.deepEqual(g, f, 'retrieve returns the created object');
    }
  });

  test('create with expires_after sets expires_at', async (t) => {
    const f = await t.client.files.create({
      file: await toFile(Buffer.from('x'), 'exp.txt'),
      purpose: 'user_data',
      expires_after: { anchor: 'created_at', seconds: 3600 },
    });
    assert.equal(f.expires_at, f.created_at + 3600);
    assert.equal((await t.client.files.retrieve(f.id)).expires_at, f.created_at + 3600);
  });

  test('expires_after out of range is a 400', async (t) => {
    for (const seconds of [10, 2592001]) {
      await expectApiError(
        t.client.files.create({
          file: await toFile(Buffer.from('x'), 'e.txt'),
          purpose: 'user_data',
          expires_after: { anchor: 'created_at', seconds },
        }),
        { status: 400, type: 'invalid_request_error' },
      );
    }
  });

  test('bad purpose is a 400 naming purpose', async (t) => {
    await expectApiError(t.client.files.create({ file: await toFile(Buffer.from('x'), 'a.txt'), purpose: 'nonsense' }), {
      status: 400,
      type: 'invalid_request_error',
      param: 'purpose',
    });
  });

  test('content returns the exact bytes with a content type', async (t) => {
    const data = bytes(300000, 7);
    const f = await t.client.files.create({ file: await toFile(data, 'blob.bin'), purpose: 'user_data' });
    const r = await t.client.files.content(f.id);
    assert.equal(r.status, 200);
    const got = Buffer.from(await r.arrayBuffer());
    assert.equal(got.length, data.length);
    assert.ok(got.equals(data), 'bytes equal');
    const ct = r.headers.get('content-type');
    assert.ok(ct, 'content-type present');
    assert.equal(ct.split(';')[0].trim(), 'application/octet-stream', 'a .bin file is application/octet-stream');
    const cl = r.headers.get('content-length');
    if (cl !== null) assert.equal(Number(cl), data.length);
    const txt = await t.client.files.create({ file: await toFile(Buffer.from('{"q":1}\n'), 'd.jsonl'), purpose: 'batch' });
    const r2 = await t.client.files.content(txt.id);
    assert.equal(await r2.text(), '{"q":1}\n');
    assert.ok(r2.headers.get('content-type'), 'content-type present for jsonl');
  });

  test('empty file round-trips', async (t) => {
    const f = await t.client.files.create({ file: await toFile(Buffer.alloc(0), 'empty.txt'), purpose: 'user_data' });
    assert.equal(f.bytes, 0);
    const r = await t.client.files.content(f.id);
    assert.equal((await r.arrayBuffer()).byteLength, 0);
  });

  test('delete, then retrieve/content/delete answer 404', async (t) => {
    const f = await t.client.files.create({ file: await toFile(Buffer.from('bye'), 'bye.txt'), purpose: 'assistants' });
    const d = await t.client.files.delete(f.id);
    assert.deepEqual(d, { id: f.id, object: 'file', deleted: true });
    await expectApiError(t.client.files.retrieve(f.id), { status: 404, type: 'invalid_request_error' });
    await expectApiError(t.client.files.content(f.id), { status: 404 });
    await expectApiError(t.client.files.delete(f.id), { status: 404 });
    const all = await collect(t.client.files.list());
    assert.ok(!all.some((x) => x.id === f.id), 'deleted file not listed');
  });

  test('the file part may come before purpose (streamed, then validated)', async (t) => {
    const before = (await collect(t.client.files.list())).length;
    const ok = multipart([{ name: 'file', filename: 'first.txt', data: 'file first' }, { name: 'purpose', value: 'assistants' }]);
    const r = await t.json('/v1/files', { method: 'POST', headers: { 'content-type': ok.contentType }, body: ok.body });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.filename, 'first.txt');
    assert.equal(r.body.bytes, 10);
    assert.equal(await (await t.client.files.content(r.body.id)).text(), 'file first');
    const bad = multipart([{ name: 'file', filename: 'x.txt', data: 'x'.repeat(100000) }, { name: 'purpose', value: 'nonsense' }]);
    const r2 = await t.json('/v1/files', { method: 'POST', headers: { 'content-type': bad.contentType }, body: bad.body });
    expectErrorBody(r2, { status: 400, param: 'purpose' });
    assert.equal((await collect(t.client.files.list())).length, before + 1, 'the refused upload stored nothing');
  });

  test('expires_after as multipart fields', async (t) => {
    const m = multipart([
      { name: 'purpose', value: 'batch' },
      { name: 'expires_after[anchor]', value: 'created_at' },
      { name: 'expires_after[seconds]', value: '86400' },
      { name: 'file', filename: 'e.jsonl', data: '{}\n' },
    ]);
    const r = await t.json('/v1/files', { method: 'POST', headers: { 'content-type': m.contentType }, body: m.body });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.expires_at, r.body.created_at + 86400);
    const bad = multipart([
      { name: 'purpose', value: 'batch' },
      { name: 'expires_after[anchor]', value: 'last_active_at' },
      { name: 'expires_after[seconds]', value: '86400' },
      { name: 'file', filename: 'e.jsonl', data: '{}\n' },
    ]);
    const r2 = await t.json('/v1/files', { method: 'POST', headers: { 'content-type': bad.contentType }, body: bad.body });
    expectErrorBody(r2, { status: 400, type: 'invalid_request_error' });
  });

  test('odd filenames round-trip and never escape the data dir', async (t) => {
    for (const name of ['naïve résumé.txt', '../../escape.txt', 'a;b=c.txt', 'x'.repeat(200) + '.txt']) {
      const f = await t.client.files.create({ file: await toFile(Buffer.from(name), name), purpose: 'user_data' });
      assert.ok(f.filename === name || f.filename === name.split('/').pop(), `filename ${f.filename} for ${name}`);
      assert.equal(await (await t.client.files.content(f.id)).text(), name);
    }
  });

  test('concurrent creates all land, each listed once', async (t) => {
    const made = await Promise.all(
      Array.from({ length: 24 }, async (_, i) =>
        t.client.files.create({ file: await toFile(Buffer.from(`c${i}`), `c${i}.txt`), purpose: 'vision' })),
    );
    assert.equal(new Set(made.map((f) => f.id)).size, made.length, 'unique ids');
    const listed = await collect(t.client.files.list({ purpose: 'vision', limit: 5 }));
    for (const f of made) assert.equal(listed.filter((x) => x.id === f.id).length, 1, `${f.id} listed once`);
    for (const [i, f] of made.entries()) assert.equal(await (await t.client.files.content(f.id)).text(), `c${i}`);
  });

  test('unknown file id answers 404 for every operation', async (t) => {
    const id = 'file-doesnotexist0000000000';
    await expectApiError(t.client.files.retrieve(id), { status: 404, type: 'invalid_request_error' });
    await expectApiError(t.client.files.content(id), { status: 404 });
    await expectApiError(t.client.files.delete(id), { status: 404 });
  });
});

// Paging runs in its own data dir so the list holds exactly what it made.
suite('files-paging', {}, (test) => {
  const made = [];
  const N = 7;

  test('list pages across several pages both orders, by hand and auto', async (t) => {
    for (let i = 0; i < N; i++) {
      const purpose = i % 2 ? 'batch' : 'assistants';
      const f = await t.client.files.create({ file: await toFile(Buffer.from(`file ${i}`), `f${i}.txt`), purpose });
      made.push(f);
    }
    const ids = made.map((f) => f.id);
    // Default order is desc by created_at, newest first.
    const dflt = await t.client.files.list();
    assert.equal(dflt.object ?? 'list', 'list');
    assert.deepEqual(dflt.data.map((f) => f.id), [...ids].reverse(), 'default order desc (newest first)');
    assert.equal(dflt.has_more, false);

    for (const order of ['asc', 'desc']) {
      const want = order === 'asc' ? ids : [...ids].reverse();
      // By hand, limit 2 with after cursors.
      const got = [];
      let after;
      let pages = 0;
      for (;;) {
        const page = await t.client.files.list({ limit: 2, order, ...(after ? { after } : {}) });
        pages++;
        assert.ok(page.data.length <= 2, 'limit honoured');
        got.push(...page.data.map((f) => f.id));
        if (page.data.length) {
          const body = page.getPaginatedItems();
          assert.equal(body.length, page.data.length);
        }
        if (!page.has_more) break;
        after = page.data[page.data.length - 1].id;
        assert.ok(pages < 20, 'paging terminates');
      }
      assert.deepEqual(got, want, `hand paging ${order}`);
      assert.equal(pages, Math.ceil(N / 2));
      // Auto-pagination through the SDK.
      const auto = await collect(t.client.files.list({ limit: 3, order }));
      assert.deepEqual(auto.map((f) => f.id), want, `auto paging ${order}`);
      // created_at is monotonic in the requested order.
      for (let i = 1; i < auto.length; i++)
        assert.ok(order === 'asc' ? auto[i].created_at >= auto[i - 1].created_at : auto[i].created_at <= auto[i - 1].created_at);
    }
  });

  test('first_id, last_id and has_more', async (t) => {
    if (made.length !== N) t.skip('needs the previous test to have created its files');
    const r = await t.json('/v1/files?limit=3&order=asc');
    assert.equal(r.status, 200);
    assert.equal(r.body.object, 'list');
    assert.equal(r.body.data.length, 3);
    assert.equal(r.body.first_id, made[0].id);
    assert.equal(r.body.last_id, made[2].id);
    assert.equal(r.body.has_more, true);
    const last = await t.json(`/v1/files?limit=3&order=asc&after=${made[N - 2].id}`);
    assert.deepEqual(last.body.data.map((f) => f.id), [made[N - 1].id]);
    assert.equal(last.body.has_more, false);
    const none = await t.json(`/v1/files?order=asc&after=${made[N - 1].id}`);
    assert.equal(none.status, 200);
    assert.deepEqual(none.body.data, []);
    assert.equal(none.body.has_more, false);
  });

  test('limit up to 10000 is accepted (the spec default)', async (t) => {
    const r = await t.json('/v1/files?limit=10000');
    assert.equal(r.status, 200, JSON.stringify(r.body));
  });

  test('purpose filter', async (t) => {
    if (made.length !== N) t.skip('needs the paging test to have created its files');
    const batch = await collect(t.client.files.list({ purpose: 'batch', limit: 2, order: 'asc' }));
    assert.deepEqual(batch.map((f) => f.id), made.filter((f) => f.purpose === 'batch').map((f) => f.id));
    const none = await t.client.files.list({ purpose: 'vision' });
    assert.deepEqual(none.data, []);
  });

  test('bad list parameters are 400s naming the parameter', async (t) => {
    for (const [q, param] of [['limit=0', 'limit'], ['limit=-1', 'limit'], ['limit=10001', 'limit'], ['limit=abc', 'limit'], ['limit=1.5', 'limit'], ['order=sideways', 'order']]) {
      const r = await t.json(`/v1/files?${q}`);
      assert.equal(r.status, 400, `${q}: ${JSON.stringify(r.body)}`);
      assert.equal(r.body?.error?.param, param, `${q}: ${JSON.stringify(r.body)}`);
    }
  });
});
