// moim meet with the keyboard alone (issue 14, "keyboard operable, with labelled controls").
// Kay never touches a mouse: Tab moves the focus, Enter and Space press. She logs in with the
// dev login, creates a meeting, joins it, mutes her microphone, sends a chat message and leaves.
// On every page she passes, each visible control has a name a screen reader can say.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { HERE, OUT_DIR, MoimServer, launchBrowser, consoleTail } from './harness.mjs';

const DIST = path.resolve(HERE, '../../web/meet/dist');
const MAX_TABS = 60;

/**
 * Presses Tab until the focused element is the one `want` describes (a CSS selector, and if
 * given, its exact text); fails naming where the focus went instead.
 */
async function tabTo(page, want) {
  const visited = [];
  for (let i = 0; i < MAX_TABS; i++) {
    await page.keyboard.press('Tab');
    const at = await page.evaluate(({ selector, text }) => {
      const el = document.activeElement;
      if (!el || el === document.body) return { hit: false, what: 'body' };
      const hit = el.matches(selector) && (text === undefined || el.textContent.trim() === text);
      return { hit, what: `${el.tagName.toLowerCase()}${el.id ? '#' + el.id : ''} "${(el.textContent || el.getAttribute('aria-label') || '').trim().slice(0, 30)}"` };
    }, want);
    if (at.hit) return;
    visited.push(at.what);
  }
  assert.fail(`Tab never reached ${JSON.stringify(want)}; the focus went through: ${visited.join(' → ')}`);
}

/** Visible buttons, inputs and selects that a screen reader would announce without a name. */
async function unnamedControls(page) {
  return page.evaluate(() => {
    const named = (el) => {
      const label = el.getAttribute('aria-label') || el.getAttribute('title') || '';
      const byLabel = [...(el.labels || [])].map((l) => l.textContent.trim()).join('');
      const byRef = (el.getAttribute('aria-labelledby') || '')
        .split(/\s+/)
        .map((id) => document.getElementById(id)?.textContent.trim() || '')
        .join('');
      const text = el.tagName === 'BUTTON' || el.tagName === 'A' ? el.textContent.trim() : '';
      return !!(label.trim() || byLabel || byRef || text);
    };
    return [...document.querySelectorAll('button, input:not([type=hidden]), select, textarea, a[href]')]
      .filter((el) => el.getClientRects().length > 0 && !named(el))
      .map((el) => el.outerHTML.slice(0, 100));
  });
}

describe('moim meet with the keyboard alone', { timeout: 120_000 }, () => {
  let server;
  let browser;
  before(async () => {
    assert.ok(fs.existsSync(path.join(DIST, 'index.html')), `moim meet is not built in ${DIST}: run scripts/build-meet.sh`);
    fs.mkdirSync(OUT_DIR, { recursive: true });
    server = new MoimServer({ args: ['--meet-dir', DIST, '--data-dir', fs.mkdtempSync(path.join(OUT_DIR, 'meet-keys-'))] });
    await server.start();
    browser = await launchBrowser(server.httpUrl);
  });
  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  test('Kay logs in, hosts a meeting, mutes, chats and leaves with Tab, Enter and Space', async () => {
    const page = await browser.newPage('keyboard');
    const named = async (where) => assert.deepEqual(await unnamedControls(page), [], `unnamed controls on ${where}`);
    try {
      await page.goto(server.httpUrl + '/');
      await page.locator('#dev-name').waitFor();
      await named('the login page');
      await tabTo(page, { selector: '#dev-name' });
      await page.keyboard.type('Kay');
      await page.keyboard.press('Enter');

      await page.getByRole('heading', { name: 'New meeting' }).waitFor();
      await named('home');
      await tabTo(page, { selector: 'button', text: 'Create' });
      await page.keyboard.press('Enter');

      await page.getByRole('button', { name: 'Join now' }).waitFor();
      await named('the pre-join page');
      await tabTo(page, { selector: 'button', text: 'Join now' });
      await page.keyboard.press('Enter');

      const mic = page.locator('[data-testid=toggle-mic]');
      await mic.waitFor();
      await page.waitForFunction(() => document.querySelector('[data-testid=toggle-mic]')?.textContent === 'Mute');
      await named('the meeting');
      await tabTo(page, { selector: '[data-testid=toggle-mic]' });
      await page.keyboard.press('Space');
      await page.waitForFunction(() => document.querySelector('[data-testid=toggle-mic]')?.getAttribute('aria-pressed') === 'true');
      assert.equal(await mic.innerText(), 'Unmute', 'Space on the focused button muted the microphone');

      await tabTo(page, { selector: '#chat-input' });
      await page.keyboard.type('typed, not clicked');
      await page.keyboard.press('Enter');
      await page.locator('[data-testid=chat-log] li', { hasText: 'typed, not clicked' }).waitFor();

      await tabTo(page, { selector: 'button', text: 'Leave' });
      await page.keyboard.press('Enter');
      await page.getByRole('heading', { name: 'You left the meeting' }).waitFor();
      await named('the page after leaving');
    } catch (e) {
      e.message += `\n${consoleTail(page, 30)}`;
      throw e;
    }
  });
});
