// What a livekit-client developer sees when moim turns a join away. After a
// failed WebSocket, livekit-client asks the validate endpoint why; it shows
// the answer's text for 401/403/404 and a generic "websocket error" for
// anything else, so for a 414 or a 503 the sentence must at least be there
// for the page, and the developer's network panel, to read.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import {
  MoimServer,
  startStaticServer,
  launchBrowser,
  mintToken,
  waitFor,
  requireDeps,
  openTestPage,
  API_KEY,
  API_SECRET,
} from './harness.mjs';

requireDeps();

/** A roomJoin token with no `sub`, which livekit-server-sdk refuses to mint. */
function namelessToken(room) {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const now = Math.floor(Date.now() / 1000);
  const unsigned = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({
    iss: API_KEY,
    nbf: now - 1,
    exp: now + 600,
    video: { roomJoin: true, room },
  })}`;
  const sig = createHmac('sha256', API_SECRET).update(unsigned).digest('base64url');
  return `${unsigned}.${sig}`;
}

/** Joins in the page and returns what livekit-client threw, or null. */
async function joinError(page, url, token) {
  return page.evaluate(
    async ([u, t]) => {
      try {
        await window.app.join(u, t, {}, 'none');
        return null;
      } catch (e) {
        return String(e.message);
      }
    },
    [url, token],
  );
}

/**
 * What the page's own code (or its developer, in the network panel) gets from
 * the validate endpoint livekit-client asked: status and text, readable
 * across origins.
 */
async function validateFromPage(page, httpUrl, token) {
  return page.evaluate(
    async ([u, t]) => {
      try {
        const r = await fetch(`${u}/rtc/validate?access_token=${t}`);
        return { status: r.status, text: await r.text() };
      } catch (e) {
        return { status: null, text: `fetch failed: ${e.message}` };
      }
    },
    [httpUrl, token],
  );
}

describe('livekit-client is told why moim refuses a join', () => {
  const server = new MoimServer({ args: ['--no-turn'], env: { MOIM_DRAIN_TIMEOUT_SECS: '600' } });
  let pageServer;
  let browser;

  before(
    async () => {
      await server.start();
      pageServer = await startStaticServer();
      browser = await launchBrowser(pageServer.origin);
    },
    { timeout: 60_000 },
  );
  after(
    async () => {
      await browser?.close();
      await pageServer?.close();
      await server.stop();
    },
    { timeout: 20_000 },
  );

  const freshPage = async (label) => {
    const page = await browser.newPage(label);
    await openTestPage(page, pageServer.origin);
    return page;
  };

  test('a token without an identity: livekit-client shows moim\'s sentence', { timeout: 30_000 }, async () => {
    const page = await freshPage('refusals/nameless');
    const message = await joinError(page, server.wsUrl, namelessToken('refusals'));
    assert.ok(message, 'the join fails');
    assert.match(message, /no identity/);
  });

  test('a token too large for a URL: 414 with a sentence the page can read', { timeout: 30_000 }, async () => {
    const page = await freshPage('refusals/huge');
    // The page has just talked to moim, so a kept-alive connection may be
    // in the browser's pool: the sentence must come on it too.
    await validateFromPage(page, server.httpUrl, await mintToken('small', 'refusals'));
    const token = `${await mintToken('big', 'refusals')}${'a'.repeat(100 * 1024)}`;
    assert.ok(await joinError(page, server.wsUrl, token), 'the join fails');
    const seen = await validateFromPage(page, server.httpUrl, token);
    assert.equal(seen.status, 414, seen.text);
    assert.match(seen.text, /token is too large/);
  });

  test('a full room: the newcomer\'s socket closes saying so', { timeout: 60_000 }, async () => {
    const { RoomServiceClient } = await import('livekit-server-sdk');
    const rooms = new RoomServiceClient(server.httpUrl, API_KEY, API_SECRET);
    await rooms.createRoom({ name: 'refusals-full', maxParticipants: 1 });
    const first = await freshPage('refusals/first');
    await first.evaluate(
      ([u, t]) => window.app.join(u, t, {}, 'none'),
      [server.wsUrl, await mintToken('alice', 'refusals-full')],
    );
    const second = await freshPage('refusals/second');
    assert.ok(
      await joinError(second, server.wsUrl, await mintToken('bob', 'refusals-full')),
      'the join fails',
    );
    const closes = await second.evaluate(() =>
      window.app.webSockets().filter((w) => w.closeCode !== null),
    );
    const full = closes.find((w) => /room is full/.test(w.closeReason ?? ''));
    assert.ok(full, `a close frame says the room is full: ${JSON.stringify(closes)}`);
    assert.equal(full.closeCode, 1008);
    assert.equal(await first.evaluate(() => window.app.summary().state), 'connected');
  });

  test('a draining server: 503 for newcomers while the call goes on', { timeout: 60_000 }, async () => {
    const inCall = await freshPage('refusals/in-call');
    await inCall.evaluate(
      ([u, t]) => window.app.join(u, t, {}, 'none'),
      [server.wsUrl, await mintToken('alice', 'refusals-drain')],
    );
    server.proc.kill('SIGTERM');
    await waitFor(
      async () => (await fetch(`${server.httpUrl}/healthz`).catch(() => null))?.status === 503,
      { timeout: 5000, describe: () => 'the server to start draining' },
    );
    const late = await freshPage('refusals/late');
    const bob = await mintToken('bob', 'refusals-drain');
    assert.ok(await joinError(late, server.wsUrl, bob), 'the join fails');
    const seen = await validateFromPage(late, server.httpUrl, bob);
    assert.equal(seen.status, 503, seen.text);
    assert.match(seen.text, /shutting down/);
    const state = await inCall.evaluate(() => window.app.summary().state);
    assert.equal(state, 'connected', 'the call in progress goes on');
  });
});
