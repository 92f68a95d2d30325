// Bad and unusual input over raw HTTP: chunked and Expect: 100-continue
// bodies, pipelining, invalid UTF-8 and deep nesting in JSON, broken query
// strings, very long URLs and headers, many parts and duplicate part ids.
// The server must answer each with a result or a clear error and stay up.
import { suite } from './lib/harness.mjs';
import { assert, expectApiError, expectErrorBody, multipart, rawRequest, rawJson, toFile } from './lib/util.mjs';

async function healthy(t) {
  const h = await t.fetch('/health', { key: false });
  await h.arrayBuffer();
  assert.equal(h.status, 200, 'server still healthy');
}

function chunked(buf, size) {
  const out = [];
  for (let i = 0; i < buf.length; i += size) {
    const c = buf.subarray(i, i + size);
    out.push(Buffer.from(c.length.toString(16) + '\r\n'), c, Buffer.from('\r\n'));
  }
  out.push(Buffer.from('0\r\n\r\n'));
  return Buffer.concat(out);
}

suite('robustness', {}, (test) => {
  test('chunked request bodies (multipart and JSON)', async (t) => {
    const m = multipart([{ name: 'purpose', value: 'user_data' }, { name: 'file', filename: 'ch.txt', data: 'chunked body '.repeat(1000) }]);
    const head = `POST /v1/files HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${t.key}\r\n` +
      `Content-Type: ${m.contentType}\r\nTransfer-Encoding: chunked\r\n\r\n`;
    const r = await rawRequest(t.server.port, { head, body: chunked(m.body, 777), after: 'wait' });
    assert.equal(r.status, 200, r.raw.slice(0, 300));
    const f = rawJson(r);
    assert.equal(f.bytes, 13000);
    assert.equal(await (await t.client.files.content(f.id)).text(), 'chunked body '.repeat(1000));
    const j = Buffer.from(JSON.stringify({ filename: 'c.txt', purpose: 'batch', bytes: 1, mime_type: 'text/plain' }));
    const head2 = `POST /v1/uploads HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${t.key}\r\n` +
      `Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n`;
    const r2 = await rawRequest(t.server.port, { head: head2, body: chunked(j, 5), after: 'wait' });
    assert.equal(r2.status, 200, r2.raw.slice(0, 300));
    assert.equal(rawJson(r2).object, 'upload');
  });

  test('Expect: 100-continue (as curl sends for large bodies)', async (t) => {
    const m = multipart([{ name: 'purpose', value: 'user_data' }, { name: 'file', filename: 'e.txt', data: 'x'.repeat(5000) }]);
    const head = `POST /v1/files HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${t.key}\r\n` +
      `Content-Type: ${m.contentType}\r\nContent-Length: ${m.body.length}\r\nExpect: 100-continue\r\n\r\n`;
    const net = await import('node:net');
    const raw = await new Promise((resolve) => {
      const s = net.connect(t.server.port, '127.0.0.1');
      let got = '';
      let sent = false;
      const timer = setTimeout(() => { s.destroy(); resolve(got); }, 5000);
      s.on('data', (d) => {
        got += d.toString('latin1');
        if (!sent && /^HTTP\/1\.1 100/.test(got)) {
          sent = true;
          got = got.slice(got.indexOf('\r\n\r\n') + 4);
          s.write(m.body);
        }
        if (sent && /\r\n\r\n[\s\S]*\}$/.test(got)) { clearTimeout(timer); s.destroy(); resolve(got); }
      });
      s.on('connect', () => s.write(head));
    });
    assert.match(raw, /^HTTP\/1\.1 200/, `after 100 Continue: ${raw.slice(0, 200)}`);
  });

  test('content types as real clients write them', async (t) => {
    const body = JSON.stringify({ filename: 'ct.txt', purpose: 'batch', bytes: 1, mime_type: 'text/plain' });
    for (const ct of ['application/json; charset=utf-8', 'Application/JSON', 'application/json;charset=UTF-8']) {
      const r = await t.json('/v1/uploads', { method: 'POST', headers: { 'content-type': ct }, body });
      assert.equal(r.status, 200, `${ct}: ${JSON.stringify(r.body)}`);
    }
    const raw = (ct, disp) => Buffer.from(
      `--qb\r\n${disp}: form-data; name="purpose"\r\n\r\nuser_data\r\n` +
      `--qb\r\n${disp}: form-data; name="file"; filename="q.txt"\r\nContent-Type: text/plain\r\n\r\nquoted\r\n--qb--\r\n`);
    for (const [ct, disp] of [['multipart/form-data; boundary="qb"', 'Content-Disposition'], ['multipart/form-data; boundary=qb', 'content-disposition'], ['multipart/form-data; charset=utf-8; boundary=qb', 'Content-Disposition']]) {
      const r = await t.json('/v1/files', { method: 'POST', headers: { 'content-type': ct }, body: raw(ct, disp) });
      assert.equal(r.status, 200, `${ct} / ${disp}: ${JSON.stringify(r.body)}`);
      assert.equal(r.body.bytes, 6);
    }
  });

  test('an HTTP/1.0 request without Host is answered', async (t) => {
    const r = await rawRequest(t.server.port, { head: `GET /v1/models HTTP/1.0\r\nAuthorization: Bearer ${t.key}\r\n\r\n`, after: 'wait', untilClose: true });
    assert.equal(r.status, 200, r.raw.slice(0, 200));
  });

  test('pipelined requests are all answered in order', async (t) => {
    const one = (id) => `GET /v1/files/file-pipe${id} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${t.key}\r\nx-request-id: pipe-${id}\r\n\r\n`;
    const head = one(1) + one(2) + one(3).replace('\r\n\r\n', '\r\nConnection: close\r\n\r\n');
    const r = await rawRequest(t.server.port, { head, after: 'wait', timeoutMs: 5000, untilClose: true });
    const ids = [...r.raw.matchAll(/x-request-id: (pipe-\d)/gi)].map((m) => m[1]);
    assert.deepEqual(ids, ['pipe-1', 'pipe-2', 'pipe-3'], r.raw.slice(0, 400));
    assert.equal((r.raw.match(/HTTP\/1\.1 404 /g) || []).length, 3);
  });

  test('invalid UTF-8 and deep nesting in JSON are 400s', async (t) => {
    const bad = Buffer.concat([Buffer.from('{"filename":"'), Buffer.from([0xff, 0xfe, 0xc3]), Buffer.from('","purpose":"batch","bytes":1,"mime_type":"x"}')]);
    for (const body of [bad, Buffer.from('['.repeat(100000) + ']'.repeat(100000)), Buffer.from('{"a":' .repeat(50000) + '1' + '}'.repeat(50000))]) {
      const r = await t.json('/v1/uploads', { method: 'POST', headers: { 'content-type': 'application/json' }, body });
      expectErrorBody(r, { status: 400, type: 'invalid_request_error' });
    }
    await healthy(t);
  });

  test('broken query strings are 400s or ignored, never 5xx', async (t) => {
    for (const q of ['limit=%zz', 'limit=1&limit=2', 'order=%00', 'after=' + 'a'.repeat(5000), '%', '&&&', 'purpose=%E2%82']) {
      const r = await t.json(`/v1/files?${q}`);
      assert.ok(r.status === 200 || r.status === 400, `${q.slice(0, 30)}: ${r.status} ${JSON.stringify(r.body).slice(0, 120)}`);
    }
    await healthy(t);
  });

  test('a very long URL and huge headers get an error, not a crash', async (t) => {
    const longUrl = `GET /v1/files/file-${'a'.repeat(200000)} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${t.key}\r\n\r\n`;
    const r = await rawRequest(t.server.port, { head: longUrl, after: 'wait', timeoutMs: 5000 });
    assert.ok(r.status === 0 || r.status >= 400, `long URL: ${r.status}`);
    const hugeHeader = `GET /v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${t.key}\r\nX-Big: ${'b'.repeat(300000)}\r\n\r\n`;
    const r2 = await rawRequest(t.server.port, { head: hugeHeader, after: 'wait', timeoutMs: 5000 });
    assert.ok(r2.status === 0 || r2.status >= 400, `huge header: ${r2.status}`);
    const many = `GET /v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${t.key}\r\n` + Array.from({ length: 5000 }, (_, i) => `X-H${i}: v`).join('\r\n') + '\r\n\r\n';
    const r3 = await rawRequest(t.server.port, { head: many, after: 'wait', timeoutMs: 5000 });
    assert.ok(r3.status === 0 || r3.status === 200 || r3.status >= 400, `many headers: ${r3.status}`);
    const garbage = await rawRequest(t.server.port, { head: 'NOT HTTP AT ALL\r\n\r\n', after: 'wait', timeoutMs: 3000 });
    assert.ok(garbage.status === 0 || garbage.status >= 400, `garbage: ${garbage.status}`);
    await healthy(t);
  });

  test('an upload of 200 small parts completes in part_ids order', async (t) => {
    const n = 200;
    const u = await t.client.uploads.create({ filename: 'many.txt', purpose: 'assistants', bytes: n * 4, mime_type: 'text/plain' });
    const ids = [];
    for (let i = 0; i < n; i++) {
      const p = await t.client.uploads.parts.create(u.id, { data: await toFile(Buffer.from(String(i).padStart(4, '0')), 'p') });
      ids.push(p.id);
    }
    ids.reverse();
    const done = await t.client.uploads.complete(u.id, { part_ids: ids });
    const want = Array.from({ length: n }, (_, i) => String(n - 1 - i).padStart(4, '0')).join('');
    assert.equal(await (await t.client.files.content(done.file.id)).text(), want);
  }, { timeoutMs: 120000 });

  test('errors quoting invalid UTF-8 input still carry a message', async (t) => {
    const m = multipart([{ name: 'purpose', value: Buffer.from([0x62, 0xff, 0x61]) }, { name: 'file', filename: 'a.txt', data: 'x' }]);
    const cases = [
      ['multipart purpose b\\xffa', await t.json('/v1/files', { method: 'POST', headers: { 'content-type': m.contentType }, body: m.body })],
      ['GET /v1/files?order=%ff', await t.json('/v1/files?order=%ff')],
      ['GET /v1/files/file-%ff', await t.json('/v1/files/file-%ff')],
      ['GET /v1/models/a%ffb', await t.json('/v1/models/a%ffb')],
    ];
    const bad = cases.filter(([, r]) => !(r.status >= 400 && r.status < 500 && typeof r.body?.error?.message === 'string'));
    assert.ok(bad.length === 0, bad.map(([w, r]) => `${w}: ${r.status} ${JSON.stringify(r.body)}`).join('\n'));
  });

  test('a filename with invalid UTF-8 is sanitized or refused (400), never a 500', async (t) => {
    const m = multipart([{ name: 'purpose', value: 'user_data' }, { name: 'file', filename: 'f.\u00d2l', data: 'x' }]);
    // multipart() writes the head as UTF-8 (c3 92): put the lone byte d2 there.
    const body = Buffer.from(m.body.toString('latin1').replace('f.\u00c3\u0092l', 'f.\u00d2l'), 'latin1');
    assert.ok(body.includes(Buffer.from([0x2e, 0xd2, 0x6c])), 'raw invalid byte in the body');
    const r = await t.json('/v1/files', { method: 'POST', headers: { 'content-type': m.contentType }, body });
    assert.ok(r.status === 200 || r.status === 400, `status ${r.status}: ${JSON.stringify(r.body)}`);
    if (r.status === 200) assert.equal(typeof r.body.filename, 'string');
    else assert.ok(r.body?.error?.message, 'error message');
  });

  test('a part id listed twice is refused', async (t) => {
    const u = await t.client.uploads.create({ filename: 'd.txt', purpose: 'assistants', bytes: 6, mime_type: 'text/plain' });
    const p = await t.client.uploads.parts.create(u.id, { data: await toFile(Buffer.from('abc'), 'p') });
    await expectApiError(t.client.uploads.complete(u.id, { part_ids: [p.id, p.id] }), { status: 400, type: 'invalid_request_error' });
  });

  test('a part without its data field is a 400 naming data', async (t) => {
    const u = await t.client.uploads.create({ filename: 'n.txt', purpose: 'assistants', bytes: 3, mime_type: 'text/plain' });
    const m = multipart([{ name: 'other', value: 'abc' }]);
    const r = await t.json(`/v1/uploads/${u.id}/parts`, { method: 'POST', headers: { 'content-type': m.contentType }, body: m.body });
    expectErrorBody(r, { status: 400, type: 'invalid_request_error', param: 'data' });
  });
});

