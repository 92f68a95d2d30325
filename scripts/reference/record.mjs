// Records llama.cpp's reference outputs for one GGUF decoder model, through
// node-llama-cpp@3.21.1 (prebuilt CPU binaries, nothing compiled), as a
// golden JSON file in the format of ../shared/testdata/models/*.golden.json:
//   tokenize[]  {text, ids (no special parsing), ids_special} without BOS
//   prompt      ids of the prompt, BOS first when the vocabulary adds it
//   positions[] {pos, argmax, top: 5 x [token, prob]} after evaluating
//               prompt[0..pos] (teacher forced; prob = softmax of raw logits)
//   greedy      {tokens (N greedy tokens after the prompt), text, steps[]
//               {token, top}}
// plus, when given, "fixture": the hearth command line that makes the file
// ("hearth fixture --preset ... --seed N", without --out) and "fixture_args"
// (the same split into argv words after "hearth fixture"), and always
// "model_sha256" of the file (a rebuilt fixture must match it byte for byte).
//
// Usage: node record.mjs --model F.gguf [--out F.golden.json]
//          [--prompt TEXT] [--greedy 32] [--threads 1]
//          [--fixture-cmd "hearth fixture ..."]
// Knows nothing about hearth's engine: it only runs llama.cpp.
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { getLlama } from "node-llama-cpp";

const TOKENIZE_TEXTS = [
  "Hello world",
  "Once upon a time, there was a little girl named Lily.",
  " leading space",
  "Numbers 3.14159 and 2048; symbols: @#$%^&*()",
  "new\nline\ttab  two  spaces",
  "déjà vu, naïve café, Äpfel, 日本語, 😀!",
  "<|im_start|>user\nHi<|im_end|>",
];
const DEFAULT_PROMPT =
  "Once upon a time, there was a little girl named Lily. She loved to play";
const TOP = 5;

function parseArgs(argv) {
  const a = { greedy: 32, threads: 1, prompt: DEFAULT_PROMPT };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    const v = argv[i + 1];
    if (!k.startsWith("--") || v === undefined)
      throw new Error(`bad argument ${k}`);
    a[k.slice(2).replace(/-([a-z])/g, (_, c) => c.toUpperCase())] = v;
    i++;
  }
  if (!a.model) throw new Error("--model F.gguf is required");
  a.greedy = Number(a.greedy);
  a.threads = Number(a.threads);
  return a;
}

// Six significant digits, like the shared goldens.
const round = (p) => Number(p.toPrecision(6));

// Top-N [token, prob] of a probabilities Map (already sorted by node-llama-cpp,
// highest first); ties keep llama.cpp's order.
function topOf(probs) {
  const out = [];
  for (const [tok, p] of probs) {
    out.push([tok, round(p)]);
    if (out.length === TOP) break;
  }
  return out;
}

function tokenizeCases(model) {
  return TOKENIZE_TEXTS.map((text) => ({
    text,
    ids: Array.from(model.tokenize(text, false)),
    ids_special: Array.from(model.tokenize(text, true)),
  }));
}

// Teacher-forced pass over the prompt: probabilities after every position.
async function teacherForced(seq, prompt) {
  const input = prompt.map((t) => [
    t,
    { generateNext: { probabilities: true } },
  ]);
  const res = await seq.controlledEvaluate(input);
  return prompt.map((_, pos) => {
    const probs = res[pos]?.next?.probabilities;
    if (!probs) throw new Error(`no probabilities at position ${pos}`);
    const top = topOf(probs);
    return { pos, argmax: top[0][0], top };
  });
}

// Greedy continuation: argmax of the raw distribution at each step.
async function greedy(seq, model, lastTop, n) {
  const tokens = [];
  const steps = [];
  let top = lastTop;
  for (let k = 0; k < n; k++) {
    const tok = top[0][0];
    tokens.push(tok);
    steps.push({ token: tok, top });
    if (k + 1 === n) break;
    const res = await seq.controlledEvaluate([
      [tok, { generateNext: { probabilities: true } }],
    ]);
    top = topOf(res[0].next.probabilities);
  }
  return { tokens, text: model.detokenize(tokens), steps };
}

async function main() {
  const a = parseArgs(process.argv.slice(2));
  const llama = await getLlama({ gpu: false, build: "never", logLevel: "error" });
  const model = await llama.loadModel({ modelPath: a.model });
  const addBos = model.tokens.shouldPrependBosToken;
  const bos = model.tokens.bos;
  const prompt = Array.from(model.tokenize(a.prompt, false));
  if (addBos && bos !== null) prompt.unshift(bos);
  const ctx = await model.createContext({
    contextSize: Math.max(256, prompt.length + a.greedy + 8),
    batchSize: 512,
    threads: a.threads,
    // Plain attention, as ../shared's goldens were recorded (node-llama-cpp's
    // "auto" turns flash attention on: f16 softmax*V, ~10% off at pos 25).
    flashAttention: false,
  });
  const seq = ctx.getSequence();
  const positions = await teacherForced(seq, prompt);
  const g = await greedy(seq, model, positions.at(-1).top, a.greedy);
  const out = {
    model: path.basename(a.model),
    model_sha256: crypto
      .createHash("sha256")
      .update(fs.readFileSync(a.model))
      .digest("hex"),
    reference: `node-llama-cpp 3.21.1 prebuilt linux-x64 CPU (llama.cpp), threads=${a.threads}`,
    ...(a.fixtureCmd
      ? {
          fixture: a.fixtureCmd,
          fixture_args: a.fixtureCmd.split(/\s+/).slice(2), // after "hearth fixture"
        }
      : {}),
    vocabularyType: model.vocabularyType,
    bos,
    eos: model.tokens.eos,
    addBos,
    tokenize: tokenizeCases(model),
    prompt_text: a.prompt,
    prompt,
    positions,
    greedy: g,
  };
  const json = JSON.stringify(out) + "\n";
  if (a.out) fs.writeFileSync(a.out, json);
  else process.stdout.write(json);
  await ctx.dispose();
  await model.dispose();
}

main().catch((e) => {
  console.error(`record.mjs: ${e.message}`);
  process.exit(1);
});
