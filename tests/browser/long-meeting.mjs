// A meeting that outlives its tokens, as a livekit-client user lives it.
//
// Alice joins with a token that expires 10 s later; Bob is in the room with
// her. Apps mint short tokens on purpose (moim meet's last an hour), and a
// meeting is often longer. moim hands Alice fresh tokens while she is in the
// room (LiveKit's refresh_token), so when her network changes after her
// token has expired, both of livekit-client's ways back work: a resume of
// the signal connection and a full reconnect on new PeerConnections. Her
// first token is refused by then (checked through /rtc/validate), so the
// fresh one is what let her back in.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  MoimServer,
  startStaticServer,
  launchBrowser,
  mintToken,
  waitFor,
  sleep,
  requireDeps,
  evalWithin,
  openTestPage,
  consoleTail,
} from './harness.mjs';

requireDeps();

const SHORT_TTL_SECS = 10;
// moim allows 5 s of clock skew past a token's expiry.
const PAST_EXPIRY_MS = (SHORT_TTL_SECS + 5 + 3) * 1000;

describe('a meeting longer than its tokens', () => {
  const server = new MoimServer({ args: ['--no-turn'] });
  let pageServer;
  let browser;
  let alice;
  let bob;

  before(
    async () => {
      await server.start();
      pageServer = await startStaticServer();
      browser = await launchBrowser(pageServer.origin);
      alice = await browser.newPage('long-meeting/alice');
      bob = await browser.newPage('long-meeting/bob');
      await openTestPage(alice, pageServer.origin);
      await openTestPage(bob, pageServer.origin);
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

  const events = (page, name) =>
    evalWithin(page, (n) => window.app.events.filter((e) => e.name === n), name);
  const explain = async () =>
    [
      `alice's events: ${JSON.stringify(await evalWithin(alice, () => window.app.events.map((e) => e.name)).catch(() => []))}`,
      consoleTail(alice, 40),
      server.logTail(40),
    ].join('\n');
  const bobSeesAliceVideo = async () => {
    const s = await evalWithin(bob, () => window.app.summary());
    const a = s?.remotes.find((r) => r.identity === 'alice');
    return a?.tracks.some((t) => t.kind === 'video' && t.subscribed && t.hasTrack);
  };
  const bobDecoded = async () => (await evalWithin(bob, () => window.app.stats())).video.framesDecoded;

  test(
    'after its token expired, alice resumes and fully reconnects with the fresh ones',
    { timeout: 120_000 },
    async () => {
      const room = `long-${Math.random().toString(36).slice(2, 8)}`;
      const first = await mintToken('alice', room, { ttl: `${SHORT_TTL_SECS}s` });
      const minted = Date.now();
      await alice.evaluate(([url, token]) => window.app.join(url, token, {}, 'camera'), [
        server.wsUrl,
        first,
      ]);
      await bob.evaluate(([url, token]) => window.app.join(url, token, {}, 'none'), [
        server.wsUrl,
        await mintToken('bob', room),
      ]);
      await waitFor(bobSeesAliceVideo, { timeout: 20_000, describe: explain });

      const refreshed = await waitFor(async () => (await events(alice, 'tokenRefreshed'))[0], {
        timeout: 5000,
        describe: explain,
      });
      const firstExp = Math.floor(minted / 1000) + SHORT_TTL_SECS;
      assert.ok(
        refreshed.exp >= firstExp + 500,
        `the fresh token outlives the first by minutes (first exp ${firstExp}, fresh ${refreshed.exp})`,
      );

      await sleep(Math.max(0, minted + PAST_EXPIRY_MS - Date.now()));
      const validate = await fetch(`${server.httpUrl}/rtc/validate?access_token=${first}`);
      assert.equal(validate.status, 401, 'the token alice joined with is refused by now');

      // The signal connection drops; livekit-client resumes with the token it holds.
      await evalWithin(alice, () => window.app.room.simulateScenario('signal-reconnect'));
      await waitFor(async () => (await events(alice, 'reconnected')).length >= 1, {
        timeout: 20_000,
        describe: explain,
      });

      // A full reconnect: a new session, new PeerConnections, the camera published again.
      await evalWithin(alice, () => window.app.room.simulateScenario('full-reconnect'));
      await waitFor(async () => (await events(alice, 'reconnected')).length >= 2, {
        timeout: 30_000,
        describe: explain,
      });
      assert.deepEqual(await events(alice, 'disconnected'), [], 'alice never left the room');
      assert.equal((await evalWithin(alice, () => window.app.summary())).state, 'connected');

      // Bob sees her camera again after the full reconnect.
      await waitFor(bobSeesAliceVideo, { timeout: 20_000, describe: explain });
      const before = await bobDecoded();
      await waitFor(async () => (await bobDecoded()) > before + 15, {
        timeout: 20_000,
        describe: explain,
      });
    },
  );
});
