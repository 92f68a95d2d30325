// Legacy Completions (POST /v1/completions) through the SDK on random-weight
// fixture models: every prompt form, echo, suffix (fill-in-the-middle on a
// fixture with FIM tokens, 400 on one without), the legacy logprobs object
// (checked against the sampler's own figures), n / best_of, stop sequences
// spanning tokens, max_tokens 0, seed reproducibility, streaming with
// for await (each chunk checked against the spec), and every error case.
import fs from 'node:fs';
import path from 'node:path';
import { suite } from './lib/harness.mjs';
import { hearth } from './lib/server.mjs';
import { assert, expectApiError, expectErrorBody } from './lib/util.mjs';

const FIM = 'tiny'; // tiny-qwen2 (byte-level BPE, no BOS) with FIM tokens
const SPM = 'tiny-spm'; // tiny-llama (SentencePiece, adds BOS), no FIM tokens
const N_VOCAB = 1024;
const N_CTX = 512;
// tiny-qwen2 --fim 1 ends its vocabulary with <|endoftext|> <|im_start|>
// <|im_end|> <|fim_prefix|> <|fim_suffix|> <|fim_middle|>.
const ENDOFTEXT = N_VOCAB - 6;
const IM_END = N_VOCAB - 4;
const NO_EOG = { [ENDOFTEXT]: -100, [IM_END]: -100 };

async function setup(dataDir) {
  const dir = path.join(dataDir, 'models');
  fs.mkdirSync(dir, { recursive: true });
  for (const [name, args] of [
    [FIM, ['--preset', 'tiny-qwen2', '--fim', '1']],
    [SPM, ['--preset', 'tiny-llama']],
  ]) {
    const r = await hearth(['fixture', '--out', path.join(dir, `${name}.gguf`), ...args]);
    if (r.code !== 0) throw new Error(`hearth fixture ${args.join(' ')}: ${r.stderr}`);
  }
}

// Greedy, fixed-length generation (random weights may pick an end token
// early; ignore_eos is hearth's benchmark extension).
const GREEDY = { temperature: 0, ignore_eos: true };

function checkCompletion(c, { model = FIM, choices } = {}) {
  assert.equal(c.object, 'text_completion');
  assert.match(c.id, /^cmpl-[A-Za-z0-9]+$/);
  assert.ok(Number.isInteger(c.created) && Math.abs(c.created - Date.now() / 1000) < 120, 'created is now');
  assert.equal(c.model, model);
  assert.match(c.system_fingerprint, /^fp_/);
  if (choices !== undefined) assert.equal(c.choices.length, choices, 'number of choices');
  c.choices.forEach((ch, i) => {
    assert.equal(ch.index, i, 'choices in index order');
    assert.equal(typeof ch.text, 'string');
    assert.ok(['stop', 'length'].includes(ch.finish_reason), `finish_reason ${ch.finish_reason}`);
  });
  const u = c.usage;
  assert.ok(u.prompt_tokens > 0 && u.completion_tokens >= 0, JSON.stringify(u));
  assert.equal(u.total_tokens, u.prompt_tokens + u.completion_tokens);
}

// The legacy logprobs object: parallel arrays; top_logprobs hold at most
// k + 1 entries including the token itself; logprobs are <= 0.
function checkLogprobs(lp, k, { firstNull = false } = {}) {
  const n = lp.tokens.length;
  for (const f of ['token_logprobs', 'top_logprobs', 'text_offset']) assert.equal(lp[f].length, n, `${f} length`);
  for (let i = 0; i < n; i++) {
    if (i === 0 && firstNull) {
      assert.equal(lp.token_logprobs[0], null);
      assert.equal(lp.top_logprobs[0], null);
      continue;
    }
    const l = lp.token_logprobs[i];
    assert.ok(typeof l === 'number' && l <= 1e-6, `logprob ${l}`);
    const top = lp.top_logprobs[i];
    const keys = Object.keys(top);
    assert.ok(keys.length >= 1 && keys.length <= k + 1, `top_logprobs size ${keys.length} for k=${k}`);
    assert.ok(lp.tokens[i] in top, `token ${JSON.stringify(lp.tokens[i])} among its top_logprobs`);
    assert.ok(Math.abs(top[lp.tokens[i]] - l) < 1e-4, 'its top_logprobs entry is its logprob');
    const mass = Object.values(top).reduce((a, x) => a + Math.exp(x), 0);
    assert.ok(mass <= 1 + 1e-3, `probability mass ${mass}`);
    if (i > 0) assert.ok(lp.text_offset[i] >= lp.text_offset[i - 1], 'offsets increase');
  }
}

