// Shared helpers for the browser end-to-end suite: the moim server process, the
// static page server, Chromium (playwright-core) and token minting.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import dgram from 'node:dgram';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';

export const HERE = path.dirname(fileURLToPath(import.meta.url));
export const OUT_DIR = path.join(HERE, 'out');
export const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';
export const API_KEY = 'devkey';
export const API_SECRET = 'secret';

// The exact flag set required by PRODUCT.md "Test strategy". playwright-core adds its own
// automation flags; the user-data-dir is a fresh temporary directory per launch.
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--use-fake-device-for-media-stream',
  '--use-fake-ui-for-media-stream',
  // page/app.js speak() plays a tone through an AudioContext.
  '--autoplay-policy=no-user-gesture-required',
];

export function moimBinary() {
  const fromEnv = process.env.MOIM_BIN;
  return path.resolve(HERE, fromEnv && fromEnv.length > 0 ? fromEnv : '../../target/debug/moim');
}

export function requireDeps() {
  const missing = ['playwright-core', 'livekit-client', 'livekit-server-sdk'].filter(
    (d) => !fs.existsSync(path.join(HERE, 'node_modules', d, 'package.json')),
  );
  if (missing.length) {
    throw new Error(
      `missing npm packages (${missing.join(', ')}): run tests/browser/install.sh first`,
    );
  }
}

export function livekitClientVersion() {
  return JSON.parse(
    fs.readFileSync(path.join(HERE, 'node_modules/livekit-client/package.json'), 'utf8'),
  ).version;
}

// ---------------------------------------------------------------------------------------
// Ports

async function freeTcpPort() {
  const srv = net.createServer();
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const { port } = srv.address();
  srv.close();
  await once(srv, 'close');
  return port;
}

async function freeUdpPort() {
  const sock = dgram.createSocket('udp4');
  sock.bind(0, '127.0.0.1');
  await once(sock, 'listening');
  const { port } = sock.address();
  await new Promise((r) => sock.close(r));
  return port;
}

/** Three distinct free ports: HTTP/WS, ICE-TCP, UDP media. */
export async function pickPorts() {
  const used = new Set();
  const pick = async (fn) => {
    for (let i = 0; i < 20; i++) {
      const p = await fn();
      if (!used.has(p)) {
        used.add(p);
        return p;
      }
    }
    throw new Error('could not find a free port');
  };
  const http = await pick(freeTcpPort);
  const tcp = await pick(freeTcpPort);
  const udp = await pick(freeUdpPort);
  return { http, tcp, udp };
}

// ---------------------------------------------------------------------------------------
// moim server

export class MoimServer {
  /**
   * `args` are added to `moim serve`'s flags, `env` to its environment. `ports` (from
   * pickPorts) fixes the ports, for a test that must name them before moim starts.
   * `command: 'auth'` runs `moim auth` instead.
   */
  constructor({ args = [], env = {}, ports = null, command = 'serve' } = {}) {
    this.command = command;
    this.extraArgs = args;
    this.extraEnv = env;
    this.proc = null;
    this.ports = ports;
    this.logFile = null;
    this.exit = null; // {code, signal} once exited
  }

  get httpUrl() {
    return `http://127.0.0.1:${this.ports.http}`;
  }

  get wsUrl() {
    return `ws://127.0.0.1:${this.ports.http}`;
  }

  async start() {
    const bin = moimBinary();
    if (!fs.existsSync(bin)) {
      throw new Error(
        `moim server binary not found at ${bin}\n` +
          `  build it first (cargo build -p <moim binary crate>, producing target/debug/moim),\n` +
          `  or point MOIM_BIN at an existing binary (relative paths resolve against tests/browser/).`,
      );
    }
    try {
      fs.accessSync(bin, fs.constants.X_OK);
    } catch {
      throw new Error(`moim server binary at ${bin} is not executable`);
    }
    this.ports ??= await pickPorts();
    fs.mkdirSync(OUT_DIR, { recursive: true });
    this.logFile = path.join(OUT_DIR, `moim-server-${Date.now()}.log`);
    const extra = (process.env.MOIM_BROWSER_EXTRA_ARGS || '').split(/\s+/).filter(Boolean);
    // `moim auth` (the app apart from the media server) has only an HTTP port.
    const media = this.command === 'serve' ? ['--rtc-tcp-port', String(this.ports.tcp), '--rtc-udp-port', String(this.ports.udp), ...extra] : [];
    const args = [this.command, '--dev', '--bind', '127.0.0.1', '--port', String(this.ports.http), ...media, ...this.extraArgs];
    const fd = fs.openSync(this.logFile, 'a');
    fs.writeSync(fd, `# ${bin} ${args.join(' ')}\n`);
    this.cmdline = `${bin} ${args.join(' ')}`;
    this.proc = spawn(bin, args, {
      stdio: ['ignore', fd, fd],
      env: { RUST_LOG: 'info', RUST_BACKTRACE: '1', ...process.env, ...this.extraEnv },
    });
    fs.closeSync(fd);
    this.proc.on('exit', (code, signal) => {
      this.exit = { code, signal };
    });
    this.proc.on('error', (err) => {
      this.exit = { code: null, signal: null, error: err };
    });
    // Make sure the server never outlives the runner, even on an uncaught exception.
    this._onExit = () => {
      try {
        this.proc?.kill('SIGKILL');
      } catch {}
    };
    process.on('exit', this._onExit);

    const deadline = Date.now() + 30_000;
    let lastErr = 'no response yet';
    while (Date.now() < deadline) {
      if (this.exit) {
        throw new Error(
          `moim server exited before becoming healthy (${JSON.stringify(this.exit)})\n` +
            `  command: ${this.cmdline}\n${this.logTail(40)}`,
        );
      }
      try {
        const res = await fetch(`${this.httpUrl}/healthz`, { signal: AbortSignal.timeout(1000) });
        if (res.status === 200) return;
        lastErr = `HTTP ${res.status}`;
      } catch (e) {
        lastErr = e.cause?.code || e.message;
      }
      await sleep(200);
    }
    throw new Error(
      `moim server did not answer GET /healthz with 200 within 30 s (last: ${lastErr})\n` +
        `  command: ${this.cmdline}\n${this.logTail(40)}`,
    );
  }

