// Uploads API through the SDK: create, add parts, complete with ordered
// part_ids (md5 checked), cancel, and every refusal the issue lists (md5
// mismatch, missing part, byte count mismatch, part over 64 MB, adding to a
// cancelled or completed upload). Open mode.
import { suite, INVALID } from './lib/harness.mjs';
import { assert, expectApiError, toFile, bytes, md5 } from './lib/util.mjs';

async function newUpload(t, total, extra = {}) {
  return t.client.uploads.create({ filename: 'data.jsonl', purpose: 'batch', bytes: total, mime_type: 'text/jsonl', ...extra });
}

async function addPart(t, uploadId, buf) {
  return t.client.uploads.parts.create(uploadId, { data: await toFile(buf, 'part') });
}

suite('uploads', {}, (test) => {
  test('create returns a pending upload expiring in an hour', async (t) => {
    const u = await newUpload(t, 10);
    assert.match(u.id, /^upload_[A-Za-z0-9]+$/);
    assert.equal(u.object, 'upload');
    assert.equal(u.status, 'pending');
    assert.equal(u.bytes, 10);
    assert.equal(u.filename, 'data.jsonl');
    assert.equal(u.purpose, 'batch');
    assert.equal(u.expires_at, u.created_at + 3600);
    assert.ok(u.file === undefined || u.file === null, 'no file yet');
  });

  test('parts complete in the given order, with md5', async (t) => {
    const parts = [bytes(70000, 1), bytes(50000, 2), bytes(1234, 3)];
    const total = parts.reduce((n, b) => n + b.length, 0);
    const u = await newUpload(t, total);
    const ps = [];
    for (const b of parts) {
      const p = await addPart(t, u.id, b);
      assert.match(p.id, /^part_[A-Za-z0-9]+$/);
      assert.equal(p.object, 'upload.part');
      assert.equal(p.upload_id, u.id);
      ps.push(p);
    }
    // Complete in an order other than the one they were added in.
    const order = [2, 0, 1];
    const want = Buffer.concat(order.map((i) => parts[i]));
    const done = await t.client.uploads.complete(u.id, { part_ids: order.map((i) => ps[i].id), md5: md5(want) });
    assert.equal(done.status, 'completed');
    assert.equal(done.id, u.id);
    assert.ok(done.file, 'nested file object');
    assert.match(done.file.id, /^file-/);
    assert.equal(done.file.bytes, total);
    assert.equal(done.file.filename, 'data.jsonl');
    assert.equal(done.file.purpose, 'batch');
    const r = await t.client.files.content(done.file.id);
    const got = Buffer.from(await r.arrayBuffer());
    assert.ok(got.equals(want), 'content is the parts in part_ids order');
    const f = await t.client.files.retrieve(done.file.id);
    assert.equal(f.bytes, total);
  });

  test('parts added in parallel complete in the given order', async (t) => {
    const parts = Array.from({ length: 8 }, (_, i) => bytes(20000 + i * 1000, 50 + i));
    const total = parts.reduce((n, b) => n + b.length, 0);
    const u = await newUpload(t, total);
    const ps = await Promise.all(parts.map((b) => addPart(t, u.id, b)));
    assert.equal(new Set(ps.map((p) => p.id)).size, ps.length, 'unique part ids');
    const done = await t.client.uploads.complete(u.id, { part_ids: ps.map((p) => p.id), md5: md5(Buffer.concat(parts)) });
    const got = Buffer.from(await (await t.client.files.content(done.file.id)).arrayBuffer());
    assert.ok(got.equals(Buffer.concat(parts)));
  });

  test('expires_after on the upload applies to the file it makes', async (t) => {
    const u = await newUpload(t, 2, { expires_after: { anchor: 'created_at', seconds: 7200 } });
    const p = await addPart(t, u.id, Buffer.from('ab'));
    const done = await t.client.uploads.complete(u.id, { part_ids: [p.id] });
    assert.equal(done.file.expires_at, done.file.created_at + 7200);
  });

  test('complete without md5 works', async (t) => {
    const u = await newUpload(t, 5);
    const p = await addPart(t, u.id, Buffer.from('hello'));
    const done = await t.client.uploads.complete(u.id, { part_ids: [p.id] });
    assert.equal(done.status, 'completed');
    assert.equal(await (await t.client.files.content(done.file.id)).text(), 'hello');
  });

  test('md5 mismatch is a 400 and creates no file', async (t) => {
    const before = (await t.client.files.list()).data.length;
    const u = await newUpload(t, 3);
    const p = await addPart(t, u.id, Buffer.from('abc'));
    await expectApiError(t.client.uploads.complete(u.id, { part_ids: [p.id], md5: md5(Buffer.from('abd')) }), {
      status: 400,
      type: 'invalid_request_error',
    });
    assert.equal((await t.client.files.list()).data.length, before, 'no file created');
  });

  test('completing with a missing or unknown part is a 400', async (t) => {
    const u = await newUpload(t, 6);
    const a = await addPart(t, u.id, Buffer.from('abc'));
    await addPart(t, u.id, Buffer.from('def'));
    // Leaving one part out: the bytes no longer add up to the declared size.
    await expectApiError(t.client.uploads.complete(u.id, { part_ids: [a.id] }), { status: 400, type: 'invalid_request_error' });
    // A part id that does not exist.
    await expectApiError(t.client.uploads.complete(u.id, { part_ids: [a.id, 'part_doesnotexist000000'] }), {
      status: 400,
      type: 'invalid_request_error',
    });
  });

  test('a part of another upload cannot be used', async (t) => {
    const u1 = await newUpload(t, 3);
    const u2 = await newUpload(t, 3);
    const p1 = await addPart(t, u1.id, Buffer.from('abc'));
    await expectApiError(t.client.uploads.complete(u2.id, { part_ids: [p1.id] }), { status: 400 });
  });

  test('declared bytes not matching the parts is a 400', async (t) => {
    const u = await newUpload(t, 100);
    const p = await addPart(t, u.id, Buffer.from('only ten b'));
    await expectApiError(t.client.uploads.complete(u.id, { part_ids: [p.id] }), { status: 400, type: 'invalid_request_error' });
  });

  test('parts beyond the declared bytes are refused', async (t) => {
    const u = await newUpload(t, 4);
    await addPart(t, u.id, Buffer.from('abcd'));
    await expectApiError(addPart(t, u.id, Buffer.from('efgh')), { status: 400 });
  });

  test('cancel; then parts, complete and cancel are refused', async (t) => {
    const u = await newUpload(t, 3);
    const p = await addPart(t, u.id, Buffer.from('abc'));
    const c = await t.client.uploads.cancel(u.id);
    assert.equal(c.status, 'cancelled');
    assert.equal(c.id, u.id);
    await expectApiError(addPart(t, u.id, Buffer.from('x')), { status: 400 });
    await expectApiError(t.client.uploads.complete(u.id, { part_ids: [p.id] }), { status: 400 });
    await expectApiError(t.client.uploads.cancel(u.id), { status: 400 });
  });

  test('a completed upload takes no more parts and cannot be cancelled', async (t) => {
    const u = await newUpload(t, 1);
    const p = await addPart(t, u.id, Buffer.from('z'));
    await t.client.uploads.complete(u.id, { part_ids: [p.id] });
    await expectApiError(addPart(t, u.id, Buffer.from('x')), { status: 400 });
    await expectApiError(t.client.uploads.cancel(u.id), { status: 400 });
    await expectApiError(t.client.uploads.complete(u.id, { part_ids: [p.id] }), { status: 400 });
  });

  test('unknown upload id is a 404', async (t) => {
    const id = 'upload_doesnotexist000000';
    await expectApiError(addPart(t, id, Buffer.from('x')), { status: 404 });
    await expectApiError(t.client.uploads.complete(id, { part_ids: [] }), { status: 404 });
    await expectApiError(t.client.uploads.cancel(id), { status: 404 });
  });

  test('create validates its fields', async (t) => {
    const base = { filename: 'a.jsonl', purpose: 'batch', bytes: 10, mime_type: 'text/jsonl' };
    const cases = [
      [{ ...base, purpose: 'nonsense' }, 'purpose'],
      [{ ...base, bytes: 8 * 1024 ** 3 + 1 }, 'bytes'],
      [{ ...base, bytes: -1 }, 'bytes'],
      [{ ...base, bytes: 'ten' }, 'bytes'],
      [{ ...base, filename: 5 }, 'filename'],
      [(({ mime_type, ...r }) => r)(base), 'mime_type'],
      [(({ filename, ...r }) => r)(base), 'filename'],
    ];
    for (const [body, param] of cases)
      await expectApiError(t.client.uploads.create(body, INVALID), { status: 400, type: 'invalid_request_error', param });
  });

  test('complete validates part_ids', async (t) => {
    const u = await newUpload(t, 1);
    for (const body of [{}, { part_ids: 'part_x' }, { part_ids: [1] }])
      await expectApiError(t.client.uploads.complete(u.id, body, INVALID), { status: 400, param: 'part_ids' });
  });

  test('a part over 64 MB is a 413', { timeoutMs: 60000 }, async (t) => {
    const u = await newUpload(t, 100 * 1024 * 1024);
    await expectApiError(addPart(t, u.id, Buffer.alloc(64 * 1024 * 1024 + 1, 0x61)), { status: 413 });
    // The server is fine afterwards.
    const p = await addPart(t, u.id, Buffer.from('ok'));
    assert.equal(p.object, 'upload.part');
  });
});
