// Turns bench/out/serving-results.jsonl (written by bench/serving/run.sh)
// into the markdown table of bench/serving/RESULTS.md: per client count the
// median over rounds of aggregate tokens/s, steady-state decode tokens/s and
// median time to first token; the 16-client / 1-client ratio (bar >= 4);
// the 1-client time to first token beside the raw engine's (hearth bench,
// same prompt length, same run) and the overhead = server - raw, computed
// per round then the median taken (bar < 2 ms); and, when the ttft rows
// carry the server's own timing (load.mjs --server-log), the overhead of
// each request against its own engine time.
//
// Usage: node bench/serving/report.mjs FILE.jsonl [command line]
import fs from 'node:fs';

const [file, cmdline = 'bench/serving/run.sh'] = process.argv.slice(2);
if (!file) {
  process.stderr.write('usage: node bench/serving/report.mjs FILE.jsonl [command line]\n');
  process.exit(2);
}
const lines = fs.readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
const meta = {};
for (const l of lines) if (l.meta) (meta[l.meta] ||= []).push(l.value);
const rows = lines.filter((l) => !l.meta && l.round > 0);

const median = (v) => {
  const s = v.filter((x) => x !== null && x !== undefined && Number.isFinite(x)).sort((a, b) => a - b);
  if (!s.length) return null;
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const fmt = (x, d = 1) => (x === null || x === undefined ? 'n/a' : x.toFixed(d));
const rounds = [...new Set(rows.map((r) => r.round))].sort((a, b) => a - b);
const out = [];
const p = (s = '') => out.push(s);

p('# Serving benchmark');
p();
p(`\`${cmdline}\` — ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC, commit ${meta.commit?.[0] ?? '?'}, `
  + `${meta.cpus?.[0] ?? '?'} CPUs (${meta.cpu?.[0] ?? '?'}), engine threads: ${meta.threads?.[0] ?? '?'}, `
  + `load average before/after: ${(meta.loadavg || []).join(' / ')}; `
  + `\`hearth serve\` flags: ${meta.serve_args?.[0] ? `\`${meta.serve_args[0]}\`` : 'defaults'}.`);
p();
p('Model: SmolLM2-135M-shaped random-weight fixture, Q8_0 (`hearth fixture --preset smollm2-135m --type q8_0 --seed 1`), '
  + `served as an alias; ${rounds.length} round(s), medians over rounds.`);
p();

// --- throughput -----------------------------------------------------------
const loads = rows.filter((r) => r.mode === 'load');
const byC = new Map();
for (const r of loads) {
  if (!byC.has(r.clients)) byC.set(r.clients, []);
  byC.get(r.clients).push(r);
}
const cs = [...byC.keys()].sort((a, b) => a - b);
const tokS = (c) => median(byC.get(c).map((r) => r.tok_s));
p('## Throughput: concurrent streaming clients');
p();
if (loads.length) {
  const l0 = loads[0];
  const eos = loads.every((r) => r.ignore_eos) ? 'ignore_eos on (EOG tokens do not stop)'
    : 'ignore_eos refused by the server: requests end where the model stops, tokens counted from usage';
  p(`Each client sends ${l0.requests / l0.clients} streaming chat completion(s) back to back, `
    + `max_tokens ${l0.max_tokens}, ~${l0.prompt_tokens}-token unique prompts, temperature 1; ${eos}.`);
  p('tok/s = completion tokens (usage) / wall time of the whole load (prefill and first tokens included); '
    + 'steady decode = tokens/s while all clients are generating; TTFT = median request → first content chunk.');
  p();
  p('| clients | tok/s | × 1 client | steady decode tok/s | TTFT ms (median) | finish reasons | per round tok/s |');
  p('| ---: | ---: | ---: | ---: | ---: | --- | --- |');
  const one = byC.has(1) ? tokS(1) : null;
  for (const c of cs) {
    const rs = byC.get(c);
    const t = tokS(c);
    const fin = {};
    for (const r of rs) for (const [k, v] of Object.entries(r.finish_reasons)) fin[k] = (fin[k] || 0) + v;
    p(`| ${c} | ${fmt(t)} | ${one ? fmt(t / one, 2) : 'n/a'} | ${fmt(median(rs.map((r) => r.decode_tok_s)))} `
      + `| ${fmt(median(rs.map((r) => r.ttft_ms_median)))} | ${Object.entries(fin).map(([k, v]) => `${k} ${v}`).join(', ')} `
      + `| ${rs.map((r) => fmt(r.tok_s)).join(', ')} |`);
  }
  const rd = rows.filter((r) => r.mode === 'raw_decode');
  if (rd.length) {
    const d = median(rd.map((r) => r.decode_tok_s));
    p();
    p(`For scale: the engine alone (\`hearth bench --prompt-tokens ${rd[0].prompt_tokens} --gen-tokens ${rd[0].gen_tokens} --reps 2\`, `
      + `greedy, best of 2, in the same rounds) decodes one sequence at ${fmt(d)} tok/s (median over rounds: ${rd.map((r) => fmt(r.decode_tok_s)).join(', ')}); `
      + `1 client through the server: ${byC.has(1) ? fmt(tokS(1) / d * 100, 0) : 'n/a'}% of it.`);
  }
  p();
} else p('(no load measurements)\n');

