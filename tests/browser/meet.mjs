// moim meet in Chromium, end to end (issue 14): a host logs in on the home page, creates a
// meeting with the lobby on and copies its invite link; a guest opens the link in another
// browser, types her name and waits; the host admits her; they see and hear each other,
// chat, she shares her screen; the host mutes her and then removes her, and her page says so.
//
// Each person has a browser of their own (its own profile and cookies). Media is Chromium's
// fake camera, microphone and screen; what arrives is read from getStats().
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { HERE, OUT_DIR, MoimServer, launchBrowser, consoleTail, waitFor, pickPorts } from './harness.mjs';
import { flowing } from './meet-media.mjs';

const DIST = path.resolve(HERE, '../../web/meet/dist');
const DESKTOP = { width: 1280, height: 800 };
const PHONE = { width: 390, height: 844 };
// What the OpenID Connect provider calls the person who logs in as "ada".
const ADA = 'Ada Example';

/**
 * npm oidc-provider on loopback (tests/oidc/provider.mjs), with moim meet registered as a
 * client whose redirect URI is moim's callback on `moimPort`. Resolves to its issuer.
 */
async function startProvider(moimPort) {
  const dir = path.resolve(HERE, '../oidc');
  const opts = {
    port: 0,
    keysDir: fs.mkdtempSync(path.join(OUT_DIR, 'oidc-keys-')),
    keys: ['a'],
    clients: [{ client_id: 'moim-meet', client_secret: 'meet-secret', redirect_uris: [`http://127.0.0.1:${moimPort}/auth/callback/oidc`] }],
  };
  const child = spawn(process.execPath, [path.join(dir, 'provider.mjs'), JSON.stringify(opts)], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const issuer = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`oidc-provider did not start: ${out}`)), 15_000);
    // Drained for the whole run: a full pipe would stop the provider mid-login.
    child.stdout.on('data', (d) => {
      out += d;
      const m = /LISTENING (\S+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    child.stderr.on('data', (d) => (out += d));
    child.on('exit', (code) => reject(new Error(`oidc-provider exited ${code}: ${out}`)));
  });
  return { issuer, stop: () => child.kill('SIGTERM') };
}

/** Signs in at the provider's own login and consent pages, until moim takes the browser back. */
async function signInAtProvider(page, issuer, login, moimOrigin) {
  for (let step = 0; step < 5 && page.url().startsWith(issuer); step++) {
    const name = page.locator('input[name=login]');
    if (await name.count()) {
      await name.fill(login);
      await page.locator('input[name=password]').fill('any');
    }
    const was = page.url();
    await page.locator('button[type=submit]').first().click();
    await page.waitForURL((u) => u.href !== was, { timeout: 15_000, waitUntil: 'domcontentloaded' });
  }
  assert.ok(page.url().startsWith(moimOrigin), `back at moim after the provider: ${page.url()}`);
}

async function shoot(page, name, size) {
  fs.mkdirSync(OUT_DIR, { recursive: true });
  const previous = page.viewportSize();
  await page.setViewportSize(size);
  await page.waitForTimeout(300);
  await page.screenshot({ path: path.join(OUT_DIR, `meet-${name}-${size.width}.png`) });
  if (previous) await page.setViewportSize(previous);
}

