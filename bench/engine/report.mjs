// Turns the JSON lines written by bench/engine/run.sh into
// bench/engine/RESULTS.md: per model and thread count, hearth against
// llama.cpp (node-llama-cpp) measured side by side in the same run.
//
// Input lines: {"key","file","threads","engine":"hearth"|"llama.cpp",
//               "fa":"off"|"on"|null,"round","result":{...}}
// where result is `hearth bench --json` output or bench/engine/llamacpp.mjs
// output. For each figure the best round is reported, with the spread
// (min..max over rounds) beside it; llama.cpp's figure is the better of its
// flash-attention off/on runs (the stricter comparison).
//
// Usage: node bench/engine/report.mjs results.jsonl "command line" > RESULTS.md
// Knows nothing about either engine's internals.
import fs from "node:fs";
import os from "node:os";

const [file, command = "bench/engine/run.sh"] = process.argv.slice(2);
const lines = fs
  .readFileSync(file, "utf8")
  .split("\n")
  .filter((l) => l.trim())
  .map((l) => JSON.parse(l));
const rows = lines.filter((r) => !r.meta && r.key !== "batched");
const batched = lines.filter((r) => r.key === "batched");
const loads = lines.filter((r) => r.meta === "loadavg").map((r) => r.value);

const f1 = (x) => (x === undefined || !isFinite(x) ? "-" : x.toFixed(1));
const f2 = (x) => (x === undefined || !isFinite(x) ? "-" : x.toFixed(2));
const pct = (x) => (x === undefined || !isFinite(x) ? "-" : `${(100 * x).toFixed(0)}%`);
const spread = (xs) =>
  xs.length > 1 ? ` (${f1(Math.min(...xs))}..${f1(Math.max(...xs))})` : "";

function stats(list, field) {
  const xs = list.map((r) => r.result[field]).filter((x) => isFinite(x));
  return { best: xs.length ? Math.max(...xs) : undefined, xs };
}

// Better llama.cpp configuration for a field, and its stats.
function bestRef(refs, field) {
  let out = { best: undefined, xs: [], fa: "-" };
  for (const fa of ["off", "on"]) {
    const s = stats(refs.filter((r) => r.fa === fa), field);
    if (s.best !== undefined && (out.best === undefined || s.best > out.best))
      out = { ...s, fa };
  }
  return out;
}

const groups = new Map();
for (const r of rows) {
  const k = `${r.key}\t${r.threads}`;
  if (!groups.has(k)) groups.set(k, { key: r.key, threads: r.threads, h: [], l: [] });
  groups.get(k)[r.engine === "hearth" ? "h" : "l"].push(r);
}

const out = [];
out.push("# Engine benchmark: hearth vs llama.cpp (node-llama-cpp 3.21.1)");
out.push("");
out.push(`Measured ${new Date().toISOString()} on ${os.cpus().length} x ${os.cpus()[0]?.model ?? "cpu"}, ` +
  `${(os.totalmem() / 2 ** 30).toFixed(0)} GiB; machine shared with other work, so runs alternate ` +
  "hearth / llama.cpp and every figure is the best round with the spread (min..max) beside it.");
out.push("");
out.push("Reproduce:");
out.push("");
out.push("```");
out.push(command);
out.push("```");
out.push("");
out.push("Prompt 512 tokens (one batch), then 128 tokens decoded one by one with a greedy pick, " +
  "random-weight fixtures of real shapes made by `hearth fixture`. llama.cpp: the better of " +
  "flash attention off/on for each figure (column FA). Ratios are hearth / llama.cpp. " +
  "Bandwidth share = bytes of weights read per token x decode tok/s / read bandwidth measured by `hearth bench`. " +
  "`-` = not measured in this run (llama.cpp runs at --ref-threads only). " +
  "Bar: 1 thread decode >= 1.10x and prefill >= 1.00x; 2 threads decode >= 75% of bandwidth; " +
  "RSS <= file + KV + 64 MB.");
