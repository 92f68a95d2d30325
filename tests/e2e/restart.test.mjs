// Durability: stopping the server (SIGTERM) and starting it again on the same
// data directory keeps every file, its metadata and bytes, and pending
// uploads with their parts.
import { suite } from './lib/harness.mjs';
import { assert, toFile, bytes, collect, md5 } from './lib/util.mjs';

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
