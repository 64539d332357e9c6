// Helpers for the network-namespace suite: namespaces, veth links, nftables rules, processes
// inside a namespace, and cleanup that runs even when a test fails or the runner is killed.
//
// Every namespace this module creates is named `<prefix><suffix>`, with the prefix taken from
// MOIM_NETNS_PREFIX (run.sh sets it) or `moimnt<pid>`. Cleanup kills the processes inside each
// namespace it created (by pid, from `ip netns pids`) and deletes the namespace; the veth
// pairs go with it. Addresses are 10.77.x.y and exist only inside these namespaces.
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';

export const HERE = path.dirname(fileURLToPath(import.meta.url));
export const REPO = path.resolve(HERE, '../..');
export const OUT_DIR = path.join(HERE, 'out');
export const PREFIX = process.env.MOIM_NETNS_PREFIX || `moimnt${process.pid}-`;

export function moimBin() {
  return path.resolve(REPO, process.env.MOIM_BIN || 'target/debug/moim');
}

/** Runs a command synchronously (bounded by timeoutMs); throws with its stderr on failure. */
export function sh(cmd, args, { input, timeoutMs = 10_000, allowFail = false } = {}) {
  try {
    return execFileSync(cmd, args, {
      input,
      timeout: timeoutMs,
      encoding: 'utf8',
      stdio: ['pipe', 'pipe', 'pipe'],
    });
  } catch (e) {
    if (allowFail) return null;
    const err = (e.stderr || '').toString().trim();
    throw new Error(`\`${cmd} ${args.join(' ')}\` failed: ${err || e.message}`);
  }
}

/** Checks what the suite needs before it touches anything; returns a reason or null. */
export function missingPrerequisite() {
  if (process.getuid && process.getuid() !== 0) return 'must run as root (ip netns, nft)';
  for (const tool of ['ip', 'nft']) {
    if (sh('sh', ['-c', `command -v ${tool}`], { allowFail: true }) === null) {
      return `\`${tool}\` is missing (scripts/install-deps.sh installs iproute2 and nftables)`;
    }
  }
  return null;
}

const created = new Set();

/** Kills the processes in one namespace (by pid) and deletes it. Never throws. */
function destroyNamespace(name) {
  for (let round = 0; round < 3; round++) {
    const pids = (sh('ip', ['netns', 'pids', name], { allowFail: true }) || '')
      .split(/\s+/)
      .filter(Boolean)
      .map(Number);
    if (!pids.length) break;
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {}
    }
    // Give the kernel a moment to reap them (bounded).
    execFileSync('sleep', ['0.1']);
  }
  sh('ip', ['netns', 'del', name], { allowFail: true });
  created.delete(name);
}

/** Removes every namespace this process created. Synchronous, so it also works in 'exit'. */
export function cleanupAll() {
  for (const name of [...created]) destroyNamespace(name);
}

let hooked = false;
function hookExit() {
  if (hooked) return;
  hooked = true;
  process.on('exit', cleanupAll);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.on(sig, () => {
      cleanupAll();
      process.exit(130);
    });
  }
}

export class Namespace {
  constructor(suffix) {
    this.name = `${PREFIX}${suffix}`;
  }

  create() {
    hookExit();
    destroyNamespace(this.name); // a leftover from an earlier, killed run
    created.add(this.name);
    sh('ip', ['netns', 'add', this.name]);
    sh('ip', ['-n', this.name, 'link', 'set', 'lo', 'up']);
    return this;
  }

  destroy() {
    destroyNamespace(this.name);
  }

  ip(...args) {
    return sh('ip', ['-n', this.name, ...args]);
  }

  exec(cmd, args = [], opts = {}) {
    return sh('ip', ['netns', 'exec', this.name, cmd, ...args], opts);
  }

  addr(ifname, cidr) {
    this.ip('addr', 'add', cidr, 'dev', ifname);
    this.ip('link', 'set', ifname, 'up');
  }

  nft(ruleset) {
    return sh('ip', ['netns', 'exec', this.name, 'nft', '-f', '-'], { input: ruleset });
  }

  nftList(table) {
    return this.exec('nft', ['list', 'table', ...table.split(' ')]);
  }

  sysctl(kv) {
    this.exec('sysctl', ['-qw', kv]);
  }

  /**
   * Spawns a long-running process inside the namespace. `ip netns exec` execs the command,
   * so the child's pid is the process itself. Output goes to logFile (or is collected).
   */
  spawn(cmd, args, { logFile, env } = {}) {
    let fd = 'pipe';
    if (logFile) {
      fs.mkdirSync(path.dirname(logFile), { recursive: true });
      fd = fs.openSync(logFile, 'a');
      fs.writeSync(fd, `# [netns ${this.name}] ${cmd} ${args.join(' ')}\n`);
    }
    const child = spawn('ip', ['netns', 'exec', this.name, cmd, ...args], {
      stdio: ['ignore', fd, fd],
      env: { ...process.env, ...env },
    });
    if (typeof fd === 'number') fs.closeSync(fd);
    child.exited = null;
    child.on('exit', (code, signal) => {
      child.exited = { code, signal };
    });
    return child;
  }

