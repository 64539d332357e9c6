// Runs INSIDE the client namespace (`ip netns exec <cli> node client-pages.mjs <json>`), started by
// udp-blocked.test.mjs. Reuses the browser suite's harness: the static page server on
// http://127.0.0.1 (a secure context inside this namespace), Chromium with the PRODUCT.md flags,
// and the page's recorders. Two pages join one room against the server's ws:// URL, publish
// camera + microphone, and must decode each other's video. Prints one line `RESULT <json>` and
// exits 0 on success, 1 on failure. Bounded by opts.deadlineMs.
import {
  startStaticServer,
  launchBrowser,
  consoleTail,
  mintToken,
  waitFor,
  sleep,
  requireDeps,
  evalWithin,
} from '../browser/harness.mjs';

const opts = JSON.parse(process.argv[2]);
const { wsUrl, room, deadlineMs = 80_000, minFrames = 30 } = opts;
const result = { ok: false, pages: {}, steps: [] };
const t0 = Date.now();
const step = (s) => result.steps.push(`${Date.now() - t0}ms ${s}`);

let browser;
let pageServer;
const killer = setTimeout(() => finish(new Error(`client pages did not finish within ${deadlineMs} ms`)), deadlineMs);

/** The selected candidate pair of every live PeerConnection, with both candidates. */
function selectedPairs() {
  return Promise.all(
    window.__moim.pcs
      .filter((pc) => pc.connectionState !== 'closed')
      .map(async (pc) => {
        const report = await pc.getStats();
        const byId = new Map();
        report.forEach((s) => byId.set(s.id, s));
        let pair = null;
        report.forEach((s) => {
          if (s.type === 'transport' && s.selectedCandidatePairId) pair = byId.get(s.selectedCandidatePairId);
        });
        if (!pair) {
          report.forEach((s) => {
            if (!pair && s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded') pair = s;
          });
        }
        const cand = (id) => {
          const c = byId.get(id);
          return c && { type: c.candidateType, protocol: c.protocol, relayProtocol: c.relayProtocol, address: c.address, port: c.port, tcpType: c.tcpType, url: c.url };
        };
        const pairs = [];
        report.forEach((s) => {
          if (s.type !== 'candidate-pair') return;
          const l = byId.get(s.localCandidateId);
          const r = byId.get(s.remoteCandidateId);
          pairs.push(`${l?.candidateType}/${l?.relayProtocol || l?.protocol}${l?.tcpType ? `(${l.tcpType})` : ''} -> ${r?.candidateType}/${r?.protocol} ${r?.address}:${r?.port} ${s.state}${s.nominated ? ' nominated' : ''} req=${s.requestsSent} resp=${s.responsesReceived}`);
        });
        const remotes = [];
        report.forEach((s) => {
          if (s.type === 'remote-candidate') remotes.push(`${s.candidateType}/${s.protocol} ${s.address}:${s.port}`);
        });
        return {
          connectionState: pc.connectionState,
          pairs,
          remotes,
          pair: pair && { state: pair.state, bytesSent: pair.bytesSent, bytesReceived: pair.bytesReceived, local: cand(pair.localCandidateId), remote: cand(pair.remoteCandidateId) },
        };
      }),
  );
}

async function main() {
  requireDeps();
  pageServer = await startStaticServer();
  step(`page server ${pageServer.origin}`);
  browser = await launchBrowser(pageServer.origin);
  const pages = { A: await browser.newPage('A'), B: await browser.newPage('B') };
  for (const p of Object.values(pages)) {
    await p.goto(`${pageServer.origin}/index.html`, { waitUntil: 'load', timeout: 15_000 });
    await p.waitForFunction(() => window.app && window.app.ready, null, { timeout: 10_000 });
  }
  result.secureContext = await pages.A.evaluate(() => window.isSecureContext);
  step(`pages loaded (secure context: ${result.secureContext})`);
  const ids = { A: 'alice-netns', B: 'bob-netns' };
  const [tokA, tokB] = await Promise.all([mintToken(ids.A, room), mintToken(ids.B, room)]);
  const joins = Promise.all([
    pages.A.evaluate(([u, tok]) => window.app.join(u, tok, {}), [wsUrl, tokA]),
    pages.B.evaluate(([u, tok]) => window.app.join(u, tok, {}), [wsUrl, tokB]),
  ]);
  if (opts.observeMs) {
    // Observe mode: join, wait a fixed time whatever happens, then report what the pages got.
    joins.then(
      () => step('both pages joined and published'),
      (e) => step(`join failed: ${String(e.message || e).split('\n')[0]}`),
    );
    await sleep(opts.observeMs);
    for (const me of ['A', 'B']) {
      const s = await evalWithin(pages[me], () => window.app.stats());
      result.pages[me] = {
        framesDecoded: [s.video.framesDecoded],
        videoPackets: s.video.packetsReceived,
        audioPackets: s.audio.packetsReceived,
        webSockets: (await evalWithin(pages[me], () => window.app.webSockets())).map((w) => ({ path: w.path, opened: !!w.opened })),
        peerConnections: await evalWithin(pages[me], () => window.app.peerConnections()),
        pcs: await evalWithin(pages[me], selectedPairs),
        events: await evalWithin(pages[me], () => window.app.events.map((e) => e.name + (e.reason !== undefined ? `(${e.reason})` : ''))),
      };
    }
    step('observed');
    result.ok = true;
    return;
  }
  await joins;
  step('both pages joined and published');
  for (const [me, other] of [['A', 'B'], ['B', 'A']]) {
    await waitFor(
      async () => {
        const kinds = await evalWithin(pages[me], (id) => window.app.subscribedKinds(id), ids[other]);
        return kinds.includes('video') && kinds.includes('audio');
      },
      { timeout: 30_000, describe: async () => `page ${me} not subscribed to ${ids[other]}: ${JSON.stringify(await evalWithin(pages[me], () => window.app.summary()))}` },
    );
  }
  step('both pages subscribed to the other');
  for (const me of ['A', 'B']) {
    const first = await evalWithin(pages[me], () => window.app.stats());
    const s = await waitFor(
      async () => {
        const s = await evalWithin(pages[me], () => window.app.stats());
        return s.video.framesDecoded > minFrames && s.video.framesDecoded > first.video.framesDecoded ? s : null;
      },
      { timeout: 30_000, interval: 500, describe: async () => `page ${me}: ${JSON.stringify((await evalWithin(pages[me], () => window.app.stats())).video)}` },
    );
    await sleep(1000);
    const later = await evalWithin(pages[me], () => window.app.stats());
    result.pages[me] = {
      framesDecoded: [first.video.framesDecoded, s.video.framesDecoded, later.video.framesDecoded],
      videoPackets: later.video.packetsReceived,
      audioPackets: later.audio.packetsReceived,
      pcs: await evalWithin(pages[me], selectedPairs),
    };
  }
  step('both pages decode the other video');
  result.ok = true;
}

let finishing = false;
async function finish(err) {
  if (finishing) return;
  finishing = true;
  clearTimeout(killer);
  if (err) {
    result.error = String(err && err.stack ? err.stack : err);
    result.consoles = (browser?.pages || []).map((p) => consoleTail(p, 40));
    for (const p of browser?.pages || []) {
      try {
        result.pages[p.label] = {
          ...(result.pages[p.label] || {}),
          stats: await evalWithin(p, () => window.app.stats(), undefined, 3000),
          pcs: await evalWithin(p, selectedPairs, undefined, 3000),
          peerConnections: await evalWithin(p, () => window.app.peerConnections(), undefined, 3000),
        };
      } catch {}
    }
  }
  process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
  await Promise.race([browser?.close(), sleep(5000)]).catch(() => {});
  await Promise.race([pageServer?.close(), sleep(1000)]).catch(() => {});
  process.exit(result.ok ? 0 : 1);
}

main().then(
  () => finish(null),
  (e) => finish(e),
);