// Greedy texts of the same prompt generated in different batches (alone vs
// together) may differ where two tokens are nearly tied: multi-row and
// single-row kernels round differently. Choices carry logprobs (k >= 1):
// equal tokens pass; otherwise the first differing token must be a near-tie
// (top-2 gap < 0.1 nats) in one of the runs, noted on the test.
function sameGreedy(t, a, b, what) {
  const ta = a.logprobs.tokens, tb = b.logprobs.tokens;
  const i = ta.findIndex((x, k) => x !== tb[k]);
  if (i < 0 && ta.length === tb.length) return assert.equal(a.text, b.text, what);
  const gap = (lp) => {
    const v = Object.values(lp.top_logprobs[i] || {}).sort((x, y) => y - x);
    return v.length > 1 ? v[0] - v[1] : Infinity;
  };
  const g = Math.min(gap(a.logprobs), gap(b.logprobs));
  assert.ok(g < 0.1, `${what}: texts differ at token ${i} (${JSON.stringify(ta[i])} vs ${JSON.stringify(tb[i])}), top-2 gap ${g}`);
  t.note(`${what}: near-tie at token ${i} (gap ${g.toFixed(4)} nats) resolved differently`);
}

// Streams a completion; returns {chunks, text per index, finish per index, usage}.
async function streamed(t, body) {
  const stream = await t.client.completions.create({ ...body, stream: true });
  const out = { chunks: [], text: {}, finish: {}, usage: null, lp: {} };
  for await (const ch of stream) {
    for (const v of t.spec ? t.spec.run('/components/schemas/CreateCompletionResponse', ch, 'stream chunk') : [])
      t.violations.push(v);
    out.chunks.push(ch);
    assert.equal(ch.object, 'text_completion');
    if (ch.usage) out.usage = ch.usage;
    for (const c of ch.choices) {
      assert.equal(out.finish[c.index], undefined, `no chunk for choice ${c.index} after its finish_reason`);
      out.text[c.index] = (out.text[c.index] ?? '') + c.text;
      if (c.finish_reason) out.finish[c.index] = c.finish_reason;
      if (c.logprobs) (out.lp[c.index] ??= []).push(c.logprobs);
    }
  }
  assert.ok(out.chunks.length > 0, 'chunks');
  assert.ok(out.chunks.every((c) => c.id === out.chunks[0].id), 'one id for the stream');
  return out;
}

