// Large transfers stream to and from disk: a 64 MB file (default run) and a
// 1 GB upload in 64 MB parts (HEARTH_E2E_LARGE=1) go up and come back through
// the SDK byte-exact while the server's peak RSS (VmHWM) stays under 64 MB.
import crypto from 'node:crypto';
import { suite } from './lib/harness.mjs';
import { assert, toFile, bytes } from './lib/util.mjs';

const MB = 1024 * 1024;
const RSS_LIMIT_KB = 64 * 1024;

async function downloadHash(client, id) {
  const r = await client.files.content(id);
  const h = crypto.createHash('sha256');
  let n = 0;
  for await (const chunk of r.body) {
    h.update(chunk);
    n += chunk.length;
  }
  return { n, hash: h.digest('hex') };
}

async function viaUploads(t, total, partSize, timing = {}) {
  const u = await t.client.uploads.create({ filename: 'big.bin', purpose: 'batch', bytes: total, mime_type: 'application/octet-stream' });
  const whole = crypto.createHash('sha256');
  const m = crypto.createHash('md5');
  const ids = [];
  for (let off = 0, i = 0; off < total; off += partSize, i++) {
    const buf = bytes(Math.min(partSize, total - off), 1000 + i);
    whole.update(buf);
    m.update(buf);
    const c0 = t.server.cpuSeconds();
    const w0 = Date.now();
    const p = await t.client.uploads.parts.create(u.id, { data: await toFile(buf, `part${i}`) });
    timing.partsWall = (timing.partsWall || 0) + (Date.now() - w0) / 1000;
    timing.partsCpu = (timing.partsCpu || 0) + t.server.cpuSeconds() - c0;
    ids.push(p.id);
  }
  const c1 = t.server.cpuSeconds();
  const w1 = Date.now();
  const done = await t.client.uploads.complete(u.id, { part_ids: ids, md5: m.digest('hex') });
  timing.completeWall = (Date.now() - w1) / 1000;
  timing.completeCpu = t.server.cpuSeconds() - c1;
  assert.equal(done.status, 'completed');
  assert.equal(done.file.bytes, total);
  return { fileId: done.file.id, hash: whole.digest('hex') };
}

function rss(t, label) {
  const m = t.server.memory();
  t.note(`${label}: server VmHWM ${(m.hwmKB / 1024).toFixed(1)} MB, VmRSS ${(m.rssKB / 1024).toFixed(1)} MB`);
  return m;
}

suite('large', {}, (test) => {
  test('64 MB file up and down with server peak RSS < 64 MB', async (t) => {
    rss(t, 'idle');
    const data = bytes(64 * MB, 42);
    const want = crypto.createHash('sha256').update(data).digest('hex');
    const f = await t.client.files.create({ file: await toFile(data, 'big64.bin'), purpose: 'user_data' });
    assert.equal(f.bytes, data.length);
    const got = await downloadHash(t.client, f.id);
    assert.equal(got.n, data.length);
    assert.equal(got.hash, want, 'bytes equal');
    const up = await viaUploads(t, 64 * MB, 16 * MB);
    const got2 = await downloadHash(t.client, up.fileId);
    assert.equal(got2.hash, up.hash, 'uploads bytes equal');
    const m = rss(t, 'after 2 x 64 MB up+down');
    assert.ok(m.hwmKB < RSS_LIMIT_KB, `peak RSS ${m.hwmKB} kB < ${RSS_LIMIT_KB} kB`);
  }, { timeoutMs: 180000 });

  test('1 GB upload (16 x 64 MB parts) and download with server peak RSS < 64 MB', async (t) => {
    const total = 1024 * MB;
    const timing = {};
    const up = await viaUploads(t, total, 64 * MB, timing);
    const c1 = t.server.cpuSeconds();
    const t1 = Date.now();
    const got = await downloadHash(t.client, up.fileId);
    const t2 = Date.now();
    const dlCpu = t.server.cpuSeconds() - c1;
    assert.equal(got.n, total);
    assert.equal(got.hash, up.hash, 'bytes equal');
    const f = (x) => x.toFixed(1);
    t.note(`1 GB: 16 parts ${f(timing.partsWall)} s wall (server CPU ${f(timing.partsCpu)} s), ` +
      `complete ${f(timing.completeWall)} s (CPU ${f(timing.completeCpu)} s), download ${f((t2 - t1) / 1000)} s (CPU ${f(dlCpu)} s)`);
    const m = rss(t, 'after 1 GB up+down');
    assert.ok(m.hwmKB < RSS_LIMIT_KB, `peak RSS ${m.hwmKB} kB < ${RSS_LIMIT_KB} kB`);
  }, { timeoutMs: 600000, skipUnless: () => (process.env.HEARTH_E2E_LARGE === '1' ? null : 'opt-in: set HEARTH_E2E_LARGE=1') });
});
