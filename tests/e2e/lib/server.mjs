// Starts and stops `./hearth serve` processes for the e2e suites: a free
// port, a temp data directory, keys created with `hearth keys create`,
// readiness by polling GET /health, and memory readings from /proc.
// Knows nothing about the tests or the spec.
import { spawn, execFile } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

export const REPO = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..', '..', '..');
// HEARTH_BIN: another binary speaking the same command line (default ./hearth).
export const HEARTH = process.env.HEARTH_BIN || path.join(REPO, 'hearth');
const live = new Set();

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.unref();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

export function tempDir(tag) {
  return fs.mkdtempSync(path.join(os.tmpdir(), `hearth-e2e-${tag}-`));
}

// Runs a hearth subcommand; resolves {code, stdout, stderr}.
export function hearth(args, { timeoutMs = 20000, env } = {}) {
  return new Promise((resolve) => {
    execFile(HEARTH, args, { cwd: REPO, timeout: timeoutMs, env: { ...process.env, ...env } },
      (err, stdout, stderr) => {
        resolve({ code: err ? (err.code ?? 1) : 0, signal: err?.signal, stdout, stderr });
      });
  });
}

// `hearth keys create`: the key is the one non-empty stdout line.
export async function createKey(dataDir, { project, admin } = {}) {
  const args = ['keys', 'create', '--data', dataDir];
  if (project) args.push('--project', project);
  if (admin) args.push('--admin');
  const r = await hearth(args);
  const lines = r.stdout.split('\n').map((l) => l.trim()).filter(Boolean);
  if (r.code !== 0 || lines.length !== 1)
    throw new Error(`hearth ${args.join(' ')}: exit ${r.code}, stdout ${JSON.stringify(r.stdout)}, stderr ${r.stderr.slice(-400)}`);
  return lines[0];
}

export class Server {
  constructor(dataDir, { host = '127.0.0.1', extraArgs = [], env = {} } = {}) {
    this.dataDir = dataDir;
    this.host = host;
    this.extraArgs = extraArgs;
    this.env = env;
    this.proc = null;
    this.out = '';
  }

  get base() {
    return `http://127.0.0.1:${this.port}`;
  }

  get pid() {
    return this.proc?.pid;
  }

  tail(n = 1500) {
    return this.out.slice(-n);
  }

  async start({ port } = {}) {
    this.port = port ?? (await freePort());
    const args = ['serve', '--host', this.host, '--port', String(this.port), '--data', this.dataDir, ...this.extraArgs];
    this.out = '';
    const p = spawn(HEARTH, args, { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...this.env } });
    this.proc = p;
    live.add(p);
    this.exited = new Promise((resolve) => p.on('exit', (code, sig) => { live.delete(p); resolve({ code, sig }); }));
    const keep = (d) => { this.out = (this.out + d.toString()).slice(-20000); };
    p.stdout.on('data', keep);
    p.stderr.on('data', keep);
    p.on('error', (e) => {
      keep(`spawn error: ${e.message}\n`);
      this.spawnError = e;
    });
    this.spawnError = null;
    await this.waitReady();
    return this;
  }

  async waitReady(ms = 15000) {
    const until = Date.now() + ms;
    let dead = null;
    this.exited.then((x) => { dead = x; });
    while (Date.now() < until) {
      if (this.spawnError) throw new Error(`cannot run ${HEARTH}: ${this.spawnError.message}`);
      if (dead) throw new Error(`hearth serve exited (code ${dead.code}, signal ${dead.sig}) before ready:\n${this.tail()}`);
      try {
        const r = await fetch(`${this.base}/health`, { signal: AbortSignal.timeout(1000) });
        await r.arrayBuffer();
        return;
      } catch { /* not listening yet */ }
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`hearth serve not ready after ${ms} ms:\n${this.tail()}`);
  }

  // SIGTERM (graceful), SIGKILL after ms. Resolves the exit status.
  async stop(ms = 8000) {
    if (!this.proc) return null;
    const p = this.proc;
    this.proc = null;
    if (p.exitCode !== null || p.signalCode !== null) return this.exited;
    p.kill('SIGTERM');
    const t = setTimeout(() => p.kill('SIGKILL'), ms);
    const r = await this.exited;
    clearTimeout(t);
    return r;
  }

  // Stops and starts again on the same data dir and port.
  async restart() {
    await this.stop();
    await this.start({ port: this.port });
  }

  // CPU seconds (user + system) the server has used so far.
  cpuSeconds() {
    const f = fs.readFileSync(`/proc/${this.pid}/stat`, 'utf8');
    const rest = f.slice(f.lastIndexOf(')') + 2).split(' ');
    return (Number(rest[11]) + Number(rest[12])) / 100; // fields 14, 15; USER_HZ 100
  }

  // Peak and current resident set size in kB (/proc/PID/status).
  memory() {
    const s = fs.readFileSync(`/proc/${this.pid}/status`, 'utf8');
    const kb = (k) => Number((s.match(new RegExp(`^${k}:\\s+(\\d+)`, 'm')) || [])[1]);
    return { hwmKB: kb('VmHWM'), rssKB: kb('VmRSS') };
  }
}

// Last-resort cleanup: never leave a server behind.
export function killAll() {
  for (const p of live) {
    try { p.kill('SIGKILL'); } catch { /* gone */ }
  }
}
process.on('exit', killAll);
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => { killAll(); process.exit(130); });