  /**
   * Runs a command inside the namespace to completion, at most timeoutMs, collecting output.
   * Resolves {code, signal, stdout, stderr, ms, timedOut}.
   */
  async run(cmd, args, { timeoutMs = 60_000, env } = {}) {
    const t0 = Date.now();
    const child = spawn('ip', ['netns', 'exec', this.name, cmd, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...env },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    const [code, signal] = await once(child, 'exit');
    clearTimeout(timer);
    return { code, signal, stdout, stderr, ms: Date.now() - t0, timedOut };
  }
}

/** A veth pair with one end in each namespace (created directly there). */
export function veth(nsA, ifA, nsB, ifB) {
  sh('ip', ['link', 'add', ifA, 'netns', nsA.name, 'type', 'veth', 'peer', 'name', ifB, 'netns', nsB.name]);
}

/** Strips ANSI colour codes (tracing's fmt layer writes them even into files). */
export function plain(text) {
  return text.replace(/\x1b\[[0-9;]*m/g, '');
}

// ---------------------------------------------------------------------------------------
// moim inside a namespace

export class MoimInNs {
  /** `log`: the MOIM_LOG filter (default: moim's own, info). */
  constructor(ns, { args, label, reachableFrom, url, log }) {
    this.logFilter = log;
    this.ns = ns;
    this.args = args;
    this.label = label;
    this.reachableFrom = reachableFrom; // namespace to probe /healthz from
    this.url = url; // http://ip:port as seen from reachableFrom
    this.logFile = path.join(OUT_DIR, `moim-${label}-${Date.now()}.log`);
    this.proc = null;
  }

  async start() {
    const bin = moimBin();
    if (!fs.existsSync(bin)) {
      throw new Error(`moim binary not found at ${bin}: run cargo build -p moim (or set MOIM_BIN)`);
    }
    this.proc = this.ns.spawn(bin, ['serve', '--dev', ...this.args], {
      logFile: this.logFile,
      env: { RUST_BACKTRACE: '1', NO_COLOR: '1', ...(this.logFilter ? { MOIM_LOG: this.logFilter } : {}) },
    });
    // Wait for /healthz from the client side (bounded: 30 s inside probe.mjs).
    const probe = await this.reachableFrom.run(
      process.execPath,
      [path.join(HERE, 'probe.mjs'), `${this.url}/healthz`, '30000'],
      { timeoutMs: 35_000 },
    );
    if (this.proc.exited) {
      throw new Error(`moim exited during start-up (${JSON.stringify(this.proc.exited)})\n${this.logTail()}`);
    }
    if (probe.code !== 0) {
      throw new Error(
        `moim did not answer ${this.url}/healthz from namespace ${this.reachableFrom.name}: ${probe.stdout}${probe.stderr}\n${this.logTail()}`,
      );
    }
  }

  log() {
    return fs.existsSync(this.logFile) ? plain(fs.readFileSync(this.logFile, 'utf8')) : '';
  }

  logTail(lines = 40) {
    const all = this.log().split('\n');
    return `---- moim log ${this.logFile} (last ${lines} lines) ----\n${all.slice(-lines - 1).join('\n')}\n---- end moim log ----`;
  }

  /** The last `max` log lines that match `re`, for a failure message. */
  logMatching(re, max = 15) {
    const hits = this.log().split('\n').filter((l) => re.test(l));
    return `---- moim log ${this.logFile}: last ${Math.min(max, hits.length)} of ${hits.length} lines matching ${re} ----\n${hits.slice(-max).join('\n')}`;
  }

  async stop() {
    const p = this.proc;
    if (!p || p.exited) return;
    p.kill('SIGTERM');
    const done = await Promise.race([once(p, 'exit').then(() => true), sleep(3000).then(() => false)]);
    if (!done) {
      p.kill('SIGKILL');
      await Promise.race([once(p, 'exit'), sleep(2000)]);
    }
  }
}

// ---------------------------------------------------------------------------------------
// Chromium pages inside a namespace

/**
 * Runs client-pages.mjs inside `ns`: two livekit-client pages in Chromium join `opts.wsUrl`.
 * Resolves {res, run, diag()} where res is the page runner's RESULT object (or null).
 */
export async function runClientPages(ns, opts, server) {
  const deadline = opts.deadlineMs || 75_000;
  const run = await ns.run(process.execPath, [path.join(HERE, 'client-pages.mjs'), JSON.stringify(opts)], {
    timeoutMs: deadline + 15_000,
  });
  const line = run.stdout.split('\n').find((l) => l.startsWith('RESULT '));
  const res = line ? JSON.parse(line.slice(7)) : null;
  const diag = () =>
    `client pages exit ${run.code}${run.timedOut ? ' (killed: timeout)' : ''}\n` +
    (res
      ? `steps: ${res.steps.join(' | ')}\nerror: ${res.error || '-'}\npages: ${JSON.stringify(res.pages, null, 1)}\n${(res.consoles || []).join('\n')}`
      : `stdout: ${run.stdout}\nstderr: ${run.stderr.slice(-4000)}`) +
    (server ? `\n${server.logTail(50)}` : '');
  return { res, run, diag };
}

/** "local relay/tcp → remote host/udp 10.77.1.1:7882" for one PeerConnection's selected pair. */
export function describePair(p) {
  if (!p || !p.pair || !p.pair.local || !p.pair.remote) return 'no selected pair';
  const { local: l, remote: r } = p.pair;
  const lp = l.type === 'relay' ? `${l.relayProtocol || '?'}` : l.protocol;
  return `local ${l.type}/${lp}${l.type === 'relay' ? ` (relayed at ${l.address}:${l.port})` : ''} → remote ${r.type}/${r.protocol} ${r.address}:${r.port}`;
}

export { sleep };
