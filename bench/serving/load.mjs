// Load generator of the serving benchmark (bench/serving/run.sh): streaming
// chat completions against a running `hearth serve` over raw node:http and, for time to first token, a bare socket (no
// SDK in the timed path), parsing the SSE stream itself so each chunk gets
// its arrival time. Prints one JSON object on stdout.
//
//   node bench/serving/load.mjs ttft --base URL --key K --model M
//        [--prompt-tokens 64] [--n 10] [--tag STR] [--server-log FILE]
//     1 client over a bare TCP socket (see streamRaw), n requests one
//     after another, each with a unique prompt
//     (a random word first, so only the template's opening can be cached) and max_tokens 1 at
//     temperature 0: time from writing the request to the first chunk that
//     carries content (or, if the first token yields no text, a
//     finish_reason). Reports every sample, prompt_tokens and cached_tokens
//     from usage, and the median time to the stream's first event (the
//     role chunk, written before generation starts: HTTP + request
//     handling without the engine). Each request carries its own
//     X-Request-Id; with --server-log (the server's stderr, at log level
//     info) the server's own line for that request gives its engine
//     prefill time, so overhead_ms = this client's time to first token -
//     the engine time of that very request (no cross-process comparison).
//
//   node bench/serving/load.mjs load --base URL --key K --model M
//        [--clients 1] [--requests 2] [--max-tokens 128] [--prompt-tokens 32]
//        [--temperature 1]
//     C clients at once, each R streaming requests back to back
//     (a seed per request, ignore_eos where the server takes
//     it). tok_s = completion tokens (usage) / wall time of the whole load;
//     decode_tok_s = content chunks arriving while all C clients are past
//     their first token and none has finished its last request, per second,
//     scaled by tokens/chunk (steady-state decode with C sequences).
//
// Either mode: prompts of about --prompt-tokens tokens (template included;
// words per prompt calibrated by two short requests first); usage reports
// the exact count. --no-ignore-eos never sends the extension field.
import http from 'node:http';
import net from 'node:net';

const argv = process.argv.slice(2);
const mode = argv[0];
const opt = {
  base: 'http://127.0.0.1:8080', key: '', model: '', n: 10, clients: 1, requests: 2,
  'max-tokens': 128, 'prompt-tokens': 0, tag: '', 'ignore-eos': true, timeout: 300, temperature: 1,
  'server-log': '',
};
for (let i = 1; i < argv.length; i++) {
  const a = argv[i];
  if (a === '--no-ignore-eos') { opt['ignore-eos'] = false; continue; }
  if (!a.startsWith('--') || !(a.slice(2) in opt) || i + 1 >= argv.length) die(`bad argument ${a}`);
  const k = a.slice(2);
  opt[k] = typeof opt[k] === 'number' ? Number(argv[++i]) : argv[++i];
  if (typeof opt[k] === 'number' && !Number.isFinite(opt[k])) die(`${a} wants a number`);
}
if (mode !== 'ttft' && mode !== 'load') die('mode is ttft or load (see the header of this file)');
if (!opt.model) die('--model is required');
if (!opt['prompt-tokens']) opt['prompt-tokens'] = mode === 'ttft' ? 64 : 32;

function die(msg) {
  process.stderr.write(`load.mjs: ${msg}\n`);
  process.exit(2);
}

const url = new URL('/v1/chat/completions', opt.base);
const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });
const now = () => performance.now();

// Words that are exactly one token (with their leading space) in the
// benchmark fixture's vocabulary (checked one by one through usage), so a
// prompt's token count is the template's + a constant + its word count.
const WORDS = ('the of and to in is was for on that as by at from her but are not be or had have one all '
  + 'were they which you their will there been when who out some only them these first new may after '
  + 'over most made back a it he i we an my me so do if no up go am us its our any big how now way day '
  + 'put say off own too why yet law war end art act age air arm bad bed box boy cut dog fun god gun '
  + 'job lay lie low map net run sun tea ten top toy web yes').split(' ');