// Deterministic PRNG (mulberry32) so a failure reproduces.
function rng(seed) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let x = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

// Flips, inserts, deletes or duplicates a few bytes of buf.
function mutate(buf, r) {
  let b = Buffer.from(buf);
  const n = 1 + Math.floor(r() * 4);
  for (let k = 0; k < n; k++) {
    const i = Math.floor(r() * (b.length + 1));
    const op = Math.floor(r() * 4);
    const byte = Buffer.from([Math.floor(r() * 256)]);
    if (op === 0 && i < b.length) b[i] = byte[0];
    else if (op === 1) b = Buffer.concat([b.subarray(0, i), byte, b.subarray(i)]);
    else if (op === 2) b = Buffer.concat([b.subarray(0, i), b.subarray(i + 1 + Math.floor(r() * 8))]);
    else b = Buffer.concat([b.subarray(0, i), b.subarray(i, i + 16), b.subarray(i)]);
  }
  return b;
}

suite('mutation', {}, (test) => {
  test('mutated requests (400 by default): never a 5xx, always the error format, server stays up', async (t) => {
    const seed = Number(process.env.HEARTH_E2E_SEED || 20261125);
    const count = Number(process.env.HEARTH_E2E_MUTATIONS || 400);
    t.note(`seed ${seed} (HEARTH_E2E_SEED), ${count} requests (HEARTH_E2E_MUTATIONS)`);
    const r = rng(seed);
    const u = await t.client.uploads.create({ filename: 'm.txt', purpose: 'batch', bytes: 1 << 20, mime_type: 'text/plain' });
    const p = await t.client.uploads.parts.create(u.id, { data: await toFile(Buffer.from('seed'), 'p') });
    const mp = multipart([{ name: 'purpose', value: 'batch' }, { name: 'expires_after[anchor]', value: 'created_at' }, { name: 'expires_after[seconds]', value: '3600' }, { name: 'file', filename: 'f.jsonl', data: '{"a":1}\n' }], 'fuzzBoundary');
    const part = multipart([{ name: 'data', filename: 'blob', data: 'hello part' }], 'fuzzBoundary');
    const seeds = [
      ['/v1/uploads', 'application/json', Buffer.from(JSON.stringify({ filename: 'a.jsonl', purpose: 'batch', bytes: 10, mime_type: 'text/jsonl', expires_after: { anchor: 'created_at', seconds: 3600 } }))],
      [`/v1/uploads/${u.id}/complete`, 'application/json', Buffer.from(JSON.stringify({ part_ids: [p.id], md5: 'd41d8cd98f00b204e9800998ecf8427e' }))],
      ['/v1/files', 'multipart/form-data; boundary=fuzzBoundary', mp.body],
      [`/v1/uploads/${u.id}/parts`, 'multipart/form-data; boundary=fuzzBoundary', part.body],
    ];
    const bad = [];
    const statuses = {};
    for (let i = 0; i < count; i++) {
      const [path, ct, body] = seeds[i % seeds.length];
      const mutated = mutate(body, r);
      const res = await t.json(path, { method: 'POST', headers: { 'content-type': ct }, body: mutated });
      statuses[res.status] = (statuses[res.status] || 0) + 1;
      if (res.status >= 500 || (res.status >= 400 && !res.body?.error?.message))
        bad.push(`#${i} ${path}: ${res.status} ${JSON.stringify(res.body).slice(0, 120)} body(b64)=${mutated.toString('base64').slice(0, res.status >= 500 ? undefined : 400)}`);
    }
    // GETs with mutated paths and query strings (bytes outside the URL-safe
    // set percent-encoded so the request line stays valid).
    const gets = ['/v1/files?limit=2&order=asc&after=file-abc&purpose=batch', `/v1/files/${u.id}/content`, '/v1/models/gpt-4o-mini', `/v1/files?after=${p.id}`];
    for (let i = 0; i < count / 4; i++) {
      const m = mutate(Buffer.from(gets[i % gets.length]), r);
      let url = '';
      for (const c of m) url += c > 0x20 && c < 0x7f && c !== 0x23 ? String.fromCharCode(c) : '%' + c.toString(16).padStart(2, '0');
      if (!url.startsWith('/')) url = '/' + url;
      let res;
      try {
        res = await t.json(url);
      } catch (e) {
        bad.push(`GET ${url}: ${e.message}`);
        continue;
      }
      statuses[res.status] = (statuses[res.status] || 0) + 1;
      if (res.status >= 500 || (res.status >= 400 && !res.body?.error?.message)) bad.push(`GET ${url}: ${res.status} ${JSON.stringify(res.body).slice(0, 160)}`);
    }
    t.note(`statuses: ${JSON.stringify(statuses)}`);
    assert.ok(bad.length === 0, `${bad.length} bad answers:\n${bad.join('\n')}`);
    await healthy(t);
  }, { timeoutMs: 120000 });
});
