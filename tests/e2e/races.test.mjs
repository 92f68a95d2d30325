// Races a real client can cause: two completes of one upload, two deletes of
// one file, deleting a file while its content streams out, cancel racing a
// complete. Exactly one winner, the others clean errors, nothing half-done.
import { suite } from './lib/harness.mjs';
import { assert, toFile, bytes, collect } from './lib/util.mjs';

async function settle(promises) {
  const r = await Promise.allSettled(promises);
  return {
    ok: r.filter((x) => x.status === 'fulfilled').map((x) => x.value),
    err: r.filter((x) => x.status === 'rejected').map((x) => x.reason),
  };
}

function cleanErrors(errs, statuses) {
  for (const e of errs) assert.ok(statuses.includes(e.status) && e.error?.message, `unexpected failure: ${e.status} ${JSON.stringify(e.error) || e.message}`);
}

suite('races', {}, (test) => {
  test('two concurrent completes of one upload: one file', async (t) => {
    const before = (await collect(t.client.files.list())).length;
    const u = await t.client.uploads.create({ filename: 'race.txt', purpose: 'assistants', bytes: 300000, mime_type: 'text/plain' });
    const p = await t.client.uploads.parts.create(u.id, { data: await toFile(bytes(300000, 9), 'p') });
    const r = await settle([0, 1, 2].map(() => t.client.uploads.complete(u.id, { part_ids: [p.id] })));
    assert.equal(r.ok.length, 1, `exactly one complete succeeds (${r.ok.length})`);
    cleanErrors(r.err, [400, 409]);
    assert.equal((await collect(t.client.files.list())).length, before + 1, 'one file created');
  });

  test('two concurrent deletes of one file: one succeeds, the other 404', async (t) => {
    const f = await t.client.files.create({ file: await toFile(Buffer.from('x'), 'd.txt'), purpose: 'user_data' });
    const r = await settle([t.client.files.delete(f.id), t.client.files.delete(f.id), t.client.files.delete(f.id)]);
    assert.equal(r.ok.length, 1, `exactly one delete succeeds (${r.ok.length})`);
    cleanErrors(r.err, [404]);
  });

  test('deleting a file while its content streams out', async (t) => {
    const data = bytes(24 * 1024 * 1024, 11);
    const f = await t.client.files.create({ file: await toFile(data, 'stream.bin'), purpose: 'user_data' });
    const res = await t.client.files.content(f.id);
    const reader = res.body.getReader();
    const first = await reader.read();
    await t.client.files.delete(f.id);
    const chunks = [Buffer.from(first.value)];
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(Buffer.from(value));
    }
    assert.ok(Buffer.concat(chunks).equals(data), 'the download started before the delete completes intact');
    await assert.rejects(t.client.files.retrieve(f.id), (e) => e.status === 404);
  }, { timeoutMs: 60000 });

  test('cancel racing complete: one wins, the upload ends consistent', async (t) => {
    const u = await t.client.uploads.create({ filename: 'rc.txt', purpose: 'assistants', bytes: 3, mime_type: 'text/plain' });
    const p = await t.client.uploads.parts.create(u.id, { data: await toFile(Buffer.from('abc'), 'p') });
    const r = await settle([t.client.uploads.complete(u.id, { part_ids: [p.id] }), t.client.uploads.cancel(u.id)]);
    assert.equal(r.ok.length, 1, `exactly one of complete/cancel succeeds (${r.ok.length})`);
    cleanErrors(r.err, [400, 409]);
    const won = r.ok[0];
    if (won.status === 'completed') assert.equal(await (await t.client.files.content(won.file.id)).text(), 'abc');
    else assert.equal(won.status, 'cancelled');
  });
});
