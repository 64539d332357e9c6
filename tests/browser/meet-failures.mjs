// moim meet says what went wrong, in the page, and what to do (issue 14, "Failure messages").
// Each failure is real: a browser that refuses the camera, a page on a plain-http name that is
// not this machine, a server that stopped, a proxy in front of moim that drops WebSocket
// upgrades (the seed team's nginx).
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { HERE, OUT_DIR, MoimServer, launchBrowser, consoleTail } from './harness.mjs';

const DIST = path.resolve(HERE, '../../web/meet/dist');

function meetServer(extra = []) {
  return new MoimServer({ args: ['--meet-dir', DIST, '--data-dir', fs.mkdtempSync(path.join(OUT_DIR, 'meet-fail-')), ...extra] });
}

/** Logs `name` in with the dev login and creates a meeting; its id. */
async function hostAMeeting(page, origin, name = 'Ada') {
  await page.goto(origin + '/');
  await page.locator('#dev-name').fill(name);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.getByRole('heading', { name: 'New meeting' }).waitFor();
  await page.getByRole('button', { name: 'Create' }).click();
  await page.getByRole('button', { name: 'Join now' }).waitFor();
  return new URL(page.url()).pathname.split('/').pop();
}

async function problem(page) {
  const box = page.locator('[data-testid=problem]').first();
  await box.waitFor({ timeout: 15_000 });
  return box.innerText();
}

/**
 * A reverse proxy like an nginx without the WebSocket lines: it passes plain HTTP on to
 * `proxy.target` and answers every Upgrade with 400, as nginx does when it drops the
 * Upgrade header. Listening before its target is known, so moim can be told its address.
 */
async function proxyWithoutWebSockets() {
  const proxy = { target: '', url: '', close: null };
  const server = http.createServer((req, res) => {
    const up = http.request(`${proxy.target}${req.url}`, { method: req.method, headers: { ...req.headers, host: new URL(proxy.target).host } }, (r) => {
      res.writeHead(r.statusCode ?? 502, r.headers);
      r.pipe(res);
    });
    up.on('error', () => res.writeHead(502).end());
    req.pipe(up);
  });
  server.on('upgrade', (_req, socket) => socket.end('HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n'));
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  proxy.url = `http://127.0.0.1:${server.address().port}`;
  proxy.close = () => new Promise((r) => server.close(r));
  return proxy;
}

