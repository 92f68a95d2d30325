// The e2e test registry and per-test context: suites declare their server
// set-up (keys, data-dir contents) and tests; each test gets a context with
// an SDK client and a raw fetch, both of which validate every JSON body they
// receive against the OpenAPI spec and record violations on the running test.
// Knows nothing about how results are printed (run.mjs) or about hearth's
// internals.
import OpenAI from 'openai';

export const suites = [];

export function suite(name, opts, body) {
  const s = { name, opts: opts || {}, tests: [] };
  body((tname, a, b) => {
    const fn = typeof a === 'function' ? a : b;
    const topts = (typeof a === 'function' ? b : a) || {};
    s.tests.push({ name: tname, fn, opts: topts });
  });
  suites.push(s);
}

export class SkipError extends Error {}

// The test currently running: the validating fetch records into it.
let current = null;
let spec = null;
export function setSpec(s) {
  spec = s;
}
export function setCurrent(c) {
  current = c;
}

function urlPath(u) {
  return new URL(u).pathname;
}

// fetch that checks every JSON body against the spec; never consumes the
// caller's body (it reads a clone).
// Requests carrying the header `x-e2e-invalid: 1` are deliberately wrong and
// skip request validation; raw Context.fetch requests are never checked.
export const INVALID = { headers: { 'x-e2e-invalid': '1' } };

function checkRequest(sink, method, u, init) {
  const h = new Headers(init.headers || {});
  if (h.has('x-e2e-invalid') || h.has('x-e2e-raw')) return;
  if (!/json/.test(h.get('content-type') || '') || typeof init.body !== 'string') return;
  let body;
  try {
    body = JSON.parse(init.body);
  } catch {
    sink.violations.push(`request ${method} ${urlPath(u)}: body is not JSON`);
    return;
  }
  for (const v of spec.checkRequest(method, urlPath(u), body)) sink.violations.push(v);
}

export async function validatingFetch(url, init = {}) {
  const method = (init.method || 'GET').toUpperCase();
  if (spec && current) checkRequest(current, method, typeof url === 'string' ? url : url.url, init);
  const res = await fetch(url, init);
  if (!spec || !current) return res;
  const sink = current;
  const ct = res.headers.get('content-type') || '';
  const isJson = /\bjson\b/i.test(ct) && !/jsonl/i.test(ct);
  const p = urlPath(typeof url === 'string' ? url : url.url);
  const bodyIsBytes = method === 'GET' && /\/files\/[^/]+\/content$/.test(p) && res.status < 400;
  if (method === 'HEAD' || method === 'OPTIONS' || bodyIsBytes || /event-stream/.test(ct) || !p.startsWith('/v1/')) return res;
  if (!isJson && res.status < 400) {
    if (res.status !== 204 && res.status !== 304)
      sink.violations.push(`${method} ${p} -> ${res.status}: content-type ${JSON.stringify(ct)}, expected application/json`);
    return res;
  }
  const text = await res.clone().text();
  let body;
  if (isJson) {
    try {
      body = JSON.parse(text);
    } catch (e) {
      sink.violations.push(`${method} ${p} -> ${res.status}: body is not valid JSON (${e.message}): ${text.slice(0, 120)}`);
      return res;
    }
  }
  for (const v of spec.check(method, p, res.status, isJson, body)) sink.violations.push(v);
  return res;
}

// The object a test function receives.
export class Context {
  constructor({ server, keys, defaultKey, spec: sp, suiteName }) {
    this.server = server;
    this.keys = keys;
    this.key = defaultKey;
    this.spec = sp;
    this.suiteName = suiteName;
    this.violations = [];
    this.notes = [];
  }

  get base() {
    return this.server.base;
  }

  sdk(key = this.key, opts = {}) {
    return new OpenAI({
      apiKey: key,
      baseURL: `${this.server.base}/v1`,
      maxRetries: 0,
      timeout: 60000,
      fetch: validatingFetch,
      ...opts,
    });
  }

  get client() {
    if (!this._client || this._clientBase !== this.server.base) {
      this._client = this.sdk();
      this._clientBase = this.server.base;
    }
    return this._client;
  }

  // Raw request: path relative to the server root. init.key: bearer key
  // (default the suite's; false: no Authorization header).
  async fetch(path, init = {}) {
    const { key = this.key, headers = {}, ...rest } = init;
    const h = new Headers(headers);
    if (key !== false && !h.has('authorization')) h.set('authorization', `Bearer ${key}`);
    h.set('x-e2e-raw', '1');
    return validatingFetch(`${this.server.base}${path}`, { ...rest, headers: h, signal: rest.signal || AbortSignal.timeout(30000) });
  }

  // Raw request, JSON response: {status, headers, body}.
  async json(path, init = {}) {
    const r = await this.fetch(path, init);
    const text = await r.text();
    let body = null;
    try {
      body = text ? JSON.parse(text) : null;
    } catch {
      body = { unparsed: text.slice(0, 200) };
    }
    return { status: r.status, headers: r.headers, body };
  }

  skip(reason) {
    throw new SkipError(reason);
  }

  note(msg) {
    this.notes.push(msg);
  }
}
