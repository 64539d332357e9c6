// Scalable video (issue 12, item 5): livekit-client publishes VP9 as one stream with three
// spatial and three temporal layers (L3T3_KEY). moim picks the layers for each subscriber
// inside that stream, as it picks simulcast streams: B watches A's camera with adaptive
// stream on, and the size of B's <video> decides what B receives. Large: the top layer;
// small: the lowest; hidden: nothing; large again: the top layer back, with the decoder
// going on throughout. On /rtc/v1 and on /rtc.
//
//   cd tests/browser && node --test svc.mjs      (scripts/test.sh runs it too)
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

const CODECS = [
  { codec: 'vp9', mime: 'video/VP9' },
  { codec: 'av1', mime: 'video/AV1' },
];

describe('layers inside a stream: the subscriber gets the spatial layer its <video> shows', () => {
  const server = new MoimServer({ args: ['--no-turn'] });
  let pageServer;
  let browser;
  const figures = [];
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
      if (figures.length) {
        console.log('# scalable video, per codec and path:');
        for (const f of figures) console.log(`#   ${f}`);
      }
    },
    { timeout: 20_000 },
  );

  for (const path of PATHS) {
    for (const c of CODECS) {
      test(`${path.title}: ${c.codec} SVC follows the size of the subscriber's <video>, and hiding it stops the packets`, { timeout: 150_000 }, async (t) => {
        const room = `svc-${path.id}-${c.codec}-${Math.random().toString(36).slice(2, 8)}`;
        const A = await browser.newPage(`svc-${path.id}-${c.codec}/A`);
        const B = await browser.newPage(`svc-${path.id}-${c.codec}/B`);
        let last;
        const video = async () => {
          last = (await evalWithin(B, () => window.app.receivedVideo())).find((v) => v.identity === 'a' && v.source === 'camera');
          return last;
        };
        try {
          await openTestPage(A, pageServer.origin);
          await openTestPage(B, pageServer.origin);
          await B.evaluate(([u, tok, o]) => window.app.join(u, tok, o, 'none'), [
            server.wsUrl,
            await mintToken('b', room),
            { ...path.options, adaptiveStream: true },
          ]);
          await A.evaluate(([u, tok, o]) => window.app.join(u, tok, o, 'camera'), [
            server.wsUrl,
            await mintToken('a', room),
            { ...path.options, dynacast: true, publishDefaults: { videoCodec: c.codec, backupCodec: false } },
          ]);

          // What A's encoder really sends: one stream, its scalability mode and top size.
          const sent = await waitFor(
            async () => {
              const out = (await evalWithin(A, () => window.app.videoCodecStats())).outbound.filter((s) => s.packetsSent > 0 && s.frameWidth);
              return out.length ? out : null;
            },
            { timeout: 20_000, describe: () => 'A sends no video' },
          );
          assert.equal(sent.length, 1, `one ${c.codec} stream, not simulcast: ${JSON.stringify(sent)}`);
          assert.match(sent[0].mimeType ?? '', new RegExp(c.mime, 'i'));
          t.diagnostic(`A sends ${sent[0].mimeType} ${sent[0].scalabilityMode} ${sent[0].frameWidth}x${sent[0].frameHeight} (${sent[0].encoderImplementation})`);

          await waitFor(async () => (await evalWithin(B, () => document.querySelectorAll('video').length)) > 0, {
            timeout: 20_000,
            describe: () => 'B shows no video',
          });
          const show = (style) => evalWithin(B, ([s]) => window.app.styleVideo('a', s), [style]);

          // Large: the top layer A sends (Chromium on a busy machine may leave the top
          // layer out; then the highest it does send).
          await show({ width: 1280, height: 720 });
          const top = async () => (await evalWithin(A, () => window.app.videoCodecStats())).outbound.find((s) => s.packetsSent > 0)?.frameWidth ?? 0;
          let large = await waitFor(
            async () => {
              const v = await video();
              const want = await top();
              return v && v.framesDecoded > 0 && v.frameWidth >= want && want >= 640 ? v : null;
            },
            { timeout: 30_000, interval: 250, describe: async () => `B does not receive the top layer (${await top()} wide): ${JSON.stringify(last)}` },
          );
          const topWidth = large.frameWidth;

          // Small: the lowest spatial layer, a quarter of the camera's width (of the top
          // layer sent only when the encoder sends all three).
          await show({ width: 320, height: 180 });
          const cameraWidth = await evalWithin(A, () => {
            const pub = [...window.app.room.localParticipant.trackPublications.values()].find((p) => p.kind === 'video');
            return pub?.track?.mediaStreamTrack?.getSettings().width ?? 0;
          });
          const lowest = (cameraWidth || topWidth) / 4;
          const small = await waitFor(
            async () => {
              const v = await video();
              return v && v.frameWidth > 0 && v.frameWidth <= lowest + 1 ? v : null;
            },
            { timeout: 20_000, interval: 250, describe: () => `B's received width does not fall to ${lowest} (camera ${cameraWidth}, top layer sent ${topWidth}): ${JSON.stringify(last)}` },
          );
          const decodedSmall = small.framesDecoded;
          await sleep(2000);
          const afterSmall = await video();
          assert.ok(afterSmall.framesDecoded - decodedSmall >= 20, `the decoder goes on at the low layer: ${decodedSmall} -> ${afterSmall.framesDecoded}`);
          assert.ok(afterSmall.frameWidth <= lowest + 1, `still low: ${JSON.stringify(afterSmall)}`);
          assert.ok(afterSmall.freezeCount <= 1, `going down froze the picture: ${JSON.stringify(afterSmall)}`);

          // Hidden: moim stops forwarding. What still arrives is str0m's padding (it keeps
          // 50 kbit/s going on a PeerConnection with sendable media, for the NAT binding and
          // the estimate): packets without payload, so media bytes and frames are what count.
          await show({ width: 320, height: 180, hidden: true });
          await sleep(2000);
          const hiddenAt = await video();
          await sleep(3000);
          const hiddenEnd = await video();
          const leaked = hiddenEnd.packetsReceived - hiddenAt.packetsReceived;
          const leakedBytes = hiddenEnd.bytesReceived - hiddenAt.bytesReceived;
          const leakedFrames = hiddenEnd.framesDecoded - hiddenAt.framesDecoded;
          assert.ok(
            leakedBytes <= 1200 && leakedFrames === 0,
            `hidden, B still received ${leakedBytes} bytes of video in 3 s (${leaked} packets, ${leakedFrames} frames decoded)`,
          );

          // Large again: the top layer comes back (with a key picture asked for by moim).
          await show({ width: 1280, height: 720, hidden: false });
          const back = await waitFor(
            async () => {
              const v = await video();
              return v && v.frameWidth >= topWidth && v.framesDecoded > hiddenEnd.framesDecoded + 10 ? v : null;
            },
            { timeout: 30_000, interval: 250, describe: () => `the top layer does not come back: ${JSON.stringify(last)}` },
          );
          const line =
            `${c.codec} on ${path.title.padEnd(7)}: large ${topWidth}, small ${afterSmall.frameWidth}, hidden ${leakedBytes} bytes in 3 s, ` +
            `back to ${back.frameWidth}; freezes before hiding ${afterSmall.freezeCount}, in all ${back.freezeCount} (${back.totalFreezesDuration.toFixed(2)} s, the hidden time included), lost ${back.packetsLost}`;
          figures.push(line);
          t.diagnostic(line);
        } catch (err) {
          err.message += `\n---- A ----\n${consoleTail(A, 30)}\n---- B ----\n${consoleTail(B, 30)}\n${server.logTail(40)}`;
          throw err;
        } finally {
          for (const page of [A, B]) {
            await evalWithin(page, () => window.app.room && window.app.room.disconnect(), undefined, 5000).catch(() => {});
            await page.close().catch(() => {});
          }
        }
      });
    }
  }
  // Temporal layers: B asks for half the frame rate of A's VP8 camera (livekit-client's
  // setVideoFPS; Chromium's VP8 simulcast is L1T3, the top temporal layer holds every other
  // frame): moim leaves out the top temporal layer, and B decodes about half as many. With
  // the dependency descriptor negotiated, Chromium's VP8 payload descriptor carries no TID:
  // moim reads the layer from the descriptor, and B's decoder follows the frames by it.
  for (const path of PATHS) {
    test(`${path.title}: a subscriber asking for half the frame rate of a VP8 camera gets its lower temporal layers`, { timeout: 120_000 }, async (t) => {
      const room = `fps-${path.id}-${Math.random().toString(36).slice(2, 8)}`;
      const A = await browser.newPage(`fps-${path.id}/A`);
      const B = await browser.newPage(`fps-${path.id}/B`);
      let last;
      const video = async () => {
        last = (await evalWithin(B, () => window.app.receivedVideo())).find((v) => v.identity === 'a' && v.source === 'camera');
        return last;
      };
      /** Frames B decodes per second, over `ms`. */
      const rate = async (ms) => {
        const a = await video();
        const t0 = Date.now();
        await sleep(ms);
        const b = await video();
        return ((b.framesDecoded - a.framesDecoded) * 1000) / (Date.now() - t0);
      };
      try {
        await openTestPage(A, pageServer.origin);
        await openTestPage(B, pageServer.origin);
        await B.evaluate(([u, tok, o]) => window.app.join(u, tok, o, 'none'), [server.wsUrl, await mintToken('b', room), { ...path.options, adaptiveStream: false }]);
        await A.evaluate(([u, tok, o]) => window.app.join(u, tok, o, 'camera'), [
          server.wsUrl,
          await mintToken('a', room),
          { ...path.options, publishDefaults: { videoCodec: 'vp8', backupCodec: false } },
        ]);
        await waitFor(async () => (await video())?.framesDecoded > 30, { timeout: 30_000, describe: () => `B decodes nothing: ${JSON.stringify(last)}` });
        await evalWithin(B, () => window.app.setRemoteQuality('a', 'low'));
        const modes = (await evalWithin(A, () => window.app.videoCodecStats())).outbound.map((s) => `${s.rid}:${s.scalabilityMode}`);
        await sleep(2000);
        const full = await rate(4000);
        const half = Math.max(1, Math.round(full / 2));
        await evalWithin(B, ([h]) => window.app.setRemoteFps('a', h), [half]);
        await sleep(2000);
        const limited = await rate(4000);
        await evalWithin(B, () => window.app.setRemoteFps('a', 30));
        await sleep(2000);
        const restored = await rate(4000);
        const line = `vp8 (${modes.join(' ')}) on ${path.title.padEnd(7)}: ${full.toFixed(1)} fps, asked for ${half}: ${limited.toFixed(1)} fps, asked for 30 again: ${restored.toFixed(1)} fps`;
        figures.push(line);
        t.diagnostic(line);
        assert.ok(full >= 10, `B should decode the full rate first: ${line}`);
        assert.ok(limited <= full * 0.7 && limited >= full * 0.3, `half the frame rate asked for: ${line}`);
        assert.ok(restored >= full * 0.8, `30 fps asked for again: ${line}`);
      } catch (err) {
        err.message += `\n---- A ----\n${consoleTail(A, 30)}\n---- B ----\n${consoleTail(B, 30)}\n${server.logTail(40)}`;
        throw err;
      } finally {
        for (const page of [A, B]) {
          await evalWithin(page, () => window.app.room && window.app.room.disconnect(), undefined, 5000).catch(() => {});
          await page.close().catch(() => {});
        }
      }
    });
  }
});
