// Durability: stopping the server (SIGTERM) and starting it again on the same
// data directory keeps every file, its metadata and bytes, and pending
// uploads with their parts.
import { suite } from './lib/harness.mjs';
import net from 'node:net';
import { assert, toFile, bytes, collect, md5, multipart } from './lib/util.mjs';

// Starts a raw POST /v1/files upload of body, sending only its first `sent`
// bytes; returns {sock, rest(), response} where response resolves with the
// raw text the server sent back once the socket closes or answers.
function partialUpload(port, key, m, sent) {
  const sock = net.connect(port, '127.0.0.1');
  const chunks = [];
  const response = new Promise((resolve) => {
    const fin = () => resolve(Buffer.concat(chunks).toString('latin1'));
    sock.on('data', (d) => {
      chunks.push(d);
      const s = Buffer.concat(chunks).toString('latin1');
      const i = s.indexOf('\r\n\r\n');
      const cl = /content-length:\s*(\d+)/i.exec(s);
      if (i >= 0 && cl && s.length >= i + 4 + Number(cl[1])) fin();
    });
    sock.on('close', fin);
    sock.on('error', fin);
  });
  sock.write(
    `POST /v1/files HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${key}\r\n` +
      `Content-Type: ${m.contentType}\r\nContent-Length: ${m.body.length}\r\n\r\n`,
  );
  sock.write(m.body.subarray(0, sent));
  return { sock, response, rest: () => sock.write(m.body.subarray(sent)) };
}

async function snapshot(client) {
  const list = await collect(client.files.list({ order: 'asc' }));
  const contents = {};
  for (const f of list) contents[f.id] = md5(Buffer.from(await (await client.files.content(f.id)).arrayBuffer()));
  return { list, contents };
}

suite('restart', {}, (test) => {
  test('files and pending uploads survive a restart', async (t) => {
    const sizes = [0, 1, 4096, 1 << 20, 3 * 1000 * 1000 + 7];
    for (const [i, n] of sizes.entries())
      await t.client.files.create({
        file: await toFile(bytes(n, 100 + i), `r${i}.bin`),
        purpose: ['assistants', 'batch', 'user_data', 'vision', 'fine-tune'][i],
        ...(i === 2 ? { expires_after: { anchor: 'created_at', seconds: 7200 } } : {}),
      });
    const u = await t.client.uploads.create({ filename: 'up.bin', purpose: 'assistants', bytes: 6, mime_type: 'application/octet-stream' });
    const p1 = await t.client.uploads.parts.create(u.id, { data: await toFile(Buffer.from('abc'), 'p') });
    const before = await snapshot(t.client);
    assert.equal(before.list.length, sizes.length);

    const st = await t.server.stop();
    assert.ok(st && st.sig !== 'SIGKILL', 'server stopped on SIGTERM');
    assert.equal(st.code, 0, 'clean exit status after SIGTERM');
    await t.server.start({ port: t.server.port });

    const after = await snapshot(t.client);
    assert.deepEqual(after.list, before.list, 'same list, same objects');
    assert.deepEqual(after.contents, before.contents, 'same bytes');
    // The pending upload continues where it stopped.
    const p2 = await t.client.uploads.parts.create(u.id, { data: await toFile(Buffer.from('def'), 'p') });
    const done = await t.client.uploads.complete(u.id, { part_ids: [p1.id, p2.id] });
    assert.equal(done.status, 'completed');
    assert.equal(await (await t.client.files.content(done.file.id)).text(), 'abcdef');
  }, { timeoutMs: 60000 });

  test('deletes survive a restart', async (t) => {
    const f = await t.client.files.create({ file: await toFile(Buffer.from('gone'), 'g.txt'), purpose: 'user_data' });
    await t.client.files.delete(f.id);
    await t.server.restart();
    await assert.rejects(t.client.files.retrieve(f.id), (e) => e.status === 404);
  }, { timeoutMs: 60000 });
});

suite('shutdown', {}, (test) => {
  test('SIGTERM lets an in-flight upload finish, then exits 0', async (t) => {
    const data = bytes(2 * 1000 * 1000, 77);
    const m = multipart([{ name: 'purpose', value: 'user_data' }, { name: 'file', filename: 'inflight.bin', data }]);
    const up = partialUpload(t.server.port, t.key, m, 1000 * 1000);
    await new Promise((r) => setTimeout(r, 300));
    t.server.proc.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 300));
    up.rest();
    const raw = await up.response;
    up.sock.destroy();
    assert.match(raw, /^HTTP\/1\.[01] 200/, `in-flight request answered 200, got ${raw.slice(0, 200)}`);
    const f = JSON.parse(raw.slice(raw.indexOf('\r\n\r\n') + 4));
    assert.equal(f.bytes, data.length);
    const st = await t.server.stop();
    assert.equal(st.code, 0, `exit status ${JSON.stringify(st)}`);
    await t.server.start({ port: t.server.port });
    const got = Buffer.from(await (await t.client.files.content(f.id)).arrayBuffer());
    assert.ok(got.equals(data), 'the file is complete after restart');
  }, { timeoutMs: 60000 });

  test('SIGKILL mid-upload leaves no half file, and the server starts again', async (t) => {
    const before = await collect(t.client.files.list());
    const m = multipart([{ name: 'purpose', value: 'user_data' }, { name: 'file', filename: 'half.bin', data: bytes(4 * 1000 * 1000, 78) }]);
    const up = partialUpload(t.server.port, t.key, m, 2 * 1000 * 1000);
    await new Promise((r) => setTimeout(r, 300));
    t.server.proc.kill('SIGKILL');
    await up.response;
    up.sock.destroy();
    await t.server.stop();
    await t.server.start({ port: t.server.port });
    const after = await collect(t.client.files.list());
    assert.deepEqual(after.map((f) => f.id), before.map((f) => f.id), 'no file appeared');
    for (const f of after) await (await t.client.files.content(f.id)).arrayBuffer();
    const ok = await t.client.files.create({ file: await toFile(Buffer.from('fine'), 'fine.txt'), purpose: 'user_data' });
    assert.equal(ok.bytes, 4);
  }, { timeoutMs: 60000 });
});