// Seeded per process, so no two runs send the same prompts (no cache hits).
let rng = ((Date.now() ^ (process.pid * 2654435761)) >>> 0) | 1;
function rand() { rng ^= rng << 13; rng ^= rng >>> 17; rng ^= rng << 5; return (rng >>> 0) / 4294967296; }
function words(n) {
  const out = [];
  for (let i = 0; i < n; i++) out.push(WORDS[Math.floor(rand() * WORDS.length)]);
  return out.join(' ');
}
// A user message of w + 1 words: "bench" and w random words (the first
// three make it unique among 10^6, so a prompt shares only the template's
// opening and that first word with earlier ones, now and then a word more).
function prompt(w) {
  return `bench ${words(w)}`;
}
// Words per prompt for about `tokens` prompt tokens (template included),
// from two probe requests (max_tokens 1): tokens = base + slope x words.
async function calibrate(tokens) {
  const probe = async (w) => (await send({
    messages: [{ role: 'user', content: prompt(w) }], max_tokens: 1, temperature: 0,
  })).usage.prompt_tokens;
  const p1 = await probe(8), p2 = await probe(40);
  const slope = Math.max(0.1, (p2 - p1) / 32), base = p1 - 8 * slope;
  return Math.max(1, Math.round((tokens - base) / slope));
}

// Handles one SSE event (its text, arrival time t) of a streaming reply into r.
function onEvent(r, ev, t) {
  for (const line of ev.split('\n')) {
    if (!line.startsWith('data:')) continue;
    const payload = line.slice(5).trim();
    if (payload === '[DONE]') { r.done = true; continue; }
    let c;
    try { c = JSON.parse(payload); } catch { r.bad = (r.bad || 0) + 1; continue; }
    if (c.usage) r.usage = c.usage;
    if (r.t_event === undefined) r.t_event = t; // first event (the role chunk)
    for (const ch of c.choices || []) {
      const text = ch.delta?.content;
      if (text) {
        r.chunks++;
        r.times.push(t);
        if (r.t_first === null) r.t_first = t;
        r.t_last = t;
      }
      if (ch.finish_reason) {
        r.finish = ch.finish_reason;
        if (r.t_first === null) r.t_first = t; // first token made no text
      }
    }
  }
}

// Splits complete SSE events off r.buf and handles them.
function drainEvents(r, t) {
  let i;
  while ((i = r.buf.indexOf('\n\n')) >= 0) {
    const ev = r.buf.slice(0, i);
    r.buf = r.buf.slice(i + 2);
    onEvent(r, ev, t);
  }
}

const newResult = () => ({
  status: 0, chunks: 0, t_first: null, t_last: null, finish: null, usage: null, times: [], buf: '',
});