suite('completions', { setup, server: { extraArgs: [] } }, (test) => {
  test('string prompt: the completion object, default max_tokens 16, exact usage', async (t) => {
    const c = await t.client.completions.create({ model: FIM, prompt: 'The quick brown fox', ignore_eos: true });
    checkCompletion(c, { choices: 1 });
    assert.equal(c.choices[0].logprobs, null);
    assert.equal(c.usage.completion_tokens, 16, 'max_tokens defaults to 16');
    assert.equal(c.choices[0].finish_reason, 'length');
    const e = await t.client.completions.create({ model: FIM, prompt: 'The quick brown fox', echo: true, logprobs: 0, max_tokens: 0 });
    assert.equal(c.usage.prompt_tokens, e.choices[0].logprobs.tokens.length, 'prompt_tokens = the prompt tokens');
    assert.equal(e.usage.prompt_tokens, c.usage.prompt_tokens);
  });

  test('an end-of-generation token ends a choice with finish_reason stop', async (t) => {
    // Force <|im_end|> (the fixture's EOS) with logit_bias: the first token ends it.
    const c = await t.client.completions.create({ model: FIM, prompt: 'hello', temperature: 0, logit_bias: { [IM_END]: 100 }, max_tokens: 8 });
    assert.equal(c.choices[0].finish_reason, 'stop');
    assert.equal(c.choices[0].text, '');
    assert.ok(c.usage.completion_tokens <= 1, `completion_tokens ${c.usage.completion_tokens}`);
  });

  test('array of strings: each is its own prompt, n choices each, index = prompt * n + j', async (t) => {
    const prompts = ['one', 'two words', 'three little words'];
    const c = await t.client.completions.create({ model: FIM, prompt: prompts, n: 2, max_tokens: 3, logprobs: 2, ...GREEDY });
    checkCompletion(c, { choices: 6 });
    for (let p = 0; p < 3; p++) {
      const alone = await t.client.completions.create({ model: FIM, prompt: prompts[p], max_tokens: 3, logprobs: 2, ...GREEDY });
      sameGreedy(t, c.choices[p * 2], alone.choices[0], `prompt ${p} choice 0`);
      sameGreedy(t, c.choices[p * 2 + 1], alone.choices[0], `prompt ${p} choice 1 (greedy: same)`);
    }
    assert.equal(c.usage.completion_tokens, 6 * 3);
    const single = await Promise.all(prompts.map((p) => t.client.completions.create({ model: FIM, prompt: p, max_tokens: 1 })));
    assert.equal(c.usage.prompt_tokens, single.reduce((a, s) => a + s.usage.prompt_tokens, 0), 'prompt tokens summed over prompts');
  });

  test('token ids and arrays of token ids', async (t) => {
    const ids = [100, 200, 300, 400];
    const a = await t.client.completions.create({ model: FIM, prompt: ids, max_tokens: 4, ...GREEDY, echo: true });
    checkCompletion(a, { choices: 1 });
    assert.equal(a.usage.prompt_tokens, 4);
    const echoed = await t.client.completions.create({ model: FIM, prompt: ids, max_tokens: 0, echo: true, logprobs: 0 });
    assert.equal(echoed.choices[0].logprobs.tokens.length, 4);
    assert.ok(a.choices[0].text.startsWith(echoed.choices[0].text), 'echo of ids is their text');
    const b = await t.client.completions.create({ model: FIM, prompt: [ids, [5, 6]], max_tokens: 4, ...GREEDY });
    checkCompletion(b, { choices: 2 });
    assert.equal(b.usage.prompt_tokens, 6);
    assert.equal(a.choices[0].text, echoed.choices[0].text + b.choices[0].text, 'same ids, same greedy text');
  });

  test('empty prompt: generation from the start of a document', async (t) => {
    const c = await t.client.completions.create({ model: FIM, prompt: '', max_tokens: 2, ...GREEDY });
    checkCompletion(c, { choices: 1 });
    assert.equal(c.usage.prompt_tokens, 1, 'the document separator alone');
    const s = await t.client.completions.create({ model: SPM, prompt: '', max_tokens: 2, ...GREEDY });
    checkCompletion(s, { model: SPM, choices: 1 });
    assert.equal(s.usage.prompt_tokens, 1, 'BOS alone');
    // null (the spec's `nullable: true`; the SDK's schema does not list it): raw request
    const n = await t.json('/v1/completions', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: FIM, prompt: null, max_tokens: 2, ...GREEDY }) });
    assert.equal(n.status, 200, JSON.stringify(n.body));
    assert.equal(n.body.choices[0].text, c.choices[0].text, 'null prompt = empty prompt');
  });

  test('echo prepends the prompt; max_tokens 0 returns only the prompt', async (t) => {
    const prompt = 'Once upon a time';
    const c = await t.client.completions.create({ model: FIM, prompt, echo: true, max_tokens: 5, ...GREEDY });
    assert.ok(c.choices[0].text.startsWith(prompt), c.choices[0].text);
    const plain = await t.client.completions.create({ model: FIM, prompt, max_tokens: 5, ...GREEDY });
    assert.equal(c.choices[0].text, prompt + plain.choices[0].text);
    const z = await t.client.completions.create({ model: FIM, prompt, echo: true, max_tokens: 0 });
    assert.equal(z.choices[0].text, prompt);
    assert.equal(z.choices[0].finish_reason, 'length');
    assert.equal(z.usage.completion_tokens, 0);
    const none = await t.client.completions.create({ model: FIM, prompt, max_tokens: 0 });
    assert.equal(none.choices[0].text, '');
    const s = await streamed(t, { model: FIM, prompt: [prompt, 'and'], n: 2, echo: true, max_tokens: 0, stream_options: { include_usage: true } });
    assert.deepEqual(s.text, { 0: prompt, 1: prompt, 2: 'and', 3: 'and' });
    assert.deepEqual(s.finish, { 0: 'length', 1: 'length', 2: 'length', 3: 'length' });
    assert.equal(s.usage.completion_tokens, 0);
    assert.equal(s.usage.prompt_tokens, z.usage.prompt_tokens + 1);
  });

  test('logprobs: the legacy object for generated tokens, offsets after the prompt', async (t) => {
    const prompt = 'Counting: one two';
    const c = await t.client.completions.create({ model: FIM, prompt, logprobs: 3, max_tokens: 6, ...GREEDY });
    const ch = c.choices[0];
    const lp = ch.logprobs;
    checkLogprobs(lp, 3);
    assert.equal(lp.tokens.length, 6);
    assert.equal(lp.text_offset[0], prompt.length, 'offsets count from the start of the prompt');
    if (!lp.tokens.some((x) => x.startsWith('bytes:'))) {
      assert.equal(lp.tokens.join(''), ch.text);
      lp.tokens.forEach((tok, i) => assert.equal(ch.text.slice(lp.text_offset[i] - prompt.length).startsWith(tok), true));
    }
    for (let i = 0; i < lp.tokens.length; i++) {
      const best = Math.max(...Object.values(lp.top_logprobs[i]));
      assert.ok(lp.token_logprobs[i] >= best - 1e-5, 'greedy picks the most likely token');
    }
  });

  test('echo + logprobs: prompt tokens scored (first null), consistent with the sampler', async (t) => {
    const prompt = 'Hello there, general';
    const z = await t.client.completions.create({ model: FIM, prompt, echo: true, logprobs: 2, max_tokens: 0 });
    const lp = z.choices[0].logprobs;
    checkLogprobs(lp, 2, { firstNull: true });
    assert.equal(lp.tokens.join(''), prompt);
    assert.equal(lp.text_offset[0], 0);
    // Force token 300 after ids P with logit_bias: its logprob as sampled must
    // equal its logprob when the prompt P + [300] is scored by echo.
    const P = [17, 250, 512, 33];
    const g = await t.client.completions.create({ model: FIM, prompt: P, max_tokens: 1, temperature: 0, logprobs: 1, logit_bias: { 300: 100 } });
    const gen = g.choices[0].logprobs.token_logprobs[0];
    const e = await t.client.completions.create({ model: FIM, prompt: [...P, 300], max_tokens: 0, echo: true, logprobs: 1 });
    const el = e.choices[0].logprobs;
    assert.equal(el.tokens.length, 5);
    assert.equal(el.token_logprobs[0], null);
    assert.ok(Math.abs(el.token_logprobs[4] - gen) < 2e-2, `echo scored ${el.token_logprobs[4]}, sampler reported ${gen}`);
    assert.equal(el.tokens[4], g.choices[0].logprobs.tokens[0]);
    // SentencePiece: the space prefix lives in the first token, not in the text
    const spm = await t.client.completions.create({ model: SPM, prompt: 'Hello world there', echo: true, logprobs: 0, max_tokens: 3, ...GREEDY });
    const sl = spm.choices[0].logprobs;
    checkLogprobs(sl, 0); // BOS precedes the first echoed token: it has a logprob
    assert.ok(spm.choices[0].text.startsWith('Hello world there'));
    assert.ok(sl.tokens.length >= 3 + 3);
    for (let i = 1; i < sl.tokens.length; i++)
      if (!sl.tokens[i].startsWith('bytes:'))
        assert.ok(spm.choices[0].text.startsWith(sl.tokens[i], sl.text_offset[i]), `token ${i} ${JSON.stringify(sl.tokens[i])} at ${sl.text_offset[i]}`);
    // echo + logprobs + generation: prompt entries, then the generated ones
    const both = await t.client.completions.create({ model: FIM, prompt: P, max_tokens: 3, echo: true, logprobs: 1, ...GREEDY });
    const bl = both.choices[0].logprobs;
    assert.equal(bl.tokens.length, 4 + 3);
    checkLogprobs(bl, 1, { firstNull: true });
  });

  test('suffix: fill in the middle on a model with FIM tokens', async (t) => {
    const c = await t.client.completions.create({ model: FIM, prompt: 'def add(a, b):\n', suffix: '\n    return c\n', max_tokens: 4, ...GREEDY });
    checkCompletion(c, { choices: 1 });
    const p = await t.client.completions.create({ model: FIM, prompt: 'def add(a, b):\n', echo: true, logprobs: 0, max_tokens: 0 });
    const s = await t.client.completions.create({ model: FIM, prompt: '\n    return c\n', echo: true, logprobs: 0, max_tokens: 0 });
    assert.equal(c.usage.prompt_tokens, p.usage.prompt_tokens + s.usage.prompt_tokens + 3, 'prefix + suffix + 3 FIM tokens');
    const plain = await t.client.completions.create({ model: FIM, prompt: 'def add(a, b):\n', max_tokens: 4, ...GREEDY });
    assert.notEqual(c.usage.prompt_tokens, plain.usage.prompt_tokens);
    const empty = await t.client.completions.create({ model: SPM, prompt: 'x', suffix: '', max_tokens: 1 });
    checkCompletion(empty, { model: SPM, choices: 1 });
  });

  test('suffix on a model without FIM tokens, and echo with suffix, are 400s', async (t) => {
    await expectApiError(t.client.completions.create({ model: SPM, prompt: 'a', suffix: 'b' }), { status: 400, param: 'suffix', type: 'invalid_request_error' });
    await expectApiError(t.client.completions.create({ model: FIM, prompt: 'a', suffix: 'b', echo: true }), { status: 400, param: 'echo' });
  });

  test('n and best_of: best_of candidates, the n with the best mean logprob returned', async (t) => {
    // End tokens banned: every candidate has exactly 5 tokens, all listed.
    const body = { model: FIM, prompt: 'Pick one:', max_tokens: 5, temperature: 1.5, logit_bias: NO_EOG };
    const mean = (ch) => ch.logprobs.token_logprobs.reduce((a, x) => a + x, 0) / ch.logprobs.token_logprobs.length;
    // A seed whose n=3 candidates are not already in rank order, so that
    // returning them unranked would fail.
    let seed, all, ranked;
    for (seed = 1; seed < 40; seed++) {
      all = await t.client.completions.create({ ...body, seed, n: 3, logprobs: 0 });
      ranked = [...all.choices].sort((a, b) => mean(b) - mean(a));
      if (ranked[0].index !== 0 && ranked[1].index !== 1) break;
    }
    assert.ok(seed < 40, 'a seed with candidates out of rank order');
    checkCompletion(all, { choices: 3 });
    // ranked without logprobs asked (the server scores candidates anyway)
    const best = await t.client.completions.create({ ...body, seed, n: 1, best_of: 3 });
    checkCompletion(best, { choices: 1 });
    assert.equal(best.usage.completion_tokens, 15, 'every candidate is counted');
    assert.equal(best.choices[0].text, ranked[0].text, 'the best candidate (same seeds as n=3)');
    assert.equal(best.choices[0].logprobs, null, 'no logprobs unless asked');
    const two = await t.client.completions.create({ ...body, seed, n: 2, best_of: 3, logprobs: 1 });
    checkCompletion(two, { choices: 2 });
    assert.deepEqual(two.choices.map((c) => c.text), ranked.slice(0, 2).map((c) => c.text), 'best first');
    assert.ok(mean(two.choices[0]) >= mean(two.choices[1]));
  });

  test('seed: same seed, same sampled text; n choices differ', async (t) => {
    const body = { model: FIM, prompt: 'Random:', max_tokens: 8, temperature: 1, seed: 1234, ignore_eos: true };
    const a = await t.client.completions.create(body);
    const b = await t.client.completions.create(body);
    assert.equal(a.choices[0].text, b.choices[0].text);
    const m = await t.client.completions.create({ ...body, n: 4 });
    assert.ok(new Set(m.choices.map((c) => c.text)).size > 1, 'choices sample differently');
  });

  test('sampling parameters: top_p 0 is greedy; frequency_penalty breaks repetition', async (t) => {
    const body = { model: FIM, prompt: 'Hi there', max_tokens: 12, logprobs: 0, ignore_eos: true };
    const greedy = await t.client.completions.create({ ...body, temperature: 0 });
    const nucleus = await t.client.completions.create({ ...body, temperature: 1.5, top_p: 0, seed: 99 });
    assert.equal(nucleus.choices[0].text, greedy.choices[0].text, 'top_p 0 keeps only the most likely token');
    const maxRepeat = (c) => Math.max(...Object.values(c.choices[0].logprobs.tokens.reduce((m, x) => ((m[x] = (m[x] || 0) + 1), m), {})));
    const base = maxRepeat(greedy);
    if (base < 4) t.skip(`greedy text does not repeat a token (max ${base}): ${JSON.stringify(greedy.choices[0].text)}`);
    const pen = await t.client.completions.create({ ...body, temperature: 0, frequency_penalty: 2 });
    assert.ok(maxRepeat(pen) < base, `frequency_penalty 2: max repeat ${maxRepeat(pen)} vs ${base} without`);
    const pres = await t.client.completions.create({ ...body, temperature: 0, presence_penalty: 2 });
    assert.ok(pres.choices[0].logprobs.tokens.length === 12);
  });

  test('stop sequences that span tokens cut the text (plain and streamed)', async (t) => {
    const body = { model: FIM, prompt: 'Stories begin', max_tokens: 14, logprobs: 0, ...GREEDY };
    const full = await t.client.completions.create(body);
    const toks = full.choices[0].logprobs.tokens;
    const text = full.choices[0].text;
    // A stop string from the middle of token 3 to the middle of token 5.
    const off = full.choices[0].logprobs.text_offset.map((o) => o - body.prompt.length);
    const i = toks.findIndex((x, k) => k >= 2 && x.length >= 2 && !x.startsWith('bytes:') && toks[k + 1] && toks[k + 2]?.length >= 2);
    if (i < 0) t.skip(`no suitable tokens in ${JSON.stringify(toks)}`);
    const stop = text.slice(off[i] + 1, off[i + 2] + 1);
    assert.ok(stop.length >= 2);
    const want = text.slice(0, text.indexOf(stop));
    const { logprobs, ...plainBody } = body;
    void logprobs;
    const c = await t.client.completions.create({ ...plainBody, stop: [stop, 'zzzz-never'] });
    assert.equal(c.choices[0].text, want);
    assert.equal(c.choices[0].finish_reason, 'stop');
    const s = await streamed(t, { ...plainBody, stop });
    assert.equal(s.text[0], want, 'streamed text cut at the same place');
    assert.equal(s.finish[0], 'stop');
    const never = await t.client.completions.create({ ...plainBody, stop: 'zzzz-never' });
    assert.equal(never.choices[0].text, text);
  });

  test('streaming with for await: chunks of the completion shape, same text, usage last', async (t) => {
    const body = { model: FIM, prompt: 'Streaming works', max_tokens: 7, ...GREEDY };
    const plain = await t.client.completions.create(body);
    const s = await streamed(t, { ...body, stream_options: { include_usage: true } });
    assert.equal(s.text[0], plain.choices[0].text);
    assert.equal(s.finish[0], 'length');
    const last = s.chunks[s.chunks.length - 1];
    assert.deepEqual(last.choices, [], 'the usage chunk has no choices');
    assert.deepEqual(
      { p: s.usage.prompt_tokens, c: s.usage.completion_tokens, t: s.usage.total_tokens },
      { p: plain.usage.prompt_tokens, c: 7, t: plain.usage.prompt_tokens + 7 },
    );
    assert.ok(s.chunks.slice(0, -1).every((c) => !c.usage), 'usage only on the last chunk');
    const nu = await streamed(t, body);
    assert.equal(nu.usage, null, 'no usage chunk unless asked');
  });

  test('streaming: n choices, echo first, logprobs per chunk', async (t) => {
    const body = { model: FIM, prompt: ['ab', 'cd'], n: 2, max_tokens: 3, echo: true, logprobs: 1, ...GREEDY };
    const plain = await t.client.completions.create(body);
    const s = await streamed(t, body);
    for (let i = 0; i < 4; i++) {
      assert.equal(s.text[i], plain.choices[i].text, `choice ${i}`);
      assert.ok(s.text[i].startsWith(i < 2 ? 'ab' : 'cd'));
      assert.equal(s.finish[i], 'length');
      const toks = s.lp[i].flatMap((l) => l.tokens);
      assert.deepEqual(toks, plain.choices[i].logprobs.tokens, 'the same tokens, in order');
      const offs = s.lp[i].flatMap((l) => l.text_offset);
      assert.deepEqual(offs, plain.choices[i].logprobs.text_offset, 'the same offsets');
    }
  });

  test('streaming best_of > n is refused; best_of = n streams', async (t) => {
    await expectApiError(t.client.completions.create({ model: FIM, prompt: 'x', stream: true, best_of: 2 }), { status: 400, param: 'best_of' });
    const s = await streamed(t, { model: FIM, prompt: 'x', best_of: 2, n: 2, max_tokens: 2, ...GREEDY });
    assert.deepEqual(Object.keys(s.finish).sort(), ['0', '1']);
  });

  test('concurrent requests are served together and give the same greedy text as alone', async (t) => {
    const prompts = Array.from({ length: 8 }, (_, i) => `Request number ${i} says`);
    const body = { model: FIM, max_tokens: 6, logprobs: 2, ...GREEDY };
    const alone = [];
    for (const p of prompts.slice(0, 3)) alone.push((await t.client.completions.create({ ...body, prompt: p })).choices[0]);
    const together = await Promise.all(prompts.map((p) => t.client.completions.create({ ...body, prompt: p })));
    together.forEach((c) => checkCompletion(c, { choices: 1 }));
    alone.forEach((a, i) => sameGreedy(t, together[i].choices[0], a, `prompt ${i}`));
  });

  test('a client that goes away mid-stream: no crash, the next request is served', async (t) => {
    const ac = new AbortController();
    const r = await t.fetch('/v1/completions', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: FIM, prompt: 'Long story:', max_tokens: 400, stream: true, ...GREEDY }),
      signal: ac.signal,
    });
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type'), /event-stream/);
    const reader = r.body.getReader();
    const first = await reader.read();
    assert.ok(!first.done && new TextDecoder().decode(first.value).startsWith('data: {'), 'first event arrives');
    ac.abort();
    await reader.read().catch(() => {});
    const t0 = Date.now();
    const c = await t.client.completions.create({ model: FIM, prompt: 'after the abort', max_tokens: 3, ...GREEDY });
    checkCompletion(c, { choices: 1 });
    assert.ok(Date.now() - t0 < 20000, 'served promptly');
  });

  test('errors: unknown model, bad prompts, ids out of range, context too long, bad parameters', async (t) => {
    await expectApiError(t.client.completions.create({ model: 'no-such-model', prompt: 'x' }), { status: 404, code: 'model_not_found' });
    const post = (body) => t.json('/v1/completions', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    const bad = [
      [{ model: FIM }, 'prompt'],
      [{ model: FIM, prompt: { a: 1 } }, 'prompt'],
      [{ model: FIM, prompt: 12 }, 'prompt'],
      [{ model: FIM, prompt: [] }, 'prompt'],
      [{ model: FIM, prompt: [[]] }, 'prompt'],
      [{ model: FIM, prompt: [1, 'a'] }, 'prompt'],
      [{ model: FIM, prompt: ['a', 1] }, 'prompt'],
      [{ model: FIM, prompt: [[1], 'a'] }, 'prompt'],
      [{ model: FIM, prompt: [[1, 2.5]] }, 'prompt'],
      [{ model: FIM, prompt: [true] }, 'prompt'],
      [{ model: FIM, prompt: [N_VOCAB] }, 'prompt'],
      [{ model: FIM, prompt: [[1], [-1]] }, 'prompt'],
      [{ model: FIM, prompt: [99999999999] }, 'prompt'],
      [{ prompt: 'x' }, 'model'],
      [{ model: FIM, prompt: 'x', best_of: 1, n: 2 }, 'best_of'],
      [{ model: FIM, prompt: 'x', logprobs: 6 }, 'logprobs'],
      [{ model: FIM, prompt: 'x', logprobs: true }, 'logprobs'],
      [{ model: FIM, prompt: 'x', n: 0 }, 'n'],
      [{ model: FIM, prompt: 'x', max_tokens: -1 }, 'max_tokens'],
      [{ model: FIM, prompt: 'x', temperature: 3 }, 'temperature'],
      [{ model: FIM, prompt: 'x', echo: 'yes' }, 'echo'],
      [{ model: FIM, prompt: 'x', suffix: 5 }, 'suffix'],
      [{ model: FIM, prompt: 'x', stop: ['a', 'b', 'c', 'd', 'e'] }, 'stop'],
      [{ model: FIM, prompt: 'x', logit_bias: { 99999: 1 } }, 'logit_bias'],
      [{ model: FIM, prompt: 'x', stream_options: { include_usage: true } }, 'stream_options'],
      [{ model: FIM, prompt: Array(40).fill('x') }, 'prompt'],
    ];
    for (const [body, param] of bad) {
      const r = await post(body);
      expectErrorBody(r, { status: 400, type: 'invalid_request_error', param });
    }
    expectErrorBody(await post({ model: FIM, prompt: 'x', n: 17 }), { status: 400, param: 'n' }); // 16 slots by default
    expectErrorBody(await post({ model: FIM, prompt: 'x', n: 2, best_of: 17 }), { status: 400, param: 'best_of' });
    const long = await post({ model: FIM, prompt: Array(N_CTX + 10).fill(7) });
    expectErrorBody(long, { status: 400, code: 'context_length_exceeded' });
    const scored = await post({ model: FIM, prompt: Array(N_CTX + 10).fill(7), echo: true, logprobs: 1, max_tokens: 0 });
    expectErrorBody(scored, { status: 400, code: 'context_length_exceeded' });
    const over = await post({ model: FIM, prompt: 'short', max_tokens: N_CTX });
    const e = expectErrorBody(over, { status: 400, code: 'context_length_exceeded' });
    assert.match(e.message, new RegExp(`maximum context length is ${N_CTX} tokens`));
    const notJson = await t.json('/v1/completions', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"model":' });
    expectErrorBody(notJson, { status: 400 });
    // the server is still fine
    const ok = await t.client.completions.create({ model: FIM, prompt: 'still alive', max_tokens: 1 });
    checkCompletion(ok, { choices: 1 });
  });
});
