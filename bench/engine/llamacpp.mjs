// Reference half of the engine benchmark: llama.cpp through
// node-llama-cpp@3.21.1 (scripts/reference, prebuilt CPU binaries), timed the
// way llama-bench times it, on the same GGUF file and thread count as
// `hearth bench`:
//   prefill = one evaluation of P prompt tokens (batch of P) on an empty
//             sequence: P / seconds
//   decode  = G more tokens, one evaluation each with logits and a greedy
//             pick, after that prompt: G / seconds
// Prints one JSON object per repetition:
//   {"engine":"llama.cpp","model","threads","prompt_tokens","gen_tokens",
//    "flash_attention","prefill_tok_s","decode_tok_s","kv_mb","rss_mb"}
// (kv_mb: f16 KV cache of prompt + gen + 1 cells, as `hearth bench` sizes it)
//
// Usage: node bench/engine/llamacpp.mjs --model F.gguf [--threads 1]
//          [--prompt-tokens 512] [--gen-tokens 128] [--reps 1]
//          [--flash-attention off|on|auto]
// Knows nothing about hearth: it only runs llama.cpp.
import path from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(
  path.join(here, "../../scripts/reference/package.json"),
);

function parseArgs(argv) {
  const a = {
    threads: 1,
    promptTokens: 512,
    genTokens: 128,
    reps: 1,
    flashAttention: "off",
  };
  for (let i = 0; i < argv.length; i += 2) {
    const k = argv[i];
    const v = argv[i + 1];
    if (!k.startsWith("--") || v === undefined)
      throw new Error(`bad argument ${k}`);
    const key = k.slice(2).replace(/-([a-z])/g, (_, c) => c.toUpperCase());
    a[key] = key === "model" || key === "flashAttention" ? v : Number(v);
  }
  if (!a.model) throw new Error("--model F.gguf is required");
  return a;
}

// Deterministic prompt of ordinary (non-control) token ids.
function promptTokens(n, nVocab) {
  const out = [];
  let x = 12345;
  const lo = Math.min(260, nVocab >> 2); // past byte and control tokens
  const span = Math.max(1, Math.min(nVocab, 32000) - lo);
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) % 2147483648;
    out.push(lo + (x % span));
  }
  return out;
}

// MB of an f16 KV cache for n_ctx cells of this model (K and V, every
// layer), from the GGUF metadata: the "+ KV" of the RSS bar.
function kvMb(model, nCtx) {
  const md = model.fileInfo.architectureMetadata;
  const att = md.attention ?? {};
  const nHead = att.head_count;
  const nKv = att.head_count_kv ?? nHead;
  const kDim = att.key_length ?? md.embedding_length / nHead;
  const vDim = att.value_length ?? kDim;
  return (md.block_count * nCtx * nKv * (kDim + vDim) * 2) / 1048576;
}

const now = () => Number(process.hrtime.bigint()) / 1e9;

async function runOnce(seq, prompt, nGen) {
  await seq.clearHistory();
  const gen = seq.evaluate(prompt, { temperature: 0 });
  const t0 = now();
  let r = await gen.next(); // prompt evaluated, first token picked
  const t1 = now();
  for (let i = 0; i < nGen && !r.done; i++) r = await gen.next(r.value);
  const t2 = now();
  await gen.return();
  return {
    prefill_tok_s: prompt.length / (t1 - t0),
    decode_tok_s: nGen / (t2 - t1),
  };
}

async function main() {
  const a = parseArgs(process.argv.slice(2));
  const { getLlama } = await import(require.resolve("node-llama-cpp"));
  const llama = await getLlama({
    gpu: false,
    build: "never",
    logLevel: "error",
    maxThreads: 0, // the context's thread count is then exact
  });
  const model = await llama.loadModel({ modelPath: a.model });
  const fa = { on: true, off: false, auto: "auto" }[a.flashAttention];
  const ctx = await model.createContext({
    contextSize: a.promptTokens + a.genTokens + 64,
    batchSize: a.promptTokens,
    threads: a.threads,
    flashAttention: fa,
  });
  const seq = ctx.getSequence();
  const nVocab = model.fileInfo.metadata.tokenizer.ggml.tokens.length;
  const prompt = promptTokens(a.promptTokens, nVocab);
  await runOnce(seq, prompt, 2); // warm-up: weights paged in, buffers sized
  for (let r = 0; r < a.reps; r++) {
    const res = await runOnce(seq, prompt, a.genTokens);
    const out = {
      engine: "llama.cpp",
      model: path.basename(a.model),
      threads: a.threads,
      prompt_tokens: a.promptTokens,
      gen_tokens: a.genTokens,
      flash_attention: a.flashAttention,
      ...res,
      kv_mb: kvMb(model, a.promptTokens + a.genTokens + 1),
      rss_mb: process.memoryUsage().rss / 1048576,
    };
    console.log(JSON.stringify(out));
  }
  await ctx.dispose();
  await model.dispose();
}

main().catch((e) => {
  console.error(`llamacpp.mjs: ${e.message}`);
  process.exit(1);
});
