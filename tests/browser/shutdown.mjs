// A rolling deploy, as a livekit-client user lives it: two moim servers stand
// behind a load balancer that health-checks them. Alice and Bob are in a call
// on the first server when it gets SIGTERM. Its /healthz turns 503 so the
// balancer sends new connections to the second; the call goes on through the
// drain; then moim tells both pages to reconnect (Leave, SERVER_SHUTDOWN,
// action RECONNECT), closes with 1001 and a reason, and exits 0. The pages
// join again through the same URL, land on the second server, and Bob sees
// Alice's video again.
//
// Alice and Bob each get their own Chromium, as two people on two machines
// do. On a full reconnect livekit-client stops and re-acquires the camera;
// two pages of one Chromium doing that at the same moment share its fake
// capture device, which then often delivers no frame to either (the track
// stays "live", the encoder counts 0 frames). That looked like a moim bug
// until the pages' outbound stats were read: explain() prints them.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
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

/**
 * A TCP load balancer on loopback: each new connection goes to the first
 * backend whose /healthz answers 200, as a real balancer's health check does.
 */
async function startBalancer(backends) {
  const routed = [];
  const sockets = new Set();
  const healthy = async () => {
    for (const b of backends) {
      try {
        const r = await fetch(`${b.httpUrl}/healthz`, { signal: AbortSignal.timeout(500) });
        if (r.status === 200) return b;
      } catch {}
    }
    return null;
  };
  const server = net.createServer((client) => {
    client.pause();
    sockets.add(client);
    client.on('close', () => sockets.delete(client));
    client.on('error', () => client.destroy());
    healthy().then((b) => {
      if (!b) {
        client.destroy();
        return;
      }
      routed.push({ to: b.name, t: Date.now() });
      const up = net.connect(b.ports.http, '127.0.0.1');
      sockets.add(up);
      up.on('close', () => {
        sockets.delete(up);
        client.destroy();
      });
      up.on('error', () => up.destroy());
      client.on('close', () => up.destroy());
      client.pipe(up);
      up.pipe(client);
      client.resume();
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    url: `ws://127.0.0.1:${server.address().port}`,
    routed,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}

describe('SIGTERM during a call: livekit-client moves to another moim', () => {
  const first = new MoimServer({ args: ['--no-turn'], env: { MOIM_DRAIN_TIMEOUT_SECS: '3' } });
  const second = new MoimServer({ args: ['--no-turn'] });
  first.name = 'first';
  second.name = 'second';
  let pageServer;
  let balancer;
  let aliceBrowser;
  let bobBrowser;
  let alice;
  let bob;

  before(
    async () => {
      await Promise.all([first.start(), second.start()]);
      pageServer = await startStaticServer();
      balancer = await startBalancer([first, second]);
      [aliceBrowser, bobBrowser] = await Promise.all([
        launchBrowser(pageServer.origin),
        launchBrowser(pageServer.origin),
      ]);
      alice = await aliceBrowser.newPage('shutdown/alice');
      bob = await bobBrowser.newPage('shutdown/bob');
      await openTestPage(alice, pageServer.origin);
      await openTestPage(bob, pageServer.origin);
    },
    { timeout: 90_000 },
  );
  after(
    async () => {
      await aliceBrowser?.close();
      await bobBrowser?.close();
      await balancer?.close();
      await pageServer?.close();
      await first.stop();
      await second.stop();
    },
    { timeout: 20_000 },
  );

  const decodedFromAlice = async () =>
    (await evalWithin(bob, () => window.app.stats())).video.framesDecoded;

  const streams = async (page, dir) =>
    JSON.stringify((await evalWithin(page, () => window.app.stats()).catch(() => ({})))[dir]);
  const explain = async () =>
    [
      `balancer: ${JSON.stringify(balancer.routed)}`,
      `bob's inbound streams: ${await streams(bob, 'inbound')}`,
      `alice's outbound streams (framesEncoded 0: her camera gives no frames): ${await streams(alice, 'outbound')}`,
      consoleTail(alice, 40),
      consoleTail(bob, 40),
      first.logTail(40),
      second.logTail(40),
    ].join('\n');

  test('the call survives the first server shutting down', { timeout: 120_000 }, async (t) => {
    const room = `deploy-${Math.random().toString(36).slice(2, 8)}`;
    const join = async (page, identity) =>
      page.evaluate(([url, token]) => window.app.join(url, token, {}), [
        balancer.url,
        await mintToken(identity, room),
      ]);
    await Promise.all([join(alice, 'alice'), join(bob, 'bob')]);
    await waitFor(async () => (await decodedFromAlice()) > 30, {
      timeout: 30_000,
      describe: explain,
    });
    assert.ok(
      balancer.routed.every((r) => r.to === 'first'),
      `the call starts on the first server: ${JSON.stringify(balancer.routed)}`,
    );

    first.proc.kill('SIGTERM');
    await waitFor(
      async () => {
        const r = await fetch(`${first.httpUrl}/healthz`).catch(() => null);
        return r?.status === 503;
      },
      { timeout: 5000, describe: () => 'the draining server fails its health check' },
    );

    // The drain lasts 3 s: media still flows meanwhile.
    const before = await decodedFromAlice();
    await sleep(1500);
    const during = await decodedFromAlice();
    assert.ok(during > before + 10, `video goes on while draining (${before} -> ${during})`);

    await waitFor(() => first.exit !== null, { timeout: 20_000, describe: explain });
    assert.deepEqual(first.exit, { code: 0, signal: null }, 'the first server exits 0');

    for (const [name, page] of [
      ['alice', alice],
      ['bob', bob],
    ]) {
      // The server has exited, but the close event reaches the page through the
      // balancer and the browser's event loop a moment later.
      let sockets = [];
      const shutdown = await waitFor(
        async () => {
          sockets = await evalWithin(page, () => window.app.webSockets());
          return sockets.find((w) => w.closeCode === 1001);
        },
        { timeout: 5000, describe: () => `${name}'s sockets: ${JSON.stringify(sockets)}` },
      );
      assert.ok(
        /shutting down/.test(shutdown.closeReason),
        `${name}'s signal connection closed with 1001 and a reason: ${JSON.stringify(sockets)}`,
      );
    }

    // Both pages join again through the balancer, which now picks the second.
    await waitFor(
      async () => {
        const states = await Promise.all(
          [alice, bob].map((p) => evalWithin(p, () => window.app.summary()?.state)),
        );
        return states.every((s) => s === 'connected') &&
          balancer.routed.some((r) => r.to === 'second');
      },
      { timeout: 30_000, describe: explain },
    );
    const reconnectedAt = await decodedFromAlice();
    await waitFor(async () => (await decodedFromAlice()) > reconnectedAt + 30, {
      timeout: 30_000,
      describe: explain,
    });
    const remotes = await evalWithin(bob, () => window.app.summary().remotes.map((r) => r.identity));
    assert.deepEqual(remotes, ['alice'], 'bob sees alice on the second server');
    const events = await evalWithin(alice, () => window.app.events.map((e) => e.name));
    t.diagnostic(`alice's events: ${events.join(', ')}`);
    t.diagnostic(`balancer: ${JSON.stringify(balancer.routed.map((r) => r.to))}`);
  });
});
