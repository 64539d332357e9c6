// What the deployment tests share: scratch directories, certificates, ports, and
// third-party servers (nginx, Caddy, podman) started and stopped with their logs kept.
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { spawn, execFileSync } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';

/** A fresh directory under the system's temp dir, removed when the process exits. */
export function scratchDir(label) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `moim-deploy-${label}-`));
  process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export async function freePort() {
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

/** A self-signed certificate for `name` (and 127.0.0.1), made with openssl. */
export function selfSignedCert(name) {
  const dir = scratchDir('cert');
  const cert = path.join(dir, 'fullchain.pem');
  const key = path.join(dir, 'privkey.pem');
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-keyout', key, '-out', cert, '-days', '2', '-subj', `/CN=${name}`,
    '-addext', `subjectAltName=DNS:${name},IP:127.0.0.1`,
  ], { stdio: 'ignore' });
  return { cert, key };
}

/** `text` with each [from, to] replaced; a `from` that is missing is an error, so a
 * change to the shipped file cannot silently make a test test nothing. */
export function replaceAll(text, pairs) {
  let out = text;
  for (const [from, to] of pairs) {
    if (!out.includes(from)) throw new Error(`expected to find ${JSON.stringify(from)} in the file`);
    out = out.split(from).join(to);
  }
  return out;
}

/** Starts `bin`, logging to `dir`/<bin>.log; stop() ends it (SIGTERM, then SIGKILL). */
export function startProcess(bin, args, { dir, env = {} }) {
  const logFile = path.join(dir, `${path.basename(bin)}.log`);
  const fd = fs.openSync(logFile, 'a');
  const proc = spawn(bin, args, { stdio: ['ignore', fd, fd], env: { ...process.env, ...env } });
  fs.closeSync(fd);
  let exit = null;
  proc.on('exit', (code, signal) => (exit = { code, signal }));
  proc.on('error', (error) => (exit = { error: error.message }));
  const kill = () => {
    try {
      proc.kill('SIGKILL');
    } catch {}
  };
  process.on('exit', kill);
  const logTail = (lines = 30) => {
    const text = fs.existsSync(logFile) ? fs.readFileSync(logFile, 'utf8') : '';
    const errors = fs.existsSync(path.join(dir, 'error.log')) ? fs.readFileSync(path.join(dir, 'error.log'), 'utf8') : '';
    return `---- ${bin} (${logFile}) ----\n${(text + errors).split('\n').slice(-lines).join('\n')}`;
  };
  return {
    dir,
    proc,
    logTail,
    async waitForPort(port, timeout = 20_000) {
      const deadline = Date.now() + timeout;
      while (Date.now() < deadline) {
        if (exit) throw new Error(`${bin} exited (${JSON.stringify(exit)})\n${logTail()}`);
        const up = await new Promise((resolve) => {
          const s = net.connect(port, '127.0.0.1', () => {
            s.destroy();
            resolve(true);
          });
          s.on('error', () => resolve(false));
        });
        if (up) return;
        await sleep(100);
      }
      throw new Error(`${bin} did not listen on ${port} within ${timeout} ms\n${logTail()}`);
    },
    async stop() {
      process.off('exit', kill);
      if (exit) return;
      proc.kill('SIGTERM');
      const done = new Promise((resolve) => proc.once('exit', resolve));
      if (!(await Promise.race([done.then(() => true), sleep(5000).then(() => false)]))) kill();
    },
  };
}
