// Auth and tenancy with keys configured: missing, malformed and wrong keys
// are 401s in the platform's format; one project's objects are invisible to
// another project's key (404 exactly as if absent).
import { suite } from './lib/harness.mjs';
import { assert, expectApiError, expectErrorBody, toFile, collect } from './lib/util.mjs';

suite('auth', { keys: { a: { project: 'alpha' }, a2: { project: 'alpha' }, b: { project: 'beta' }, admin: { project: 'alpha', admin: true } }, defaultKey: 'a' }, (test) => {
  test('keys are distinct and look like keys', async (t) => {
    const { a, a2, b, admin } = t.keys;
    assert.equal(new Set([a, a2, b, admin]).size, 4);
    for (const k of [a, a2, b, admin]) assert.ok(k.length >= 20 && !/\s/.test(k), `key ${k}`);
  });

  test('a valid key works', async (t) => {
    const l = await t.client.models.list();
    assert.ok(Array.isArray(l.data));
  });

  test('no Authorization header is a 401', async (t) => {
    const r = await t.json('/v1/models', { key: false, headers: { 'x-request-id': 'req_401_check' } });
    expectErrorBody(r, { status: 401 });
    assert.equal(r.headers.get('x-request-id'), 'req_401_check', 'x-request-id echoed on a 401');
    assert.ok(r.headers.get('openai-processing-ms') && r.headers.get('openai-version'), 'standard headers on a 401');
    const r2 = await t.json('/v1/files', { key: false });
    expectErrorBody(r2, { status: 401 });
  });

  test('a wrong key is a 401 invalid_api_key', async (t) => {
    const bad = t.sdk('sk-this-key-does-not-exist-0000000000');
    await expectApiError(bad.models.list(), { status: 401, code: 'invalid_api_key' });
    await expectApiError(bad.files.list(), { status: 401, code: 'invalid_api_key' });
    // A key differing from a real one in its last character.
    const k = t.keys.a;
    const near = k.slice(0, -1) + (k.endsWith('A') ? 'B' : 'A');
    await expectApiError(t.sdk(near).models.list(), { status: 401, code: 'invalid_api_key' });
  });

  test('the error never echoes the full wrong key', async (t) => {
    const secret = 'sk-e2e-secret-value-1234567890abcdef';
    const r = await t.json('/v1/models', { key: secret });
    expectErrorBody(r, { status: 401 });
    assert.ok(!JSON.stringify(r.body).includes(secret), 'full key not echoed');
  });

  test('malformed Authorization headers are 401s', async (t) => {
    for (const h of ['Basic dXNlcjpwYXNz', 'Bearer', 'Bearer ', t.keys.a, `Token ${t.keys.a}`]) {
      const r = await t.json('/v1/models', { key: false, headers: { authorization: h } });
      expectErrorBody(r, { status: 401 });
    }
  });

  test("another project's file answers 404 as if absent", async (t) => {
    const A = t.client;
    const B = t.sdk(t.keys.b);
    const f = await A.files.create({ file: await toFile(Buffer.from('alpha secret'), 'a.txt'), purpose: 'user_data' });
    const absent = await expectApiError(B.files.retrieve('file-doesnotexist000000000'), { status: 404 });
    const other = await expectApiError(B.files.retrieve(f.id), { status: 404 });
    assert.equal(other.type, absent.type, 'same error type as a missing file');
    assert.equal(other.code, absent.code, 'same error code as a missing file');
    assert.equal(
      other.error.message.replace(f.id, 'ID'),
      absent.error.message.replace('file-doesnotexist000000000', 'ID'),
      'same message as a missing file',
    );
    await expectApiError(B.files.content(f.id), { status: 404 });
    await expectApiError(B.files.delete(f.id), { status: 404 });
    const bl = await collect(B.files.list());
    assert.ok(!bl.some((x) => x.id === f.id), "not in the other project's list");
    // Still there for its own project, including another key of it.
    assert.equal((await A.files.retrieve(f.id)).id, f.id);
    assert.equal((await t.sdk(t.keys.a2).files.retrieve(f.id)).id, f.id);
    assert.equal(await (await A.files.content(f.id)).text(), 'alpha secret');
  });

  test("another project's upload answers 404", async (t) => {
    const A = t.client;
    const B = t.sdk(t.keys.b);
    const u = await A.uploads.create({ filename: 'u.txt', purpose: 'assistants', bytes: 3, mime_type: 'text/plain' });
    const p = await A.uploads.parts.create(u.id, { data: await toFile(Buffer.from('abc'), 'p') });
    await expectApiError(B.uploads.parts.create(u.id, { data: await toFile(Buffer.from('x'), 'p') }), { status: 404 });
    await expectApiError(B.uploads.complete(u.id, { part_ids: [p.id] }), { status: 404 });
    await expectApiError(B.uploads.cancel(u.id), { status: 404 });
    const done = await A.uploads.complete(u.id, { part_ids: [p.id] });
    assert.equal(done.status, 'completed');
    await expectApiError(B.files.retrieve(done.file.id), { status: 404 });
  });

  test('OpenAI-Project / OpenAI-Organization headers never widen a key', async (t) => {
    const B = t.sdk(t.keys.b);
    const fb = await B.files.create({ file: await toFile(Buffer.from('beta only'), 'b.txt'), purpose: 'user_data' });
    for (const headers of [{ 'openai-project': 'beta' }, { 'openai-project': 'proj_beta' }, { 'openai-organization': 'org-other' }]) {
      const r = await t.json(`/v1/files/${fb.id}`, { headers });
      assert.ok([401, 403, 404].includes(r.status), `${JSON.stringify(headers)}: status ${r.status}`);
      assert.ok(r.body?.error, 'error format');
    }
  });

  test("another project's id used as a list cursor behaves like an unknown id", async (t) => {
    const B = t.sdk(t.keys.b);
    const fb = await B.files.create({ file: await toFile(Buffer.from('cursor'), 'c.txt'), purpose: 'user_data' });
    await t.client.files.create({ file: await toFile(Buffer.from('mine'), 'm.txt'), purpose: 'user_data' });
    const other = await t.json(`/v1/files?after=${fb.id}`);
    const unknown = await t.json('/v1/files?after=file-doesnotexist000000000');
    assert.equal(other.status, unknown.status, `status ${other.status} vs ${unknown.status}`);
    assert.deepEqual(other.body?.data, unknown.body?.data, 'same page as for an unknown cursor');
  });

  test('lists are per project', async (t) => {
    const B = t.sdk(t.keys.b);
    const fb = await B.files.create({ file: await toFile(Buffer.from('beta'), 'b.txt'), purpose: 'user_data' });
    const la = await collect(t.client.files.list());
    const lb = await collect(B.files.list());
    assert.ok(lb.some((x) => x.id === fb.id));
    assert.ok(!la.some((x) => x.id === fb.id));
    assert.ok(lb.every((x) => !la.some((y) => y.id === x.id)), 'no file in both lists');
  });

  test('/organization/* needs an admin key', async (t) => {
    for (const p of ['/v1/organization/projects', '/v1/organization/admin_api_keys', '/v1/organization/users']) {
      const r = await t.json(p);
      assert.ok(r.status === 401 || r.status === 403, `${p} with a project key: ${r.status} ${JSON.stringify(r.body)}`);
      expectErrorBody(r, {});
      const ra = await t.json(p, { key: t.keys.admin });
      assert.ok(ra.status !== 401 && ra.status !== 403, `${p} with the admin key: ${ra.status} ${JSON.stringify(ra.body)}`);
      assert.ok(ra.status === 200 || ra.status === 501, `${p} with the admin key: implemented (200) or clearly not (501), got ${ra.status}`);
    }
  });

  test('/health needs no key', async (t) => {
    const r = await t.fetch('/health', { key: false });
    assert.equal(r.status, 200);
    await r.arrayBuffer();
  });

  test('CORS preflight needs no key', async (t) => {
    const r = await t.fetch('/v1/models', {
      method: 'OPTIONS',
      key: false,
      headers: { origin: 'http://example.test', 'access-control-request-method': 'GET', 'access-control-request-headers': 'authorization' },
    });
    await r.arrayBuffer();
    assert.ok(r.status === 200 || r.status === 204, `status ${r.status}`);
  });
});