  logTail(lines = 60) {
    if (!this.logFile || !fs.existsSync(this.logFile)) return '  (no server log)';
    const all = fs.readFileSync(this.logFile, 'utf8').split('\n');
    const tail = all.slice(-lines - 1).join('\n');
    return `---- moim server log (last ${lines} lines of ${this.logFile}) ----\n${tail}\n---- end server log ----`;
  }

  async stop() {
    if (!this.proc) return;
    process.off('exit', this._onExit);
    if (!this.exit) {
      this.proc.kill('SIGTERM');
      const exited = await Promise.race([
        once(this.proc, 'exit').then(() => true),
        sleep(3000).then(() => false),
      ]);
      if (!exited) {
        this.proc.kill('SIGKILL');
        await Promise.race([once(this.proc, 'exit'), sleep(2000)]);
      }
    }
    this.proc = null;
  }
}

// ---------------------------------------------------------------------------------------
// Static page server

const STATIC_FILES = {
  '/': ['page/index.html', 'text/html; charset=utf-8'],
  '/index.html': ['page/index.html', 'text/html; charset=utf-8'],
  '/app.js': ['page/app.js', 'text/javascript; charset=utf-8'],
  '/livekit-client.umd.js': [
    'node_modules/livekit-client/dist/livekit-client.umd.js',
    'text/javascript; charset=utf-8',
  ],
};

export async function startStaticServer() {
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://127.0.0.1');
    const entry = STATIC_FILES[url.pathname];
    if (url.pathname === '/favicon.ico') {
      res.writeHead(204);
      res.end();
      return;
    }
    if (!entry) {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('not found');
      return;
    }
    const body = fs.readFileSync(path.join(HERE, entry[0]));
    res.writeHead(200, { 'content-type': entry[1], 'cache-control': 'no-store' });
    res.end(body);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address();
  return {
    origin: `http://127.0.0.1:${port}`,
    close: () => new Promise((r) => server.close(() => r())),
  };
}

// ---------------------------------------------------------------------------------------
// Chromium

/**
 * Runs in every page before any page script: records every RTCPeerConnection and WebSocket
 * so tests can read getStats() and find / kill the signalling socket without relying on
 * livekit-client internals.
 */
function pageInitScript() {
  if (window.__moim) return;
  const rec = { pcs: [], wss: [] };
  window.__moim = rec;
  const OrigPC = window.RTCPeerConnection;
  if (OrigPC) {
    class RecordingPC extends OrigPC {
      constructor(...args) {
        super(...args);
        rec.pcs.push(this);
      }
    }
    window.RTCPeerConnection = RecordingPC;
    if (window.webkitRTCPeerConnection) window.webkitRTCPeerConnection = RecordingPC;
  }
  const OrigWS = window.WebSocket;
  const redact = (u) => {
    try {
      const x = new URL(u);
      for (const k of ['access_token', 'join_request']) {
        if (x.searchParams.has(k)) x.searchParams.set(k, `<${x.searchParams.get(k).length} chars>`);
      }
      return x.toString();
    } catch {
      return String(u);
    }
  };
  class RecordingWS extends OrigWS {
    constructor(url, ...rest) {
      super(url, ...rest);
      const entry = {
        ws: this,
        url: String(url),
        path: new URL(String(url), location.href).pathname,
        created: Date.now(),
        opened: null,
        closed: null,
        closeCode: null,
        closeReason: null,
        killedByTest: false,
      };
      rec.wss.push(entry);
      console.log(`[moim-test] WebSocket connect ${redact(url)}`);
      this.addEventListener('open', () => {
        entry.opened = Date.now();
        console.log(`[moim-test] WebSocket open ${entry.path}`);
      });
      this.addEventListener('close', (ev) => {
        entry.closed = Date.now();
        entry.closeCode = ev.code;
        entry.closeReason = ev.reason;
        console.log(`[moim-test] WebSocket close ${entry.path} code=${ev.code} reason=${ev.reason}`);
      });
      this.addEventListener('error', () => console.log(`[moim-test] WebSocket error ${entry.path}`));
    }
  }
  window.WebSocket = RecordingWS;
}

