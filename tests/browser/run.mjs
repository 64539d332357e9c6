// Browser end-to-end suite: unmodified livekit-client (npm) in Debian's Chromium against moim.
//
//   cd tests/browser && ./install.sh && node --test run.mjs   (includes codecs.mjs)
//
// See README.md for what each test proves. Environment variables:
//   MOIM_BIN                 moim binary (default ../../target/debug/moim, relative to tests/browser)
//   MOIM_BROWSER_EXTRA_ARGS  extra flags appended to `moim serve --dev ...`
//   CHROMIUM_BIN             Chromium binary (default /usr/bin/chromium)
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
  evalWithin,
  openTestPage,
  livekitClientVersion,
  API_KEY,
  API_SECRET,
  CHROMIUM_ARGS,
} from './harness.mjs';

requireDeps();

const RUNS = [
  {
    id: 'run1',
    title: 'Run 1: default options (/rtc/v1, single PeerConnection)',
    roomOptions: {},
    expectedPath: '/rtc/v1',
    expectedPcs: 1,
  },
  {
    id: 'run2',
    title: 'Run 2: singlePeerConnection=false (/rtc, publisher + subscriber PeerConnections)',
    roomOptions: { singlePeerConnection: false },
    expectedPath: '/rtc',
    expectedPcs: 2,
  },
];

let pageServer;
before(async () => {
  pageServer = await startStaticServer();
});
after(async () => {
  await pageServer?.close();
});

const gotoTestPage = (page) => openTestPage(page, pageServer.origin);

// ---------------------------------------------------------------------------------------
// Environment checks: need no moim server.

describe('environment (no moim server needed)', () => {
  let browser;
  let page;
  before(
    async () => {
      browser = await launchBrowser(pageServer.origin);
      page = await browser.newPage('env');
      await gotoTestPage(page);
    },
    { timeout: 60_000 },
  );
  after(async () => {
    await browser?.close();
  });

  test('chromium launches headless with the required flags and a fresh profile', async (t) => {
    assert.ok(browser.version, 'browser version is readable');
    t.diagnostic(`chromium ${browser.version}; flags: ${CHROMIUM_ARGS.join(' ')}`);
    const ua = await page.evaluate(() => navigator.userAgent);
    assert.match(ua, /HeadlessChrome|Chrome/);
  });

  test('page on http://127.0.0.1 loads the livekit-client UMD bundle', async (t) => {
    const v = await page.evaluate(() => window.LivekitClient && window.LivekitClient.version);
    assert.equal(v, livekitClientVersion());
    const secure = await page.evaluate(() => window.isSecureContext);
    assert.equal(secure, true, 'page must be a secure context for getUserMedia');
    const hasRoom = await page.evaluate(() => typeof window.LivekitClient.Room === 'function');
    assert.ok(hasRoom);
    t.diagnostic(`livekit-client ${v}`);
  });

  test('fake camera and microphone work through getUserMedia', async () => {
    const res = await page.evaluate(() => window.app.probeGetUserMedia());
    assert.equal(res.video.length, 1, 'one fake video track');
    assert.equal(res.audio.length, 1, 'one fake audio track');
    assert.equal(res.video[0].readyState, 'live');
    assert.ok(res.video[0].settings.width > 0, 'video track has a size');
  });

  test('init script records RTCPeerConnections and WebSockets', async () => {
    const res = await page.evaluate(async () => {
      const pc = new RTCPeerConnection();
      pc.addTransceiver('video');
      const offer = await pc.createOffer();
      pc.close();
      let wsRecorded = false;
      try {
        const ws = new WebSocket('ws://127.0.0.1:9/rtc/v1?access_token=x');
        wsRecorded = window.__moim.wss.some((e) => e.ws === ws && e.path === '/rtc/v1');
        ws.close();
      } catch {}
      return {
        pcRecorded: window.__moim.pcs.includes(pc),
        isPc: pc instanceof RTCPeerConnection,
        sdp: offer.sdp.includes('m=video'),
        wsRecorded,
        wsClosedConst: WebSocket.CLOSED === 3,
      };
    });
    assert.deepEqual(res, { pcRecorded: true, isPc: true, sdp: true, wsRecorded: true, wsClosedConst: true });
  });

  test('getStats() counters move on a loopback PeerConnection pair (no server)', { timeout: 30_000 }, async (t) => {
    const { before: s1, after: s2 } = await page.evaluate(() => window.app.probeLoopback(2500));
    t.diagnostic(`loopback: video.framesDecoded ${s1.video.framesDecoded} -> ${s2.video.framesDecoded}, audio.packetsReceived ${s1.audio.packetsReceived} -> ${s2.audio.packetsReceived}`);
    assert.ok(s2.video.framesDecoded > 30, `fake camera decodes > 30 frames in 2.5 s: ${JSON.stringify(s2.inbound)}`);
    assert.ok(s2.audio.packetsReceived > s1.audio.packetsReceived, 'audio packetsReceived grows');
  });

  test('RoomOptions.singlePeerConnection is the option this livekit-client reads', async () => {
    const res = await page.evaluate(() => ({
      dflt: new window.LivekitClient.Room().options.singlePeerConnection,
      off: new window.LivekitClient.Room({ singlePeerConnection: false }).options.singlePeerConnection,
    }));
    assert.deepEqual(res, { dflt: true, off: false });
  });

  test('livekit-server-sdk mints a roomJoin token that verifies with devkey/secret', async () => {
    const { TokenVerifier } = await import('livekit-server-sdk');
    const jwt = await mintToken('env-identity', 'env-room');
    const claims = await new TokenVerifier(API_KEY, API_SECRET).verify(jwt);
    assert.equal(claims.iss, API_KEY);
    assert.equal(claims.sub, 'env-identity');
    assert.equal(claims.video.roomJoin, true);
    assert.equal(claims.video.room, 'env-room');
    // The client also decodes it locally (it must be a plain compact JWS).
    const decoded = await page.evaluate((tok) => window.LivekitClient.decodeTokenPayload(tok), jwt);
    assert.equal(decoded.sub, 'env-identity');
  });
});