out.push("");
out.push("| model | thr | hearth prefill tok/s | llama.cpp prefill tok/s (FA) | prefill ratio | hearth decode tok/s | llama.cpp decode tok/s (FA) | decode ratio | hearth bw share | llama.cpp bw share | hearth RSS MB | file + KV MB | bar |");
out.push("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
const bws = rows.filter((r) => r.engine === "hearth").map((r) => r.result.read_bandwidth_gb_s).filter((x) => x > 0);
const machineBw = bws.length ? Math.max(...bws) : 0;
for (const g of groups.values()) {
  const hp = stats(g.h, "prefill_tok_s");
  const hd = stats(g.h, "decode_tok_s");
  const lp = bestRef(g.l, "prefill_tok_s");
  const ld = bestRef(g.l, "decode_tok_s");
  const h0 = g.h[0]?.result ?? {};
  const l0 = g.l[0]?.result ?? {};
  // Both shares: the best decode against the machine's read bandwidth, the
  // best probe of the whole run (the probe swings with other work on a
  // shared machine; the machine's bandwidth does not depend on the model).
  const bpt = h0.decode_bytes_per_token;
  const hShare = machineBw > 0 && bpt ? (bpt * hd.best) / (machineBw * 1e9) : undefined;
  const lShare = machineBw > 0 && bpt ? (bpt * ld.best) / (machineBw * 1e9) : undefined;
  const rss = g.h.length ? Math.max(...g.h.map((r) => r.result.rss_mb)) : undefined;
  const kv = l0.kv_mb ?? rows.find((r) => r.key === g.key && r.result.kv_mb !== undefined)?.result.kv_mb;
  const limit = h0.file_mb !== undefined && kv !== undefined ? h0.file_mb + kv : undefined;
  const pr = hp.best / lp.best;
  const dr = hd.best / ld.best;
  let bar = [];
  if (g.threads === 1) {
    bar.push(dr >= 1.1 ? "decode ok" : "decode BELOW");
    bar.push(pr >= 1.0 ? "prefill ok" : "prefill BELOW");
  } else if (hShare !== undefined) {
    bar.push(hShare >= 0.75 ? "bw ok" : "bw BELOW");
  }
  if (rss !== undefined && limit !== undefined)
    bar.push(rss <= limit + 64 ? "rss ok" : "rss OVER");
  out.push(`| ${g.key} | ${g.threads} | ${f1(hp.best)}${spread(hp.xs)} | ${f1(lp.best)}${spread(lp.xs)} (${lp.fa}) | ${f2(pr)} | ` +
    `${f1(hd.best)}${spread(hd.xs)} | ${f1(ld.best)}${spread(ld.xs)} (${ld.fa}) | ${f2(dr)} | ${pct(hShare)} | ${pct(lShare)} | ` +
    `${f1(rss)} | ${f1(h0.file_mb)} + ${f1(kv)} | ${bar.join(", ")} |`);
}
out.push("");
if (bws.length)
  out.push(`Read bandwidth measured by hearth bench (probes before and after decode in every run; each run's best): ${f1(Math.min(...bws))}..${f1(machineBw)} GB/s. ` +
    `Both bw shares = best decode tok/s x bytes of weights per token / ${f1(machineBw)} GB/s, the best probe of the whole run.`);
if (batched.length) {
  // best decode tok/s per number of sequences, and its ratio to 1 sequence
  const byN = new Map();
  for (const r of batched) {
    const n = r.result.parallel;
    byN.set(n, Math.max(byN.get(n) ?? 0, r.result.decode_tok_s));
  }
  const one = byN.get(1);
  out.push("");
  out.push(`Batched decode (hearth alone, ${batched[0].threads} threads, ${batched[0].file.split("/").pop()}, ` +
    "32-token prompts, each pass one token of every sequence, as the server's continuous batching runs them; best round):");
  out.push("");
  out.push("| sequences | decode tok/s (all sequences) | x 1 sequence |");
  out.push("|---:|---:|---:|");
  for (const [n, v] of [...byN.entries()].sort((a, b) => a[0] - b[0]))
    out.push(`| ${n} | ${f1(v)} | ${one ? f2(v / one) : "-"} |`);
  out.push("");
}
if (loads.length)
  out.push(`Load average (1, 5, 15 min) at start and end of the run: ${loads.join(" / ")} ` +
    `on ${os.cpus().length} cores: the other work on the machine competes for the same cores and memory bus.`);
out.push("");
out.push("Raw JSON lines of this run: `bench/out/engine-results.jsonl` (not committed).");
process.stdout.write(out.join("\n") + "\n");