/**
 * Launches Chromium with a fresh user-data-dir. Returns {context, newPage(label), close}.
 * Every page's console and page errors are kept for failure reports.
 */
/**
 * A Chromium of its own (profile, cookies). `pageOrigin` is granted camera and microphone.
 * `without` drops flags from CHROMIUM_ARGS (`--use-fake-ui-for-media-stream`, to let a
 * permission prompt be refused); `extraArgs` adds some.
 */
export async function launchBrowser(pageOrigin, { without = [], extraArgs = [] } = {}) {
  const { chromium } = await import('playwright-core');
  if (!fs.existsSync(CHROMIUM)) {
    throw new Error(`Chromium not found at ${CHROMIUM} (apt-get install -y chromium)`);
  }
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'moim-chromium-'));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: [...CHROMIUM_ARGS.filter((a) => !without.includes(a)), ...extraArgs],
    timeout: 30_000,
  });
  if (pageOrigin) {
    await context.grantPermissions(['camera', 'microphone'], { origin: pageOrigin });
  }
  await context.addInitScript(pageInitScript);
  // The persistent context opens with one blank page; close it so only our pages exist.
  for (const p of context.pages()) await p.close().catch(() => {});
  const pages = [];
  const newPage = async (label) => {
    const page = await context.newPage();
    const log = [];
    const stamp = () => new Date().toISOString().slice(11, 23);
    page.on('console', (m) => log.push(`${stamp()} [${label}] ${m.type()}: ${m.text()}`));
    page.on('pageerror', (e) => log.push(`${stamp()} [${label}] PAGEERROR: ${e.stack || e.message}`));
    page.on('crash', () => log.push(`${stamp()} [${label}] PAGE CRASHED`));
    page.on('requestfailed', (r) =>
      log.push(`${stamp()} [${label}] request failed: ${r.url().slice(0, 160)} ${r.failure()?.errorText}`),
    );
    page.consoleLog = log;
    page.label = label;
    pages.push(page);
    return page;
  };
  const close = async () => {
    await context.close().catch(() => {});
    fs.rmSync(userDataDir, { recursive: true, force: true });
  };
  return { context, newPage, pages, close, version: context.browser()?.version() };
}

export function consoleTail(page, lines = 80) {
  const log = page.consoleLog || [];
  return `---- page ${page.label} console (last ${Math.min(lines, log.length)} of ${log.length}) ----\n${log
    .slice(-lines)
    .join('\n')}\n---- end page ${page.label} console ----`;
}

// ---------------------------------------------------------------------------------------
// Tokens

export async function mintToken(identity, room, { ttl = '15m', name } = {}) {
  const { AccessToken } = await import('livekit-server-sdk');
  const at = new AccessToken(API_KEY, API_SECRET, { identity, name: name || identity, ttl });
  at.addGrant({
    roomJoin: true,
    room,
    canPublish: true,
    canSubscribe: true,
    canPublishData: true,
  });
  return at.toJwt();
}

// ---------------------------------------------------------------------------------------
// Misc

/** Polls fn() until it returns a truthy value; throws with describe() on timeout. */
export async function waitFor(fn, { timeout = 10_000, interval = 250, describe = () => '' } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    last = await fn();
    if (last) return last;
    if (Date.now() > deadline) {
      const extra = await describe();
      throw new Error(`timed out after ${timeout} ms${extra ? `: ${extra}` : ''}`);
    }
    await sleep(interval);
  }
}

/** page.evaluate with a deadline, so a wedged page cannot hang a test or its diagnostics. */
export async function evalWithin(page, fn, arg, ms = 5000) {
  return Promise.race([
    page.evaluate(fn, arg),
    sleep(ms).then(() => {
      throw new Error(`page.evaluate timed out after ${ms} ms`);
    }),
  ]);
}

/** Loads the test page from `origin` and waits until its helpers are ready. */
export async function openTestPage(page, origin) {
  await page.goto(`${origin}/index.html`, { waitUntil: 'load', timeout: 15_000 });
  await page.waitForFunction(() => window.app && window.app.ready, null, { timeout: 10_000 });
}

// A page runner's last word (the netns runners run under `ip netns exec`
// and report on stdout): closes the browser and the page server, prints
// `RESULT <json>` for the test to read, and exits, 1 after an error.
export async function printResultAndExit(result, err, { browser, pageServer, consoleText }) {
  if (err) result.error = String(err.stack || err);
  if (consoleText) result.console = consoleText;
  await browser?.close().catch(() => {});
  await pageServer?.close().catch(() => {});
  console.log(`RESULT ${JSON.stringify(result)}`);
  process.exit(err ? 1 : 0);
}

export { sleep };