// ---------------------------------------------------------------------------------------
// The real thing: two livekit-client pages against a moim server.

describe('livekit-client against moim', () => {
  const server = new MoimServer();
  after(() => server.stop(), { timeout: 15_000 });

  test('moim serve --dev starts and answers GET /healthz with 200', { timeout: 45_000 }, async (t) => {
    await server.start();
    server.up = true;
    t.diagnostic(`server: ${server.cmdline}`);
    t.diagnostic(`server log: ${server.logFile}`);
  });

  for (const run of RUNS) {
    describe(run.title, () => scenario(run, server));
  }
});

function scenario(run, server) {
  const suffix = Math.random().toString(36).slice(2, 8);
  const roomName = `moim-e2e-${run.id}-${suffix}`;
  const ids = { A: `alice-${run.id}`, B: `bob-${run.id}` };
  const passed = new Set();
  let browser;
  let A;
  let B;

  before(
    async () => {
      if (!server.up) return; // every step below skips itself
      browser = await launchBrowser(pageServer.origin);
      A = await browser.newPage(`${run.id}/A`);
      B = await browser.newPage(`${run.id}/B`);
      await gotoTestPage(A);
      await gotoTestPage(B);
    },
    { timeout: 60_000 },
  );
  after(async () => {
    await browser?.close();
  });

  async function diagnostics() {
    const parts = [];
    for (const page of [A, B].filter(Boolean)) {
      try {
        const snap = await evalWithin(page, async () => ({
          summary: window.app.summary(),
          pcs: window.app.peerConnections(),
          wss: window.app.webSockets(),
          stats: await window.app.stats(),
          events: window.app.events.slice(-30).map((e) => `${e.name} ${JSON.stringify(e)}`),
        }));
        const lines = Object.entries(snap).map(([k, v]) =>
          Array.isArray(v) ? `${k}:\n${v.map((x) => `  ${typeof x === 'string' ? x : JSON.stringify(x)}`).join('\n')}` : `${k}: ${JSON.stringify(v)}`,
        );
        parts.push(`---- page ${page.label} state ----\n${lines.join('\n')}`);
      } catch (e) {
        parts.push(`---- page ${page.label} state unavailable: ${e.message}`);
      }
      parts.push(consoleTail(page, 80));
    }
    parts.push(server.logTail(80));
    return parts.join('\n');
  }

  /** A test that is skipped when a prerequisite failed and dumps diagnostics on failure. */
  function step(key, name, { needs = [], timeout = 60_000 } = {}, fn) {
    test(name, { timeout }, async (t) => {
      if (!server.up) {
        t.skip('moim server is not running (see the /healthz test above)');
        return;
      }
      const missing = needs.filter((n) => !passed.has(n));
      if (missing.length) {
        t.skip(`prerequisite failed: ${missing.join(', ')}`);
        return;
      }
      try {
        await fn(t);
        passed.add(key);
      } catch (err) {
        const diag = await diagnostics().catch((e) => `(diagnostics failed: ${e.message})`);
        const wrapped = new Error(`${err.message}\n\n${diag}`);
        wrapped.stack = `${err.stack}\n\n${diag}`;
        throw wrapped;
      }
    });
  }

  const stats = (page) => evalWithin(page, () => window.app.stats());
  const brief = (s) =>
    `pcs=${s.pcs} video.framesDecoded=${s.video.framesDecoded} video.packetsReceived=${s.video.packetsReceived} audio.packetsReceived=${s.audio.packetsReceived} inbound=${JSON.stringify(s.inbound)}`;

  step('join', `${run.id}: two pages join one room and publish camera + microphone`, { timeout: 90_000 }, async (t) => {
    const [tokA, tokB] = await Promise.all([mintToken(ids.A, roomName), mintToken(ids.B, roomName)]);
    const join = (page, tok) =>
      page.evaluate(([url, token, opts]) => window.app.join(url, token, opts), [server.wsUrl, tok, run.roomOptions]);
    const [infoA, infoB] = await Promise.all([join(A, tokA), join(B, tokB)]);
    t.diagnostic(`A joined as ${infoA.identity} (${infoA.sid}), B as ${infoB.identity} (${infoB.sid}); server ${JSON.stringify(infoA.serverInfo)}`);
    assert.equal(infoA.identity, ids.A);
    assert.equal(infoB.identity, ids.B);
    assert.equal(infoA.roomName, roomName);
    for (const [page, other] of [
      [A, ids.B],
      [B, ids.A],
    ]) {
      await waitFor(
        async () => {
          const kinds = await evalWithin(page, (id) => window.app.subscribedKinds(id), other);
          return kinds.includes('audio') && kinds.includes('video');
        },
        {
          timeout: 30_000,
          describe: async () =>
            `page ${page.label} never subscribed to audio+video of ${other}: ${JSON.stringify(
              await evalWithin(page, () => window.app.summary()),
            )}`,
        },
      );
    }
  });

  step('path', `${run.id}: signalling used ${run.expectedPath} and ${run.expectedPcs} PeerConnection(s)`, { needs: ['join'], timeout: 20_000 }, async (t) => {
    for (const page of [A, B]) {
      const wss = (await evalWithin(page, () => window.app.webSockets())).filter((w) => /^\/rtc(\/v1)?$/.test(w.path));
      const opened = wss.filter((w) => w.opened);
      t.diagnostic(`page ${page.label} signalling WebSockets: ${wss.map((w) => `${w.path}${w.opened ? '' : ' (never opened)'}`).join(', ')}`);
      assert.ok(wss.length > 0, `page ${page.label} opened no signalling WebSocket`);
      assert.equal(
        wss[0].path,
        run.expectedPath,
        `page ${page.label}: first signalling attempt went to ${wss[0].path}, expected ${run.expectedPath}`,
      );
      for (const w of opened) {
        assert.equal(
          w.path,
          run.expectedPath,
          `page ${page.label}: a signalling WebSocket opened on ${w.path}; expected only ${run.expectedPath}` +
            (run.expectedPath === '/rtc/v1' ? ' (the client fell back to /rtc: the server refused /rtc/v1 or its validate endpoint answered 404)' : ''),
        );
      }
      assert.ok(opened.length > 0, `page ${page.label}: no signalling WebSocket ever opened`);
      if (run.expectedPath === '/rtc/v1') {
        assert.ok(opened[0].hasJoinRequest, 'v1 signalling carries the join_request query parameter');
      }
      // A publisher PeerConnection may still be finishing DTLS when the
      // subscriptions are complete; wait for it rather than race it.
      let pcs = [];
      await waitFor(
        async () => {
          pcs = (await evalWithin(page, () => window.app.peerConnections())).filter((p) => p.connectionState !== 'closed');
          return pcs.length === run.expectedPcs && pcs.every((pc) => pc.connectionState === 'connected');
        },
        { timeout: 10_000, describe: async () => `page ${page.label} PeerConnections: ${JSON.stringify(pcs)}` },
      ).catch(() => {});
      assert.equal(pcs.length, run.expectedPcs, `page ${page.label} has ${pcs.length} live PeerConnections: ${JSON.stringify(pcs)}`);
      for (const pc of pcs) {
        assert.equal(pc.connectionState, 'connected', `page ${page.label} PeerConnection: ${JSON.stringify(pc)}`);
      }
    }
    console.log(`# ${run.id}: signalling path ${run.expectedPath}`);
  });

  step('video', `${run.id}: each page decodes the other's video (inbound-rtp framesDecoded > 30)`, { needs: ['join'], timeout: 60_000 }, async (t) => {
    for (const page of [A, B]) {
      const s = await waitFor(
        async () => {
          const s = await stats(page);
          return s.video.framesDecoded > 30 ? s : null;
        },
        { timeout: 40_000, interval: 500, describe: async () => `page ${page.label}: ${brief(await stats(page))}` },
      );
      t.diagnostic(`page ${page.label}: ${brief(s)}`);
    }
  });

  step('audio', `${run.id}: each page receives the other's audio (inbound-rtp packetsReceived grows) and no subscription was refused`, { needs: ['join'], timeout: 30_000 }, async (t) => {
    for (const page of [A, B]) {
      const failed = await evalWithin(page, () => window.app.events.filter((e) => e.name === 'trackSubscriptionFailed'));
      assert.deepEqual(failed, [], `page ${page.label}: moim refused a subscription (SubscriptionResponse error)`);
    }
    const first = await Promise.all([stats(A), stats(B)]);
    await sleep(2000);
    const second = await Promise.all([stats(A), stats(B)]);
    [A, B].forEach((page, i) => {
      t.diagnostic(`page ${page.label}: audio.packetsReceived ${first[i].audio.packetsReceived} -> ${second[i].audio.packetsReceived}`);
      assert.ok(first[i].audio.packetsReceived > 0, `page ${page.label} has no inbound audio packets: ${brief(first[i])}`);
      // 2 s of Opus at 20 ms ptime is ~100 packets; ask for a clear majority of that.
      assert.ok(
        second[i].audio.packetsReceived - first[i].audio.packetsReceived >= 40,
        `page ${page.label} audio packetsReceived did not grow enough: ${first[i].audio.packetsReceived} -> ${second[i].audio.packetsReceived}`,
      );
    });
  });

  step('data', `${run.id}: reliable data message from A arrives at B with payload and sender`, { needs: ['join'], timeout: 30_000 }, async () => {
    const text = `hello from ${ids.A} in ${roomName} ${Date.now()} ✓`;
    await evalWithin(A, ([m, topic]) => window.app.publishText(m, topic), [text, 'moim-test'], 10_000);
    const got = await waitFor(
      () => evalWithin(B, (m) => window.app.data.find((d) => d.text === m) || null, text),
      { timeout: 10_000, describe: async () => `B received: ${JSON.stringify(await evalWithin(B, () => window.app.data))}` },
    );
    assert.equal(got.text, text);
    assert.equal(got.from, ids.A, 'sender identity');
    assert.equal(got.topic, 'moim-test', 'topic');
  });

  step('rpc', `${run.id}: an RPC from A to B round-trips (needs a server version livekit-client accepts for RPC)`, { needs: ['join'], timeout: 30_000 }, async (t) => {
    await evalWithin(B, (m) => window.app.registerRpc(m), 'moim.echo');
    const { response, ms } = await evalWithin(A, ([id, m]) => window.app.performRpc(id, m, 'ping'), [ids.B, 'moim.echo'], 15_000);
    t.diagnostic(`A's RPC to B answered in ${ms} ms: ${response}`);
    assert.equal(response, `ping back from ${ids.B}`);
  });

  step('quality', `${run.id}: ConnectionQualityChanged reports each page and the other as excellent or good on loopback`, { needs: ['join'], timeout: 30_000 }, async (t) => {
    const fine = (q) => q === 'excellent' || q === 'good';
    for (const [page, self, other] of [
      [A, ids.A, ids.B],
      [B, ids.B, ids.A],
    ]) {
      await waitFor(
        async () => {
          const q = await evalWithin(page, () => window.app.qualities());
          return fine(q[self]) && fine(q[other]);
        },
        {
          timeout: 20_000,
          describe: async () => `page ${page.label} qualities: ${JSON.stringify(await evalWithin(page, () => window.app.qualities()))}`,
        },
      );
    }
    const events = (await evalWithin(B, () => window.app.events)).filter((e) => e.name === 'connectionQuality');
    t.diagnostic(`B's ConnectionQualityChanged events: ${events.map((e) => `${e.identity}=${e.quality}`).join(', ')}`);
  });

  step('speakers', `${run.id}: ActiveSpeakersChanged names A within 2 s of A talking, and drops A within 2 s of A muting`, { needs: ['join'], timeout: 30_000 }, async (t) => {
    const speakers = (page) => evalWithin(page, () => window.app.activeSpeakers());
    // Chromium's fake microphone beeps, loud enough to count as a voice for
    // a moment each second: both start muted, and B stays so.
    await evalWithin(A, () => window.app.setMicrophone(false));
    await evalWithin(B, () => window.app.setMicrophone(false));
    await waitFor(async () => (await speakers(B)).length === 0, {
      timeout: 5_000,
      describe: async () => `B still lists speakers before anyone talks: ${JSON.stringify(await speakers(B))}`,
    });
    const talking = Date.now();
    await evalWithin(A, () => window.app.speak());
    await waitFor(async () => JSON.stringify(await speakers(B)) === JSON.stringify([ids.A]), {
      timeout: 2_000,
      interval: 50,
      describe: async () => `B's active speakers: ${JSON.stringify(await speakers(B))}, A's: ${JSON.stringify(await speakers(A))}`,
    });
    const detected = Date.now() - talking;
    assert.deepEqual(await speakers(A), [ids.A], 'A sees itself speaking');
    const level = await evalWithin(B, (id) => window.app.room.remoteParticipants.get(id).audioLevel, ids.A);
    assert.ok(level > 0 && level <= 1, `A's level at B is in (0, 1]: ${level}`);

    const muting = Date.now();
    await evalWithin(A, () => window.app.setMicrophone(false));
    await waitFor(async () => (await speakers(B)).length === 0, {
      timeout: 2_000,
      interval: 50,
      describe: async () => `B still lists ${JSON.stringify(await speakers(B))} after A muted`,
    });
    t.diagnostic(`A named a speaker at B after ${detected} ms (level ${level.toFixed(2)}), dropped ${Date.now() - muting} ms after muting`);
    await evalWithin(A, () => window.app.setMicrophone(true));
    await evalWithin(B, () => window.app.setMicrophone(true));
  });

  step('reconnect', `${run.id}: B's killed signal WebSocket reconnects and media flows again`, { needs: ['join'], timeout: 90_000 }, async (t) => {
    const before = await stats(B);
    const killed = await evalWithin(B, () => window.app.killSignal());
    t.diagnostic(`killed B's ${killed.path} WebSocket`);
    const ev = await waitFor(
      () => evalWithin(B, (since) => window.app.events.find((e) => e.name === 'reconnected' && e.t >= since) || null, killed.at),
      {
        timeout: 30_000,
        describe: async () =>
          `B never emitted RoomEvent.Reconnected; events: ${JSON.stringify(
            await evalWithin(B, (since) => window.app.events.filter((e) => e.t >= since).map((e) => e.name), killed.at),
          )}`,
      },
    );
    t.diagnostic(`B reconnected ${ev.t - killed.at} ms after the kill`);
    const wss = (await evalWithin(B, () => window.app.webSockets())).filter(
      (w) => w.created >= killed.at && /^\/rtc(\/v1)?$/.test(w.path) && w.opened,
    );
    assert.ok(wss.length > 0, 'B opened a new signalling WebSocket after the kill');
    t.diagnostic(`B's new signalling WebSocket(s): ${wss.map((w) => `${w.path} reconnect=${w.reconnectParam}`).join(', ')}`);
    assert.equal(wss[wss.length - 1].path, run.expectedPath, 'reconnect uses the same signalling path');

    // Media again, on both sides: a second of video decoded and audio arriving.
    // Usually that takes one second; after an ICE restart the video can take a
    // few more while the decoder waits for a keyframe, so the bound is 10 s and
    // the time it took is reported.
    const s1 = await Promise.all([stats(A), stats(B)]);
    const resumedAt = Date.now();
    for (const [i, page] of [A, B].entries()) {
      let last = s1[i];
      await waitFor(
        async () => {
          last = await stats(page);
          return last.video.framesDecoded - s1[i].video.framesDecoded >= 30 && last.audio.packetsReceived > s1[i].audio.packetsReceived;
        },
        {
          timeout: 10_000,
          describe: async () =>
            `page ${page.label}: media did not resume after B's reconnect (video.framesDecoded ${s1[i].video.framesDecoded} -> ${last.video.framesDecoded}, audio.packetsReceived ${s1[i].audio.packetsReceived} -> ${last.audio.packetsReceived}); before kill B had ${before.video.framesDecoded}; ${brief(last)}`,
        },
      );
      t.diagnostic(`page ${page.label}: 30 more video frames decoded ${Date.now() - resumedAt} ms after B's reconnect (framesDecoded ${s1[i].video.framesDecoded} -> ${last.video.framesDecoded})`);
    }
  });

  step('full-reconnect', `${run.id}: after A's full reconnect B decodes A's new video`, { needs: ['join'], timeout: 60_000 }, async (t) => {
    const before = await evalWithin(B, (id) => window.app.remoteVideo(id), ids.A);
    const at = await evalWithin(A, (s) => window.app.simulate(s), 'full-reconnect');
    let firstFrameAt = null;
    let last = null;
    // The bound is generous; the time it took is what the test reports.
    await waitFor(
      async () => {
        last = await evalWithin(B, (id) => window.app.remoteVideo(id), ids.A);
        const fresh = last && last.trackSid && last.trackSid !== before?.trackSid;
        if (fresh && last.framesDecoded > 0 && firstFrameAt === null) firstFrameAt = Date.now();
        return fresh && last.framesDecoded >= 30;
      },
      {
        timeout: 20_000,
        interval: 100,
        describe: async () => `B never decoded 30 frames of A's new video track: before ${JSON.stringify(before)}, now ${JSON.stringify(last)}; B events ${JSON.stringify((await evalWithin(B, () => window.app.events)).slice(-12).map((e) => e.name))}`,
      },
    );
    t.diagnostic(`A full-reconnected (participant ${before?.sid} -> ${last.sid}, track ${before?.trackSid} -> ${last.trackSid}); B's first decoded frame ${firstFrameAt - at} ms, 30 frames ${Date.now() - at} ms after the reconnect began`);
    console.log(`# ${run.id}: full reconnect to first remote frame ${firstFrameAt - at} ms`);
  });

  step('leave', `${run.id}: B sees ParticipantDisconnected within 2 s of A's room.disconnect()`, { needs: ['join'], timeout: 30_000 }, async (t) => {
    const t0 = Date.now();
    await evalWithin(A, () => window.app.leave(), undefined, 10_000);
    const ev = await waitFor(
      () =>
        evalWithin(
          B,
          ([id, since]) => window.app.events.find((e) => e.name === 'participantDisconnected' && e.identity === id && e.t >= since) || null,
          [ids.A, t0],
        ),
      { timeout: 5000, interval: 100, describe: async () => `B events: ${JSON.stringify((await evalWithin(B, () => window.app.events)).slice(-10))}` },
    );
    const dt = ev.t - t0;
    t.diagnostic(`B saw ParticipantDisconnected(${ids.A}) ${dt} ms after A called disconnect()`);
    assert.ok(dt <= 2000, `ParticipantDisconnected arrived after ${dt} ms (limit 2000 ms)`);
  });
}

// The codec the publisher chose (its own server and pages): see codecs.mjs.
await import('./codecs.mjs');
