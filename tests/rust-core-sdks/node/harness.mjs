// The pieces a test needs around the SDK: a real moim server, a TCP proxy that can
// cut the SDK's signalling connection, and bounded waits. Nothing here knows
// LiveKit's protocol beyond the HTTP request line, which tells the signalling path.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import dgram from 'node:dgram';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

export const HERE = path.dirname(fileURLToPath(import.meta.url));
export const OUT_DIR = path.join(HERE, '..', 'out');
export const API_KEY = 'devkey';
export const API_SECRET = 'secret';

/** One check line, so a hang shows where it stopped. */
export function log(msg) {
  console.log(`[node-sdk] ${msg}`);
}

/** Poll cond() until it is truthy; a bounded wait, never a timing check. */
export async function waitUntil(cond, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const v = cond();
    if (v) return v;
    await sleep(50);
  }
  throw new Error(`timed out after ${Math.round(timeoutMs / 1000)} s waiting for ${what}`);
}

/** Waits for a cleanup step at most `ms`; a step that hangs is logged, not awaited forever. */
export async function bounded(promise, ms, what) {
  let timer;
  const late = new Promise((r) => (timer = setTimeout(() => r('late'), ms)));
  const outcome = await Promise.race([promise.then(() => 'done', (e) => `failed: ${e}`), late]);
  clearTimeout(timer);
  if (outcome !== 'done') log(`cleanup: ${what} ${outcome === 'late' ? `still pending after ${ms} ms` : outcome}`);
}

async function freePort(kind) {
  if (kind === 'udp') {
    const s = dgram.createSocket('udp4');
    s.bind(0, '127.0.0.1');
    await once(s, 'listening');
    const { port } = s.address();
    await new Promise((r) => s.close(r));
    return port;
  }
  const srv = net.createServer().listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const { port } = srv.address();
  await new Promise((r) => srv.close(r));
  return port;
}

/** `moim serve --dev` on free loopback ports, its log in out/. */
export class Moim {
  get httpUrl() {
    return `http://127.0.0.1:${this.port}`;
  }

  async start() {
    const bin = path.resolve(HERE, process.env.MOIM_BIN || '../../../target/debug/moim');
    try {
      fs.accessSync(bin, fs.constants.X_OK);
    } catch {
      throw new Error(`moim binary not found or not executable at ${bin}: build it with \`cargo build -p moim\` or set MOIM_BIN`);
    }
    this.port = await freePort('tcp');
    const tcp = await freePort('tcp');
    const udp = await freePort('udp');
    fs.mkdirSync(OUT_DIR, { recursive: true });
    this.logFile = path.join(OUT_DIR, `moim-node-${Date.now()}.log`);
    // --no-turn: TURN's fixed port 3478 may be taken by another run on this machine,
    // and loopback peers never need a relay.
    const args = ['serve', '--dev', '--no-turn', '--bind', '127.0.0.1', '--port', String(this.port),
      '--rtc-tcp-port', String(tcp), '--rtc-udp-port', String(udp)];
    const fd = fs.openSync(this.logFile, 'w');
    fs.writeSync(fd, `# ${bin} ${args.join(' ')}\n`);
    this.proc = spawn(bin, args, {
      stdio: ['ignore', fd, fd],
      env: { ...process.env, MOIM_LOG: process.env.MOIM_LOG || 'info,moim_server=debug' },
    });
    fs.closeSync(fd);
    this.exited = null;
    this.proc.on('exit', (code, signal) => (this.exited = { code, signal }));
    this.killOnExit = () => this.proc?.kill('SIGKILL');
    process.on('exit', this.killOnExit);
    const deadline = Date.now() + 30_000;
    let last = 'no answer yet';
    while (Date.now() < deadline) {
      if (this.exited) throw new Error(`moim exited (${JSON.stringify(this.exited)}) before answering /healthz\n${this.logTail()}`);
      try {
        const res = await fetch(`${this.httpUrl}/healthz`, { signal: AbortSignal.timeout(1000) });
        if (res.status === 200) return;
        last = `HTTP ${res.status}`;
      } catch (e) {
        last = e.cause?.code || e.message;
      }
      await sleep(200);
    }
    throw new Error(`moim did not answer /healthz within 30 s (${last})\n${this.logTail()}`);
  }

  logTail(lines = 60) {
    if (!this.logFile || !fs.existsSync(this.logFile)) return '(no moim log)';
    const tail = fs.readFileSync(this.logFile, 'utf8').split('\n').slice(-lines).join('\n');
    return `---- moim log (last ${lines} lines of ${this.logFile}) ----\n${tail}\n---- end ----`;
  }

  async stop() {
    if (!this.proc) return;
    process.off('exit', this.killOnExit);
    if (!this.exited) {
      this.proc.kill('SIGTERM');
      const gone = await Promise.race([once(this.proc, 'exit').then(() => true), sleep(5000).then(() => false)]);
      if (!gone) this.proc.kill('SIGKILL');
    }
    this.proc = null;
  }
}

/**
 * A TCP proxy in front of moim's HTTP port for one participant. The SDK's
 * signalling WebSocket runs through it, so a test can cut that connection (both
 * sides reset at once, as a dropped network would) while the media, which goes
 * straight to moim's UDP port, is left alone.
 */
export class CutProxy {
  constructor(targetPort) {
    this.targetPort = targetPort;
    this.requestLines = [];
    this.open = new Set();
  }

  async start() {
    this.server = net.createServer((client) => {
      const upstream = net.connect(this.targetPort, '127.0.0.1');
      const pair = { client, upstream };
      this.open.add(pair);
      let first = true;
      client.on('data', (chunk) => {
        if (first) {
          first = false;
          this.requestLines.push(chunk.toString('latin1').split('\r\n', 1)[0]);
        }
        upstream.write(chunk);
      });
      upstream.on('data', (chunk) => client.write(chunk));
      const end = () => {
        this.open.delete(pair);
        client.destroy();
        upstream.destroy();
      };
      for (const s of [client, upstream]) {
        s.on('close', end);
        s.on('error', end);
      }
    });
    this.server.listen(0, '127.0.0.1');
    await once(this.server, 'listening');
    this.port = this.server.address().port;
  }

  get wsUrl() {
    return `ws://127.0.0.1:${this.port}`;
  }

  /** The request paths (no query) of every connection, oldest first. */
  paths() {
    return this.requestLines.map((l) => l.split(' ')[1]?.split('?')[0]);
  }

  /** Reset every open connection; returns how many were cut. */
  cut() {
    const n = this.open.size;
    for (const { client, upstream } of [...this.open]) {
      client.resetAndDestroy();
      upstream.resetAndDestroy();
    }
    this.open.clear();
    return n;
  }

  async close() {
    this.cut();
    await new Promise((r) => this.server?.close(() => r()) ?? r());
  }
}
