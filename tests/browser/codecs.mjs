// The codec the publisher chose (issue 9, item 5): livekit-client publishing its camera with
// `videoCodec: 'h264' | 'vp9' | 'av1'` must send that codec through moim, and the subscriber
// must decode it and be told that codec, on /rtc/v1 and on /rtc.
//
//   cd tests/browser && node --test codecs.mjs      (run.mjs runs it too)
//
// livekit-client leaves VP8 first in its offer and sends whichever codec moim's answer lists
// first, so these tests read what really flows from getStats() on both ends, not what was asked.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  MoimServer,
  startStaticServer,
  launchBrowser,
  consoleTail,
  mintToken,
  waitFor,
  sleep,
  requireDeps,
  evalWithin as evalWithinDeadline,
  openTestPage,
} from './harness.mjs';

requireDeps();

const CODECS = [
  { codec: 'h264', mime: 'video/H264' },
  { codec: 'vp9', mime: 'video/VP9' },
  { codec: 'av1', mime: 'video/AV1' },
];

const PATHS = [
  { id: 'v1', path: '/rtc/v1', roomOptions: {} },
  { id: 'v0', path: '/rtc', roomOptions: { singlePeerConnection: false } },
];

// The codec steps wait on pages doing real work: a longer default deadline.
const evalWithin = (page, fn, arg, ms = 10_000) => evalWithinDeadline(page, fn, arg, ms);

const sameMime = (a, b) => typeof a === 'string' && typeof b === 'string' && a.toLowerCase() === b.toLowerCase();

