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
import { HERE, OUT_DIR, MoimServer, launchBrowser, consoleTail, waitFor, evalWithin } from './harness.mjs';

const DIST = path.resolve(HERE, '../../web/meet/dist');
const DESKTOP = { width: 1280, height: 800 };
const PHONE = { width: 390, height: 844 };

/** What `page`'s room receives from the participant called `name`: frames decoded, audio packets. */
async function received(page, name) {
  return evalWithin(page, async (name) => {
    const room = window.moimRoom;
    const from = room && [...room.remoteParticipants.values()].find((p) => p.name === name);
    const out = { camera: 0, screen: 0, audio: 0 };
    if (!from) return out;
    for (const pub of from.trackPublications.values()) {
      const report = pub.track && (await pub.track.getRTCStatsReport());
      report?.forEach((s) => {
        if (s.type !== 'inbound-rtp') return;
        if (s.kind === 'video') out[pub.source === 'screen_share' ? 'screen' : 'camera'] += s.framesDecoded ?? 0;
        else out.audio += s.packetsReceived ?? 0;
      });
    }
    return out;
  }, name);
}

/** Waits until what `page` receives from `name` has grown in every one of `kinds`. */
async function flowing(page, name, kinds) {
  const first = await received(page, name);
  let last = first;
  await waitFor(
    async () => {
      last = await received(page, name);
      return kinds.every((k) => last[k] > first[k] && last[k] > 0);
    },
    { timeout: 20_000, describe: () => `${page.label} from ${name}: ${JSON.stringify(first)} -> ${JSON.stringify(last)}` },
  );
  return { first, last };
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
  let adaBrowser;
  let kimBrowser;
  let leeBrowser;
  let ada;
  let kim;
  let lee;
  let inviteUrl;
  const diag = () => `\n${ada ? consoleTail(ada, 30) : ''}\n${kim ? consoleTail(kim, 30) : ''}\n${server?.logTail(30) ?? ''}`;

  before(async () => {
    assert.ok(fs.existsSync(path.join(DIST, 'index.html')), `moim meet is not built in ${DIST}: run scripts/build-meet.sh`);
    server = new MoimServer({ args: ['--meet-dir', DIST, '--data-dir', fs.mkdtempSync(path.join(OUT_DIR, 'meet-data-'))] });
    fs.mkdirSync(OUT_DIR, { recursive: true });
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
  });

  test('Ada logs in, creates a meeting with the lobby on, joins it and copies its invite link', async () => {
    await ada.goto(server.httpUrl + '/');
    await ada.locator('#dev-name').fill('Ada');
    await ada.getByRole('button', { name: 'Log in' }).click();
    await ada.getByRole('heading', { name: 'New meeting' }).waitFor();
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
    const atKim = await flowing(kim, 'Ada', ['camera', 'audio']);
    console.log(`Ada receives Kim: ${JSON.stringify(atAda.first)} -> ${JSON.stringify(atAda.last)}`);
    console.log(`Kim receives Ada: ${JSON.stringify(atKim.first)} -> ${JSON.stringify(atKim.last)}`);
    assert.equal(await ada.locator('.tile[data-source=camera]').count(), 2, 'Ada sees two camera tiles');
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
    await flowing(lee, 'Ada', ['camera']);
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

  test('neither page logged an error', () => {
    const errors = [ada, kim, lee].flatMap((p) => p.consoleLog.filter((l) => / (error|PAGEERROR): /.test(l)));
    assert.deepEqual(errors, [], 'console errors in normal use');
  });
});
