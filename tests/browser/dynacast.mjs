// Dynacast, as a livekit-client publisher with `dynacast: true` lives it: the
// encoder stops the layers nobody watches. A publishes its camera (three
// simulcast layers); B watches it. When B asks for LOW, A's top layer stops
// growing once moim's 3 s delay has passed; when B asks for HIGH again it
// grows at once. On /rtc/v1 and on /rtc. The top layer is 'f' unless
// Chromium's own adaptation (CPU or bandwidth, on a busy 2-core machine)
// keeps 'f' off; then it is 'h'.
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

const PATHS = [
  { id: 'v1', title: '/rtc/v1', options: {} },
  { id: 'v0', title: '/rtc', options: { singlePeerConnection: false } },
];

describe('dynacast: the publisher stops encoding layers nobody watches', () => {
  const server = new MoimServer({ args: ['--no-turn'] });
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

  for (const path of PATHS) {
    test(`${path.title}: LOW stops the high layer within the delay, HIGH brings it back`, { timeout: 120_000 }, async (t) => {
      const room = `dynacast-${path.id}-${Math.random().toString(36).slice(2, 8)}`;
      const A = await browser.newPage(`dynacast-${path.id}/A`);
      const B = await browser.newPage(`dynacast-${path.id}/B`);
      try {
        await openTestPage(A, pageServer.origin);
        await openTestPage(B, pageServer.origin);
        const opts = { ...path.options, dynacast: true, adaptiveStream: false };
        await A.evaluate(([u, tok, o]) => window.app.join(u, tok, o, 'camera'), [server.wsUrl, await mintToken('a', room), opts]);
        await B.evaluate(([u, tok, o]) => window.app.join(u, tok, o, 'none'), [server.wsUrl, await mintToken('b', room), opts]);
        const sent = async (rid) => (await evalWithin(A, () => window.app.outboundVideo()))[rid]?.bytesSent ?? 0;
        let top = 'f';
        const high = () => sent(top);
        const explain = async () =>
          `A's layers: ${JSON.stringify(await evalWithin(A, () => window.app.outboundVideo()))}\n${consoleTail(A, 30)}\n${server.logTail(30)}`;
        await waitFor(async () => (await evalWithin(B, () => window.app.subscribedKinds('a'))).includes('video'), {
          timeout: 30_000,
          describe: explain,
        });
        // The top layer flows while B watches in full.
        const [f0, h0] = [await sent('f'), await sent('h')];
        await waitFor(
          async () => {
            if ((await sent('f')) > f0 + 20_000) return true;
            return (await sent('h')) > h0 + 20_000 && (top = 'h');
          },
          { timeout: 20_000, describe: explain },
        );
        if (top === 'h') {
          // Give 'f' a last chance to start, so the test watches the real top.
          await sleep(2000);
          if ((await sent('f')) > f0) top = 'f';
        }
        t.diagnostic(`${path.title}: top layer '${top}': ${JSON.stringify(await evalWithin(A, () => window.app.outboundVideo()))}`);

        await evalWithin(B, () => window.app.setRemoteQuality('a', 'low'));
        const askedLow = Date.now();
        // Stopped means: no byte sent on 'f' for 2 s.
        let stoppedAt = null;
        await waitFor(
          async () => {
            const before = await high();
            await sleep(2000);
            const after = await high();
            if (after === before) stoppedAt = Date.now() - 2000;
            return after === before;
          },
          { timeout: 15_000, interval: 0, describe: explain },
        );
        const layers = await evalWithin(A, () => window.app.outboundVideo());
        assert.ok((layers.q?.bytesSent ?? 0) > 0, `the low layer still flows: ${JSON.stringify(layers)}`);

        await evalWithin(B, () => window.app.setRemoteQuality('a', 'high'));
        const askedHigh = Date.now();
        const h1 = await high();
        await waitFor(async () => (await high()) > h1 + 5_000, { timeout: 10_000, interval: 100, describe: explain });
        t.diagnostic(
          `${path.title}: layer '${top}' stopped ~${stoppedAt - askedLow} ms after B asked for LOW, and resumed ${Date.now() - askedHigh} ms after B asked for HIGH`,
        );
      } finally {
        await A.close().catch(() => {});
        await B.close().catch(() => {});
      }
    });
  }
});