// --- time to first token --------------------------------------------------
const ttft = rows.filter((r) => r.mode === 'ttft');
const raw = rows.filter((r) => r.mode === 'raw');
const over = [], overMin = [];
for (const k of rounds) {
  const s = ttft.find((r) => r.round === k), e = raw.find((r) => r.round === k);
  if (s && e) {
    over.push(s.ttft_ms_median - e.ttft_ms_median);
    overMin.push(s.ttft_ms_min - e.ttft_ms);
  }
}
const sMed = median(ttft.map((r) => r.ttft_ms_median)), eMed = median(raw.map((r) => r.ttft_ms_median));
const oMed = median(over), oMin = median(overMin);
p('## Time to first token, 1 client');
p();
if (ttft.length && raw.length) {
  const uniq = (v) => [...new Set(v)].join(', ');
  const ranges = ttft.map((r) => r.uncached_tokens_range).filter(Boolean);
  p(`Server: ${ttft[0].n} requests per round, one after another, unique prompts of ${uniq(ttft.map((r) => r.prompt_tokens))} tokens `
    + `(at most ${Math.max(...ttft.map((r) => r.max_cached_tokens))} found cached; uncached `
    + `${ranges.length ? `${Math.min(...ranges.map((x) => x[0]))}–${Math.max(...ranges.map((x) => x[1]))}` : '?'}), max_tokens 1, temperature 0; `
    + 'request written → first content chunk read (bare TCP socket, SSE parsed by the client). '
    + `Raw engine: \`hearth bench --prompt-tokens N --gen-tokens 1 --reps ${raw[0].reps ?? '?'}\` `
    + 'on the same file with N = the round\'s median uncached prompt tokens (prefill with the last token\'s logits + picking the first token), '
    + 'run in the same round right after, while the server idles. Overhead = server − raw per round (medians of the round), median over rounds; '
    + '"of the minima": the same with each round\'s fastest sample.');
  p();
  p('| prompt tokens prefilled | server TTFT ms | raw engine ms | overhead ms | overhead of the minima ms | per round overhead ms | server: role chunk ms |');
  p('| ---: | ---: | ---: | ---: | ---: | --- | ---: |');
  p(`| ${uniq(raw.map((r) => r.prompt_tokens))} | ${fmt(sMed, 2)} | ${fmt(eMed, 2)} | ${fmt(oMed, 2)} | ${fmt(oMin, 2)} | ${over.map((x) => fmt(x, 2)).join(', ')} `
    + `| ${fmt(median(ttft.map((r) => r.first_event_ms_median)), 2)} |`);
  p();
  p('Role chunk: median time to the stream\'s first event, which the server writes before the request reaches the scheduler '
    + '(HTTP, body parsing, template, tokenization): the part of the overhead that is not the scheduler or the engine.');
  p();
  const side = ttft.filter((r) => r.server_log_lines > 0);
  if (side.length) {
    const all = side.flatMap((r) => r.overhead_ms);
    p('Same requests, from the inside: each request\'s own engine time (the server\'s log line for its X-Request-Id: '
      + 'the eng_decode time of the passes that prefilled it) subtracted from that request\'s time to first token at the client. '
      + 'No second process, so the engine\'s run-to-run spread cancels out; what remains is HTTP, parsing, template, tokenization, '
      + 'queueing, the scheduler, picking the first token, writing the chunk and the client reading it.');
    p();
    p('| requests | client TTFT ms | engine prefill ms (in the server) | server: submit → first token ms | overhead ms (median of per-request) | per round median ms |');
    p('| ---: | ---: | ---: | ---: | ---: | --- |');
    p(`| ${all.length} | ${fmt(median(side.map((r) => r.ttft_ms_median)), 2)} | ${fmt(median(side.map((r) => r.engine_prefill_ms_median)), 2)} `
      + `| ${fmt(median(side.map((r) => r.server_first_token_ms_median)), 2)} | ${fmt(median(all), 2)} `
      + `| ${side.map((r) => fmt(r.overhead_ms_median, 2)).join(', ')} |`);
    p();
  }
} else p('(no time-to-first-token measurements)\n');
const inside = median(ttft.filter((r) => r.server_log_lines > 0).flatMap((r) => r.overhead_ms));

// --- bars -----------------------------------------------------------------
p('## Bars (issue 4)');
p();
const hi = cs.length ? cs[cs.length - 1] : null;
const ratio = byC.has(1) && hi && hi !== 1 ? tokS(hi) / tokS(1) : null;
p('| bar | measured | met |');
p('| --- | ---: | --- |');
p(`| ${hi ?? 16} clients ≥ 4 × 1 client tok/s | ${fmt(ratio, 2)} × | ${ratio === null ? 'n/a' : ratio >= 4 ? 'yes' : 'no'} |`);
p(`| TTFT overhead (HTTP + scheduler) < 2 ms, server − raw engine process | ${fmt(oMed, 2)} ms | ${oMed === null ? 'n/a' : oMed < 2 ? 'yes' : 'no'} |`);
p(`| TTFT overhead (HTTP + scheduler) < 2 ms, per request against its own engine time | ${fmt(inside, 2)} ms | ${inside === null ? 'n/a' : inside < 2 ? 'yes' : 'no'} |`);
p();
process.stdout.write(`${out.join('\n')}\n`);
