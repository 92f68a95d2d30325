// Helpers shared by the e2e tests: error expectations, file payloads,
// hand-built multipart bodies and raw-socket HTTP for requests fetch cannot
// make (lying Content-Length, truncated bodies). Knows nothing about hearth's
// internals or the runner.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import net from 'node:net';
import { APIError, toFile } from 'openai';

export { assert, toFile };

// Awaits a promise that must reject with an SDK APIError of `status`;
// checks type/code/param where given. Returns the error.
export async function expectApiError(promise, { status, type, code, param } = {}) {
  let err = null;
  try {
    const v = await promise;
    assert.fail(`expected HTTP ${status} error, got success: ${JSON.stringify(v)?.slice(0, 200)}`);
  } catch (e) {
    if (!(e instanceof APIError) || e.status === undefined) throw e;
    err = e;
  }
  const body = JSON.stringify(err.error);
  if (status !== undefined) assert.equal(err.status, status, `status (body ${body})`);
  if (type !== undefined) assert.equal(err.type, type, `error.type (body ${body})`);
  if (code !== undefined) assert.equal(err.code, code, `error.code (body ${body})`);
  if (param !== undefined) assert.equal(err.param, param, `error.param (body ${body})`);
  assert.ok(typeof err.error?.message === 'string' && err.error.message.length > 0, `error.message present (body ${body})`);
  return err;
}

// Same for a raw {status, body} from Context.json().
export function expectErrorBody(r, { status, type, code, param } = {}) {
  const b = JSON.stringify(r.body);
  if (status !== undefined) assert.equal(r.status, status, `status (body ${b})`);
  assert.ok(r.body && typeof r.body.error === 'object', `error object in body ${b}`);
  const e = r.body.error;
  assert.ok(typeof e.message === 'string' && e.message.length > 0, `error.message (body ${b})`);
  if (type !== undefined) assert.equal(e.type, type, `error.type (body ${b})`);
  if (code !== undefined) assert.equal(e.code, code, `error.code (body ${b})`);
  if (param !== undefined) assert.equal(e.param, param, `error.param (body ${b})`);
  return e;
}

// Deterministic pseudo-random bytes (seeded), fast for large sizes.
export function bytes(n, seed = 1) {
  const out = Buffer.allocUnsafe(n);
  let block = crypto.createHash('sha256').update(String(seed)).digest();
  const stretched = Buffer.alloc(1 << 16);
  for (let i = 0; i < stretched.length; i += 32) {
    block = crypto.createHash('sha256').update(block).digest();
    block.copy(stretched, i);
  }
  for (let off = 0; off < n; off += stretched.length) stretched.copy(out, off, 0, Math.min(stretched.length, n - off));
  // Make every 64 KiB block distinct so reordered chunks are detected.
  for (let off = 0, i = 0; off + 8 <= n; off += stretched.length, i++) out.writeUInt32LE(i ^ seed, off);
  return out;
}

export function md5(buf) {
  return crypto.createHash('md5').update(buf).digest('hex');
}

export function sha256(buf) {
  return crypto.createHash('sha256').update(buf).digest('hex');
}

// A multipart/form-data body from [{name, value} | {name, filename, data, type}].
export function multipart(fields, boundary = '----hearthE2E' + crypto.randomBytes(8).toString('hex')) {
  const chunks = [];
  for (const f of fields) {
    let head = `--${boundary}\r\nContent-Disposition: form-data; name="${f.name}"`;
    if (f.filename !== undefined) head += `; filename="${f.filename}"\r\nContent-Type: ${f.type || 'application/octet-stream'}`;
    chunks.push(Buffer.from(head + '\r\n\r\n'), Buffer.from(f.data ?? f.value), Buffer.from('\r\n'));
  }
  chunks.push(Buffer.from(`--${boundary}--\r\n`));
  return { body: Buffer.concat(chunks), contentType: `multipart/form-data; boundary=${boundary}` };
}

// Raw HTTP/1.1 over a socket: writes head + body (maybe partial), then
// either ends the write side, destroys, or waits. Resolves {status, headers,
// body, raw} of what came back (status 0 if nothing did) when the server
// closes or timeoutMs passes (untilClose: not at the first full response).
export function rawRequest(port, { head, body = Buffer.alloc(0), after = 'end', timeoutMs = 5000, untilClose = false }) {
  return new Promise((resolve) => {
    const sock = net.connect(port, '127.0.0.1');
    const got = [];
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      clearTimeout(t);
      sock.destroy();
      resolve(parseRaw(Buffer.concat(got)));
    };
    const t = setTimeout(finish, timeoutMs);
    sock.on('data', (d) => {
      got.push(d);
      const p = parseRaw(Buffer.concat(got));
      if (p.complete && !untilClose) finish();
    });
    sock.on('error', finish);
    sock.on('close', finish);
    sock.on('connect', () => {
      sock.write(head);
      if (body.length) sock.write(body);
      if (after === 'end') sock.end();
      else if (after === 'destroy') setTimeout(() => { sock.destroy(); finish(); }, 100);
    });
  });
}

function parseRaw(buf) {
  const s = buf.toString('latin1');
  const i = s.indexOf('\r\n\r\n');
  if (i < 0) return { status: 0, headers: {}, body: '', raw: s, complete: false };
  const lines = s.slice(0, i).split('\r\n');
  const status = Number(lines[0].split(' ')[1]) || 0;
  const headers = {};
  for (const l of lines.slice(1)) {
    const j = l.indexOf(':');
    if (j > 0) headers[l.slice(0, j).trim().toLowerCase()] = l.slice(j + 1).trim();
  }
  let body = s.slice(i + 4);
  let complete = false;
  if (headers['content-length'] !== undefined) complete = Buffer.byteLength(body, 'latin1') >= Number(headers['content-length']);
  else if (/chunked/i.test(headers['transfer-encoding'] || '')) complete = /\r\n0\r\n\r\n$/.test(body) || body.startsWith('0\r\n\r\n');
  if (complete && /chunked/i.test(headers['transfer-encoding'] || '')) body = dechunk(body);
  return { status, headers, body, raw: s, complete };
}

function dechunk(s) {
  let out = '';
  for (let i = 0; ;) {
    const j = s.indexOf('\r\n', i);
    if (j < 0) return out;
    const n = parseInt(s.slice(i, j), 16);
    if (!n) return out;
    out += s.slice(j + 2, j + 2 + n);
    i = j + 2 + n + 2;
  }
}

// Parses JSON from a raw response, or null.
export function rawJson(r) {
  try {
    return JSON.parse(r.body);
  } catch {
    return null;
  }
}

// A minimal valid GGUF (v3, no tensors, no metadata) for model listing.
export function tinyGguf() {
  const b = Buffer.alloc(24);
  b.write('GGUF', 0, 'latin1');
  b.writeUInt32LE(3, 4);
  b.writeBigUInt64LE(0n, 8);
  b.writeBigUInt64LE(0n, 16);
  return b;
}

// Collects an SDK list (auto-pagination) into an array.
export async function collect(pagePromise) {
  const out = [];
  for await (const x of pagePromise) out.push(x);
  return out;
}
