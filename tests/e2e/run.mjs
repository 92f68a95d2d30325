// hearth end-to-end test runner. Uses ./hearth from the repo root (builds
// nothing), starts one `hearth serve` per suite on a free port with a temp
// data dir (and keys where the suite asks), runs the suite's tests with a
// timeout each, stops the server, and prints as its last line
// "N passed, N failed, N skipped".
// Usage: node tests/e2e/run.mjs [FILTER...]   (substring of "suite / test")
// Env: HEARTH_SHARED (spec folder), HEARTH_E2E_LARGE=1 (1 GB upload test).
import fs from 'node:fs';
import path from 'node:path';
import { suites, setSpec, setCurrent, Context, SkipError } from './lib/harness.mjs';
import { Server, createKey, tempDir, killAll, HEARTH, REPO } from './lib/server.mjs';
import { loadSpec } from './lib/spec.mjs';

const here = path.dirname(new URL(import.meta.url).pathname);
const filters = process.argv.slice(2);
const tally = { passed: 0, failed: 0, skipped: 0 };

function selected(suiteName, testName) {
  const full = `${suiteName} / ${testName}`;
  return filters.length === 0 || filters.some((f) => full.includes(f));
}

function report(status, name, detail) {
  tally[status]++;
  const tag = { passed: 'ok  ', failed: 'FAIL', skipped: 'skip' }[status];
  console.log(`${tag} ${name}${detail ? `\n     ${detail.split('\n').join('\n     ')}` : ''}`);
}

function withTimeout(p, ms, what) {
  let t;
  const timer = new Promise((_, rej) => {
    t = setTimeout(() => rej(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([p, timer]).finally(() => clearTimeout(t));
}

function describe(e) {
  if (e?.status !== undefined && e?.error !== undefined)
    return `${e.constructor.name} ${e.status}: ${JSON.stringify(e.error)}`;
  return e?.stack?.split('\n').slice(0, 4).join('\n') || String(e);
}

async function setupSuite(s) {
  const dataDir = tempDir(s.name.replace(/\W+/g, '_'));
  const server = new Server(dataDir, s.opts.server || {});
  try {
    const keys = {};
    if (s.opts.setup) await s.opts.setup(dataDir);
    for (const [name, k] of Object.entries(s.opts.keys || {})) keys[name] = await createKey(dataDir, k);
    await server.start();
    const defaultKey = s.opts.defaultKey ? keys[s.opts.defaultKey] : 'sk-local-any-token';
    return { dataDir, keys, server, defaultKey };
  } catch (e) {
    await server.stop();
    fs.rmSync(dataDir, { recursive: true, force: true });
    throw e;
  }
}

async function runTest(s, t, env, spec) {
  const name = `${s.name} / ${t.name}`;
  const ctx = new Context({ ...env, spec, suiteName: s.name });
  setCurrent(ctx);
  try {
    if (t.opts.skipUnless) {
      const why = t.opts.skipUnless();
      if (why) throw new SkipError(why);
    }
    await withTimeout(Promise.resolve().then(() => t.fn(ctx)), t.opts.timeoutMs || 30000, name);
    if (ctx.violations.length) report('failed', name, 'spec violations:\n' + ctx.violations.join('\n'));
    else report('passed', name, ctx.notes.join('\n'));
  } catch (e) {
    if (e instanceof SkipError) report('skipped', name, e.message);
    else {
      const v = ctx.violations.length ? '\nspec violations:\n' + ctx.violations.join('\n') : '';
      report('failed', name, describe(e) + v + (env.server.proc ? '' : `\nserver output:\n${env.server.tail(600)}`));
    }
  } finally {
    setCurrent(null);
  }
  // A test may leave the server stopped (restart tests): bring it back.
  if (!env.server.proc) await env.server.start({ port: env.server.port }).catch(() => {});
}

async function main() {
  const files = fs.readdirSync(here).filter((f) => f.endsWith('.test.mjs')).sort();
  for (const f of files) await import(path.join(here, f));
  const { spec, reason } = loadSpec(REPO);
  if (reason) console.log(`note: ${reason}`);
  else for (const n of spec.notes) console.log(`note: ${n}`);
  setSpec(spec);
  const haveBinary = fs.existsSync(HEARTH);
  for (const s of suites) {
    const tests = s.tests.filter((t) => selected(s.name, t.name));
    if (!tests.length) continue;
    console.log(`# ${s.name}`);
    if (!haveBinary) {
      for (const t of tests) report('failed', `${s.name} / ${t.name}`, `${HEARTH} missing: run make first`);
      continue;
    }
    let env;
    try {
      env = await setupSuite(s);
    } catch (e) {
      console.log(`     suite set-up failed: ${describe(e)}`);
      for (const t of tests) report('failed', `${s.name} / ${t.name}`, 'suite set-up failed (above)');
      continue;
    }
    for (const t of tests) await runTest(s, t, env, spec);
    const st = await env.server.stop();
    if (st && st.sig === 'SIGKILL') console.log(`note: ${s.name}: server ignored SIGTERM, killed`);
    fs.rmSync(env.dataDir, { recursive: true, force: true });
  }
  killAll();
  console.log(`${tally.passed} passed, ${tally.failed} failed, ${tally.skipped} skipped`);
  process.exitCode = tally.failed ? 1 : 0;
}

main().catch((e) => {
  killAll();
  console.log(`runner error: ${e.stack || e}`);
  console.log(`${tally.passed} passed, ${tally.failed + 1} failed, ${tally.skipped} skipped`);
  process.exitCode = 1;
});