describe('moim meet: from the home page to a guest removed by the host', { timeout: 240_000 }, () => {
  let server;
  let provider;
  let adaBrowser;
  let kimBrowser;
  let leeBrowser;
  let ada;
  let kim;
  let lee;
  let inviteUrl;
  // Where each page's console log starts to be moim meet's (Ada's begins at the provider's
  // pages, which load a web font from the internet this machine does not have).
  const fromHere = new Map();
  let untilRemoval = new Map();
  const diag = () => `\n${ada ? consoleTail(ada, 30) : ''}\n${kim ? consoleTail(kim, 30) : ''}\n${server?.logTail(30) ?? ''}`;

  before(async () => {
    assert.ok(fs.existsSync(path.join(DIST, 'index.html')), `moim meet is not built in ${DIST}: run scripts/build-meet.sh`);
    fs.mkdirSync(OUT_DIR, { recursive: true });
    const ports = await pickPorts();
    provider = await startProvider(ports.http);
    server = new MoimServer({
      ports,
      args: ['--meet-dir', DIST, '--data-dir', fs.mkdtempSync(path.join(OUT_DIR, 'meet-data-'))],
      env: {
        MOIM_AUTH_OIDC_ISSUER: provider.issuer,
        MOIM_AUTH_OIDC_CLIENT_ID: 'moim-meet',
        MOIM_AUTH_OIDC_CLIENT_SECRET: 'meet-secret',
        MOIM_AUTH_OIDC_LABEL: 'Test SSO',
      },
    });
    await server.start();
    adaBrowser = await launchBrowser(server.httpUrl);
    kimBrowser = await launchBrowser(server.httpUrl);
    leeBrowser = await launchBrowser(server.httpUrl);
    ada = await adaBrowser.newPage('ada');
    kim = await kimBrowser.newPage('kim');
    lee = await leeBrowser.newPage('lee');
    for (const page of [ada, kim, lee]) await page.setViewportSize(DESKTOP);
  });

  after(async () => {
    await adaBrowser?.close();
    await kimBrowser?.close();
    await leeBrowser?.close();
    await server?.stop();
    provider?.stop();
  });

  test('Ada logs in at the OpenID Connect provider, creates a meeting with the lobby on, joins it and copies its invite link', async () => {
    await ada.goto(server.httpUrl + '/');
    await ada.getByRole('link', { name: 'Log in with Test SSO' }).click();
    // The provider's pages link a web font; with no internet their load event may never come.
    await ada.waitForURL((u) => u.href.startsWith(provider.issuer), { timeout: 15_000, waitUntil: 'domcontentloaded' });
    await signInAtProvider(ada, provider.issuer, 'ada', server.httpUrl);
    await ada.getByRole('heading', { name: 'New meeting' }).waitFor();
    assert.match(await ada.locator('.who').innerText(), /Ada Example/);
    fromHere.set(ada, ada.consoleLog.length);
    await shoot(ada, 'home', DESKTOP);
    await shoot(ada, 'home', PHONE);
    await ada.locator('#room-title').fill('Design review');
    await ada.locator('#room-lobby').check();
    await ada.getByRole('button', { name: 'Create' }).click();
    await ada.getByRole('heading', { name: 'Ready to join Design review?' }).waitFor();
    await ada.waitForFunction(() => document.querySelector('video.preview')?.readyState >= 2, null, { timeout: 15_000 });
    await shoot(ada, 'prejoin', DESKTOP);
    await shoot(ada, 'prejoin', PHONE);
    await ada.getByRole('button', { name: 'Join now' }).click();
    await ada.locator('[data-testid=toggle-mic]').waitFor({ timeout: 20_000 });
    await ada.getByRole('button', { name: 'Copy invite link' }).click();
    const out = ada.locator('[data-testid=invite-url]');
    await waitFor(async () => (await out.getAttribute('data-url')) || null, { describe: diag });
    inviteUrl = await out.getAttribute('data-url');
    assert.match(inviteUrl, /\/r\/[a-z]{3}-[a-z]{4}-[a-z]{3}\?invite=/);
  });

  test('Kim opens the link as a guest, types her name and waits; Ada admits her from the lobby', async () => {
    await kim.goto(inviteUrl);
    await kim.locator('#guest-name').fill('Kim');
    await kim.getByRole('button', { name: 'Join now' }).click();
    await kim.locator('[data-testid=status][data-state=waiting]').waitFor({ timeout: 15_000 });
    assert.match(await kim.locator('[data-testid=status]').innerText(), /Waiting for the host/);
    await shoot(kim, 'lobby-guest', DESKTOP);
    const admit = ada.getByRole('button', { name: 'Admit: Kim' });
    await admit.waitFor({ timeout: 20_000 });
    await shoot(ada, 'lobby-host', DESKTOP);
    await admit.click();
    await kim.locator('[data-testid=toggle-mic]').waitFor({ timeout: 25_000 });
  });

  test('Ada and Kim see and hear each other', async () => {
    const atAda = await flowing(ada, 'Kim', ['camera', 'audio']);
    const atKim = await flowing(kim, ADA, ['camera', 'audio']);
    console.log(`Ada receives Kim: ${JSON.stringify(atAda.first)} -> ${JSON.stringify(atAda.last)}`);
    console.log(`Kim receives Ada: ${JSON.stringify(atKim.first)} -> ${JSON.stringify(atKim.last)}`);
    assert.equal(await ada.locator('.tile[data-source=camera]').count(), 2, 'Ada sees two camera tiles');
  });

  test('Kim raises her hand and claps; Ada sees both on her tile, then the hand go down', async () => {
    const kimTile = (extra = '') => ada.locator(`.tile[data-source=camera]${extra}`, { hasText: 'Kim' });
    await kim.locator('[data-testid=toggle-hand]').click();
    await kimTile('[data-hand=true]').waitFor({ timeout: 10_000 });
    await kim.getByRole('button', { name: 'React with 👏' }).click();
    await kimTile().locator('[data-testid=reaction]', { hasText: '👏' }).waitFor({ timeout: 10_000 });
    await kim.locator('[data-testid=toggle-hand]').click();
    await kimTile('[data-hand=false]').waitFor({ timeout: 10_000 });
  });

  test('Ada switches to the speaker view: one tile large, the rest beside it', async () => {
    await ada.locator('[data-testid=toggle-view]').click();
    await ada.locator('.grid[data-view=speaker] .tile.featured').waitFor({ timeout: 5_000 });
    assert.equal(await ada.locator('.tile.featured').count(), 1);
    await shoot(ada, 'speaker-view', DESKTOP);
    await ada.locator('[data-testid=toggle-view]').click();
    await ada.locator('.grid[data-view=grid]').waitFor({ timeout: 5_000 });
  });

  test('a chat message crosses', async () => {
    await ada.locator('#chat-input').fill('Welcome, Kim!');
    await ada.locator('#chat-input').press('Enter');
    await kim.locator('[data-testid=chat-log] li', { hasText: 'Welcome, Kim!' }).waitFor({ timeout: 10_000 });
    assert.match(await kim.locator('[data-testid=chat-log] li').last().innerText(), /Ada/);
    await kim.locator('#chat-input').fill('Thanks, Ada');
    await kim.locator('#chat-input').press('Enter');
    await ada.locator('[data-testid=chat-log] li', { hasText: 'Thanks, Ada' }).waitFor({ timeout: 10_000 });
  });

  test('Lee logs in and joins late by the link; the chat so far is there for him, in order', async () => {
    const roomPath = new URL(inviteUrl).pathname;
    await lee.goto(server.httpUrl + '/');
    await lee.locator('#dev-name').fill('Lee');
    await lee.getByRole('button', { name: 'Log in' }).click();
    await lee.getByRole('heading', { name: 'New meeting' }).waitFor();
    await lee.goto(server.httpUrl + roomPath);
    await lee.getByRole('button', { name: 'Join now' }).click();
    await lee.locator('[data-testid=toggle-mic]').waitFor({ timeout: 20_000 });
    const log = lee.locator('[data-testid=chat-log] li');
    await log.nth(1).waitFor({ timeout: 10_000 });
    const lines = await log.allInnerTexts();
    assert.equal(lines.length, 2, `each message once: ${JSON.stringify(lines)}`);
    assert.match(lines[0], /Ada[\s\S]*Welcome, Kim!/);
    assert.match(lines[1], /Kim[\s\S]*Thanks, Ada/);
    await flowing(lee, ADA, ['camera']);
    // He clicked Join before his camera had started: it came in with him all the same.
    await flowing(ada, 'Lee', ['camera', 'audio']);
  });

  test("Kim shares her screen and Ada decodes it", async () => {
    await kim.locator('[data-testid=toggle-screen]').click();
    await ada.locator('.tile[data-source=screen_share]').waitFor({ timeout: 15_000 });
    const atAda = await flowing(ada, 'Kim', ['screen']);
    console.log(`Ada decodes Kim's screen: ${atAda.first.screen} -> ${atAda.last.screen} frames`);
    await ada.locator('.tile[data-source=camera]').nth(2).waitFor({ timeout: 10_000 });
    await shoot(ada, 'room', DESKTOP);
    await shoot(ada, 'room', PHONE);
  });

  test("Ada mutes Kim, then removes her; Kim's page says each", async () => {
    await ada.getByRole('button', { name: 'Mute: Kim' }).click();
    // livekit-client sometimes logs the signal socket closing as an error when it is
    // removed (1 run in about 5; moim sends the leave, then a close frame): errors are
    // counted up to here, and what came after is printed.
    untilRemoval = new Map([ada, kim, lee].map((p) => [p, p.consoleLog.length]));
    await kim.locator('[data-testid=notice]', { hasText: 'A host muted your microphone.' }).waitFor({ timeout: 10_000 });
    assert.equal(await kim.locator('[data-testid=toggle-mic]').getAttribute('aria-pressed'), 'true', "Kim's mic button shows muted");
    await ada.getByRole('button', { name: 'Remove: Kim' }).click();
    await kim.locator('[data-testid=ending][data-ending=removed]').waitFor({ timeout: 10_000 });
    assert.match(await kim.locator('[data-testid=ending] h1').innerText(), /removed you/);
    await waitFor(async () => (await ada.locator('.tile[data-source=camera]').count()) === 2, { describe: diag });
  });

  test('Lee leaves; his page says he left and offers to rejoin', async () => {
    await lee.getByRole('button', { name: 'Leave' }).click();
    await lee.locator('[data-testid=ending][data-ending=left]').waitFor({ timeout: 10_000 });
    assert.equal(await lee.getByRole('link', { name: 'Rejoin' }).getAttribute('href'), new URL(inviteUrl).pathname);
  });

  test('no page logged an error before the removal', () => {
    const isError = (l) => / (error|PAGEERROR): /.test(l);
    const errors = [ada, kim, lee].flatMap((p) => p.consoleLog.slice(fromHere.get(p) ?? 0, untilRemoval.get(p)).filter(isError));
    const later = [ada, kim, lee].flatMap((p) => p.consoleLog.slice(untilRemoval.get(p) ?? p.consoleLog.length).filter(isError));
    if (later.length) console.log(`after the removal: ${later.map((l) => l.slice(0, 200)).join(' | ')}`);
    assert.deepEqual(errors, [], 'console errors in normal use');
  });
});