describe('moim meet names what went wrong', { timeout: 180_000 }, () => {
  let server;
  before(async () => {
    assert.ok(fs.existsSync(path.join(DIST, 'index.html')), `moim meet is not built in ${DIST}: run scripts/build-meet.sh`);
    fs.mkdirSync(OUT_DIR, { recursive: true });
    server = meetServer();
    await server.start();
  });
  after(() => server?.stop());

  test('a browser that refuses the camera and microphone is told how to allow them', async () => {
    // No fake accept, no permission granted: the browser refuses, as a person clicking Block does.
    const browser = await launchBrowser(null, { without: ['--use-fake-ui-for-media-stream'] });
    try {
      const page = await browser.newPage('blocked');
      await hostAMeeting(page, server.httpUrl);
      const text = await problem(page);
      assert.match(text, /blocked the camera or microphone.*address bar/s, `${text}\n${consoleTail(page, 20)}`);
      assert.equal(await page.locator('#cam-on').isChecked(), false, 'the camera is shown off, and joining without it stays possible');
      assert.equal(await page.getByRole('button', { name: 'Join now' }).isEnabled(), true);
    } finally {
      await browser.close();
    }
  });

  test('a machine with no camera or microphone is told to plug one in or join without', async () => {
    // Chromium with neither fake devices nor real ones, as on a server or a desktop without a webcam.
    const browser = await launchBrowser(null, { without: ['--use-fake-device-for-media-stream'] });
    try {
      const page = await browser.newPage('no-devices');
      await hostAMeeting(page, server.httpUrl);
      const text = await problem(page);
      assert.match(text, /No camera or microphone was found/, `${text}\n${consoleTail(page, 20)}`);
    } finally {
      await browser.close();
    }
  });

  test('a server announcing an address the browser cannot reach: joined, but media does not connect', async () => {
    // The seed team's deployment: signalling works, media is sent to an address nobody
    // reaches (192.0.2.1 is TEST-NET-1, RFC 5737), and there is no TURN to fall back on.
    const unreachable = meetServer(['--node-ip', '192.0.2.1', '--no-turn']);
    await unreachable.start();
    const browser = await launchBrowser(unreachable.httpUrl);
    try {
      const page = await browser.newPage('no-media');
      await hostAMeeting(page, unreachable.httpUrl);
      await page.getByRole('button', { name: 'Join now' }).click();
      const box = page.locator('[data-testid=problem]').first();
      await box.waitFor({ timeout: 45_000 });
      const text = await box.innerText();
      assert.match(text, /media could not connect.*moim doctor/s, `${text}\n${consoleTail(page, 20)}`);
    } finally {
      await browser.close();
      await unreachable.stop();
    }
  });

  test('a Korean browser gets the page in Korean, and the switch changes and keeps the language', async () => {
    const browser = await launchBrowser(server.httpUrl, { extraArgs: ['--lang=ko-KR', '--accept-lang=ko-KR,ko'] });
    try {
      const page = await browser.newPage('korean');
      await page.goto(server.httpUrl + '/');
      await page.getByRole('heading', { name: '회의를 시작하거나 참여하려면 로그인하세요' }).waitFor({ timeout: 10_000 });
      assert.equal(await page.evaluate(() => document.documentElement.lang), 'ko');
      await page.getByRole('combobox', { name: '언어' }).selectOption('en');
      await page.getByRole('heading', { name: 'Log in to start or join a meeting' }).waitFor({ timeout: 5_000 });
      await page.reload();
      await page.getByRole('heading', { name: 'Log in to start or join a meeting' }).waitFor({ timeout: 10_000 });
    } finally {
      await browser.close();
    }
  });

  test('a page on plain http under a name other than this machine says it needs HTTPS', async () => {
    const port = new URL(server.httpUrl).port;
    const browser = await launchBrowser(null, { extraArgs: ['--host-resolver-rules=MAP meet.test 127.0.0.1'] });
    try {
      const page = await browser.newPage('insecure');
      await page.goto(`http://meet.test:${port}/r/abc-defg-hij`);
      const text = await problem(page);
      assert.match(text, /needs HTTPS/, text);
      assert.equal(await page.evaluate(() => window.isSecureContext), false);
    } finally {
      await browser.close();
    }
  });

  test('a proxy that drops WebSocket upgrades is named as the likely cause', async () => {
    // moim is told it is reached through the proxy, so the page and its join tokens point there.
    const proxy = await proxyWithoutWebSockets();
    const behind = meetServer(['--public-url', proxy.url]);
    await behind.start();
    proxy.target = behind.httpUrl;
    const real = proxy;
    const browser = await launchBrowser(real.url);
    try {
      const page = await browser.newPage('proxied');
      await hostAMeeting(page, real.url);
      await page.getByRole('button', { name: 'Join now' }).click();
      const text = await problem(page);
      assert.match(text, /refused the meeting connection \(WebSocket\).*proxy.*WebSocket upgrades/s, `${text}\n${consoleTail(page, 20)}`);
    } finally {
      await browser.close();
      await real.close();
      await behind.stop();
    }
  });

  test('a server that stopped is named, not a blank page', async () => {
    const browser = await launchBrowser(server.httpUrl);
    try {
      const page = await browser.newPage('stopped');
      await page.goto(server.httpUrl + '/');
      await page.locator('#dev-name').fill('Ada');
      await server.stop();
      await page.getByRole('button', { name: 'Log in' }).click();
      const text = await problem(page);
      assert.match(text, /did not answer/, text);
    } finally {
      await browser.close();
      server = null;
    }
  });
});