describe('the codec the publisher chose', () => {
  const server = new MoimServer();
  let pageServer;
  let browser;
  const timings = [];

  before(
    async () => {
      pageServer = await startStaticServer();
      await server.start();
      browser = await launchBrowser(pageServer.origin);
    },
    { timeout: 90_000 },
  );
  after(
    async () => {
      await browser?.close();
      await server.stop();
      await pageServer?.close();
      if (timings.length) {
        console.log('# time to first decoded frame, per codec and path:');
        for (const l of timings) console.log(`#   ${l}`);
      }
    },
    { timeout: 20_000 },
  );

  for (const p of PATHS) {
    for (const c of CODECS) {
      test(`${p.path}: a camera published with videoCodec '${c.codec}' is sent, announced and decoded as ${c.mime}`, { timeout: 90_000 }, async (t) => {
        const room = `codec-${p.id}-${c.codec}-${Math.random().toString(36).slice(2, 8)}`;
        const ids = { pub: `pub-${c.codec}-${p.id}`, sub: `sub-${c.codec}-${p.id}` };
        const P = await browser.newPage(`${p.id}/${c.codec}/publisher`);
        const S = await browser.newPage(`${p.id}/${c.codec}/subscriber`);
        const diagnostics = async () => {
          const parts = [];
          for (const page of [P, S]) {
            try {
              const snap = await evalWithin(page, async () => ({
                summary: window.app.summary(),
                codecs: await window.app.videoCodecStats(),
                pcs: window.app.peerConnections(),
              }), undefined, 5000);
              parts.push(`---- page ${page.label} ----\n${JSON.stringify(snap, null, 1)}`);
            } catch (e) {
              parts.push(`---- page ${page.label} state unavailable: ${e.message}`);
            }
            parts.push(consoleTail(page, 60));
          }
          parts.push(server.logTail(60));
          return parts.join('\n');
        };
        try {
          for (const page of [P, S]) {
            await openTestPage(page, pageServer.origin);
          }
          const [tokP, tokS] = await Promise.all([mintToken(ids.pub, room), mintToken(ids.sub, room)]);
          await evalWithin(S, ([url, tok, opts]) => window.app.join(url, tok, opts, 'none'), [server.wsUrl, tokS, p.roomOptions], 30_000);

          // The publisher joins and turns its camera on; the clock runs from here.
          const t0 = Date.now();
          const pubOptions = { ...p.roomOptions, publishDefaults: { videoCodec: c.codec, backupCodec: false } };
          await evalWithin(P, ([url, tok, opts]) => window.app.join(url, tok, opts, 'camera'), [server.wsUrl, tokP, pubOptions], 30_000);
          const tPublished = Date.now();

          let last;
          const firstFrame = await waitFor(
            async () => {
              last = await evalWithin(S, () => window.app.videoCodecStats());
              return last.inbound.some((s) => s.framesDecoded > 0) ? Date.now() : null;
            },
            { timeout: 30_000, interval: 50, describe: async () => `the subscriber decoded no frame: ${JSON.stringify(last)}` },
          );

          // The decoder keeps going: a second of video is well over 15 frames at 30 fps.
          const before = (await evalWithin(S, () => window.app.videoCodecStats())).inbound;
          const framesBefore = before.reduce((n, s) => n + (s.framesDecoded || 0), 0);
          await waitFor(
            async () => {
              last = await evalWithin(S, () => window.app.videoCodecStats());
              return last.inbound.reduce((n, s) => n + (s.framesDecoded || 0), 0) - framesBefore >= 30;
            },
            { timeout: 20_000, interval: 250, describe: async () => `the subscriber's framesDecoded stopped at ${JSON.stringify(last.inbound)} (was ${framesBefore})` },
          );

          const sent = (await evalWithin(P, () => window.app.videoCodecStats())).outbound.filter((s) => s.packetsSent > 0);
          assert.ok(sent.length > 0, 'the publisher sends video');
          for (const s of sent) {
            assert.ok(sameMime(s.mimeType, c.mime), `the publisher asked for ${c.codec} but its encoder sends ${s.mimeType} (rid ${s.rid}): ${JSON.stringify(sent)}`);
          }

          const received = (await evalWithin(S, () => window.app.videoCodecStats())).inbound.filter((s) => s.packetsReceived > 0);
          assert.equal(received.length, 1, `the subscriber receives one video stream: ${JSON.stringify(received)}`);
          assert.ok(sameMime(received[0].mimeType, c.mime), `the subscriber decodes ${received[0].mimeType}, expected ${c.mime}`);

          const announced = await evalWithin(S, (id) => window.app.remoteVideoMime(id), ids.pub);
          assert.ok(announced, `the subscriber sees no video publication of ${ids.pub}`);
          assert.ok(
            sameMime(announced.mimeType, c.mime),
            `TrackInfo tells the subscriber ${announced.mimeType} while ${received[0].mimeType} flows`,
          );

          const line =
            `${c.codec.padEnd(4)} on ${p.path.padEnd(7)}: ${firstFrame - t0} ms from join to the subscriber's first decoded frame ` +
            `(${firstFrame - tPublished} ms after the camera was published)`;
          timings.push(line);
          t.diagnostic(line);
          t.diagnostic(
            `publisher sends ${sent.map((s) => `${s.mimeType}${s.rid ? ` rid=${s.rid}` : ''} ${s.frameWidth}x${s.frameHeight} ${s.scalabilityMode ?? ''} (${s.encoderImplementation})`).join(', ')}`,
          );
          t.diagnostic(
            `subscriber decodes ${received[0].mimeType} ${received[0].frameWidth}x${received[0].frameHeight}, framesDecoded ${received[0].framesDecoded}; TrackInfo mimeType ${announced.mimeType}`,
          );
        } catch (err) {
          const diag = await diagnostics().catch((e) => `(diagnostics failed: ${e.message})`);
          err.message = `${err.message}\n\n${diag}`;
          throw err;
        } finally {
          for (const page of [P, S]) {
            await evalWithin(page, () => window.app.room && window.app.room.disconnect(), undefined, 5000).catch(() => {});
            await page.close().catch(() => {});
          }
        }
      });
    }
  }
});