// One streaming request over node:http (keep-alive agent). Resolves
// {status, error, t_sent, t_event, t_first, t_last, chunks, finish, usage}
// with times in ms (now()).
function stream(body) {
  return new Promise((resolve, reject) => {
    const data = JSON.stringify(body);
    const r = newResult();
    const req = http.request(url, {
      method: 'POST', agent,
      headers: {
        'content-type': 'application/json', 'content-length': Buffer.byteLength(data),
        ...(opt.key ? { authorization: `Bearer ${opt.key}` } : {}),
      },
      timeout: opt.timeout * 1000,
    }, (res) => {
      r.status = res.statusCode;
      res.setEncoding('utf8');
      res.on('data', (s) => {
        const t = now();
        r.buf += s;
        if (r.status === 200) drainEvents(r, t);
      });
      res.on('end', () => {
        if (r.status !== 200) {
          try { r.error = JSON.parse(r.buf).error; } catch { r.error = { message: r.buf.slice(0, 300) }; }
        }
        resolve(r);
      });
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
    r.t_sent = now();
    req.end(data);
  });
}

// The same over a bare TCP socket (connected before the clock starts,
// TCP_NODELAY, one write): node:http's client adds about 2 ms between
// req.end() and the first 'data' event on this machine (a raw-socket
// client sees the role chunk after 0.3-0.6 ms, node:http after 2.5-4.5),
// which would count as server overhead in the time to first token. Decodes
// the chunked body itself.
function streamRaw(body, id) {
  return new Promise((resolve, reject) => {
    const data = Buffer.from(JSON.stringify(body));
    const u = new URL(url);
    const head = `POST ${u.pathname} HTTP/1.1\r\nHost: ${u.host}\r\n` +
      'Content-Type: application/json\r\nConnection: close\r\n' +
      (opt.key ? `Authorization: Bearer ${opt.key}\r\n` : '') +
      (id ? `X-Request-Id: ${id}\r\n` : '') +
      `Content-Length: ${data.length}\r\n\r\n`;
    const msg = Buffer.concat([Buffer.from(head), data]);
    const r = newResult();
    let raw = Buffer.alloc(0), headerDone = false, chunked = false;
    const sock = net.connect({ host: u.hostname, port: Number(u.port) || 80 });
    sock.setNoDelay(true);
    sock.setTimeout(opt.timeout * 1000, () => sock.destroy(new Error('request timed out')));
    sock.on('connect', () => { r.t_sent = now(); sock.write(msg); });
    sock.on('data', (d) => {
      const t = now();
      raw = Buffer.concat([raw, d]);
      if (!headerDone) {
        const e = raw.indexOf('\r\n\r\n');
        if (e < 0) return;
        const h = raw.subarray(0, e).toString('latin1');
        r.status = Number(h.split(' ')[1]);
        chunked = /^transfer-encoding:\s*chunked/im.test(h);
        raw = raw.subarray(e + 4);
        headerDone = true;
      }
      if (!chunked) { r.buf += raw.toString('utf8'); raw = Buffer.alloc(0); }
      for (;;) { // whole chunks only
        if (!chunked) break;
        const e = raw.indexOf('\r\n');
        if (e < 0) break;
        const n = parseInt(raw.subarray(0, e).toString('latin1'), 16);
        if (raw.length < e + 2 + n + 2) break;
        r.buf += raw.subarray(e + 2, e + 2 + n).toString('utf8');
        raw = raw.subarray(e + 4 + n);
        if (n === 0) break;
      }
      if (r.status === 200) drainEvents(r, t);
    });
    sock.on('end', () => {
      if (r.status !== 200) {
        try { r.error = JSON.parse(r.buf).error; } catch { r.error = { message: r.buf.slice(0, 300) }; }
      }
      resolve(r);
    });
    sock.on('error', reject);
  });
}

let ignoreEos = opt['ignore-eos'];
let ignoreEosRefused = false;
// A request body; ignore_eos is a hearth extension (non-standard).
function body(extra) {
  const b = {
    model: opt.model, stream: true, stream_options: { include_usage: true }, ...extra,
  };
  if (ignoreEos) b.ignore_eos = true;
  return b;
}

// Sends b; if the server refuses ignore_eos (400 naming it), drops the
// field for the rest of the run and sends again.
async function send(extra, id) {
  const b = body(extra);
  const send1 = mode === 'ttft' ? streamRaw : stream;
  let r = await send1(b, id);
  if (r.status === 400 && b.ignore_eos && /ignore_eos/.test(JSON.stringify(r.error))) {
    ignoreEos = false; // concurrent clients may all land here: fine
    ignoreEosRefused = true;
    r = await send1(body(extra), id);
  }
  if (r.status !== 200) throw new Error(`HTTP ${r.status}: ${JSON.stringify(r.error)}`);
  if (!r.usage) throw new Error('no usage chunk (stream_options.include_usage)');
  return r;
}

const median = (v) => {
  const s = [...v].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const round3 = (x) => Math.round(x * 1000) / 1000;

async function ttft() {
  const w = await calibrate(opt['prompt-tokens']);
  const samples = [], uncached = [], firstEvent = [], ids = [];
  const run = `ttft-${process.pid}-${Date.now().toString(36)}`;
  let prompt_tokens = 0, cached = 0;
  for (let i = 0; i < opt.n; i++) {
    ids.push(`${run}-${i}`);
    const r = await send({
      messages: [{ role: 'user', content: prompt(w) }],
      max_tokens: 1, temperature: 0,
    }, ids[i]);
    samples.push(round3(r.t_first - r.t_sent));
    firstEvent.push(r.t_event - r.t_sent);
    const c = r.usage.prompt_tokens_details?.cached_tokens ?? 0;
    prompt_tokens = r.usage.prompt_tokens;
    cached = Math.max(cached, c);
    uncached.push(prompt_tokens - c);
  }
  return {
    mode: 'ttft', tag: opt.tag, n: opt.n, prompt_tokens, max_cached_tokens: cached,
    uncached_tokens_median: Math.round(median(uncached)),
    uncached_tokens_range: [Math.min(...uncached), Math.max(...uncached)],
    ttft_ms_median: round3(median(samples)), ttft_ms_min: Math.min(...samples), samples,
    first_event_ms_median: round3(median(firstEvent)),
    ignore_eos: ignoreEos, ignore_eos_refused: ignoreEosRefused,
    ...(opt['server-log'] ? await serverSide(ids, samples) : {}),
  };
}

// The server's log lines of these requests (api/gen.c's generation line:
// "<id> chat.completions ... prefill=Xms first_token=Yms ..."): per sample,
// the engine's prefill time of that request and the server's time from
// submission to its first token; the overhead is the client's time to
// first token less that engine time.
async function serverSide(ids, samples) {
  const fs = await import('node:fs');
  const want = new Map(ids.map((id, i) => [id, i]));
  const prefill = [], first = [], overhead = [];
  for (let tries = 0; tries < 20 && prefill.length < ids.length; tries++) {
    await new Promise((r) => setTimeout(r, 50)); // the line follows the stream
    prefill.length = first.length = overhead.length = 0;
    for (const line of fs.readFileSync(opt['server-log'], 'utf8').split('\n')) {
      const m = /^(\S+) chat\.completions .* prefill=([\d.]+)ms first_token=([\d.]+)ms/.exec(line);
      if (!m || !want.has(m[1])) continue;
      const i = want.get(m[1]);
      prefill.push(Number(m[2]));
      first.push(Number(m[3]));
      overhead.push(round3(samples[i] - Number(m[2])));
    }
  }
  if (!prefill.length) return { server_log_lines: 0 };
  return {
    server_log_lines: prefill.length,
    engine_prefill_ms_median: round3(median(prefill)),
    server_first_token_ms_median: round3(median(first)),
    overhead_ms_median: round3(median(overhead)),
    overhead_ms: overhead,
  };
}

async function load() {
  const C = opt.clients, R = opt.requests;
  const w = await calibrate(opt['prompt-tokens']);
  const perClient = [];
  const t0 = now();
  let seed = 1;
  await Promise.all(Array.from({ length: C }, async (_, c) => {
    const mine = [];
    for (let k = 0; k < R; k++) {
      mine.push(await send({
        messages: [{ role: 'user', content: prompt(w) }],
        max_tokens: opt['max-tokens'], temperature: opt.temperature, seed: seed++,
      }));
    }
    perClient[c] = mine;
  }));
  const wall = (now() - t0) / 1000;
  const all = perClient.flat();
  const tokens = all.reduce((s, r) => s + r.usage.completion_tokens, 0);
  const chunks = all.reduce((s, r) => s + r.chunks, 0);
  // Steady state: from when every client has its first token to when the
  // first client's last request ends.
  const from = Math.max(...perClient.map((rs) => rs[0].t_first));
  const to = Math.min(...perClient.map((rs) => rs[rs.length - 1].t_last));
  let inWindow = 0;
  for (const r of all) for (const t of r.times) if (t > from && t <= to) inWindow++;
  const perChunk = chunks ? tokens / chunks : 1;
  const finishes = {};
  for (const r of all) finishes[r.finish] = (finishes[r.finish] || 0) + 1;
  return {
    mode: 'load', tag: opt.tag, clients: C, requests: all.length, max_tokens: opt['max-tokens'],
    prompt_tokens: all[0].usage.prompt_tokens, completion_tokens: tokens, content_chunks: chunks,
    wall_s: round3(wall), tok_s: round3(tokens / wall),
    decode_window_s: round3(Math.max(0, to - from) / 1000),
    decode_tok_s: to > from ? round3((inWindow * perChunk) / ((to - from) / 1000)) : null,
    ttft_ms_median: round3(median(all.map((r) => r.t_first - r.t_sent))),
    finish_reasons: finishes, ignore_eos: ignoreEos, ignore_eos_refused: ignoreEosRefused,
  };
}

try {
  const out = mode === 'ttft' ? await ttft() : await load();
  process.stdout.write(`${JSON.stringify(out)}\n`);
  agent.destroy();
} catch (e) {
  process.stderr.write(`load.mjs: ${e.message}\n`);
  agent.destroy();
  process.exit(1);
}
