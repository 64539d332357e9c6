// Runs INSIDE a client namespace (`ip netns exec <ns> node quality-page.mjs <json>`), started by
// quality.test.mjs: one livekit-client page in Chromium joins opts.room as opts.identity,
// publishes camera and microphone, and for opts.observeMs records the connection quality it is
// told of for every participant (ConnectionQualityChanged, read as participant.connectionQuality).
// Prints one line `RESULT <json>`: {ok, final: {identity: quality}, seen: {identity: [qualities]},
// video: the inbound video counters at the end (framesDecoded, nackCount, freezeCount, ...)}.
import { startStaticServer, launchBrowser, consoleTail, mintToken, sleep, requireDeps, evalWithin, printResultAndExit } from '../browser/harness.mjs';

const opts = JSON.parse(process.argv[2]);
const { wsUrl, room, identity, observeMs } = opts;
const result = { ok: false, final: {}, seen: {}, steps: [] };
const t0 = Date.now();
const step = (s) => result.steps.push(`${Date.now() - t0}ms ${s}`);

let browser;
let pageServer;
let page;
const killer = setTimeout(() => finish(new Error('quality page did not finish in time')), observeMs + 60_000);

async function main() {
  requireDeps();
  pageServer = await startStaticServer();
  browser = await launchBrowser(pageServer.origin);
  page = await browser.newPage(identity);
  await page.goto(`${pageServer.origin}/index.html`, { waitUntil: 'load', timeout: 15_000 });
  await page.waitForFunction(() => window.app && window.app.ready, null, { timeout: 10_000 });
  const token = await mintToken(identity, room);
  await page.evaluate(([u, tok]) => window.app.join(u, tok, {}), [wsUrl, token]);
  step('joined and published');
  const until = Date.now() + observeMs;
  // One entry a second per remote video, so that a failure shows when decoding stopped and
  // what moim said of the stream then: "t width decoded lost nacks state".
  result.timeline = [];
  let nextSample = 0;
  while (Date.now() < until) {
    const q = await evalWithin(page, () => window.app.qualities());
    for (const [who, quality] of Object.entries(q)) {
      const seen = (result.seen[who] ||= []);
      if (seen[seen.length - 1] !== quality) seen.push(quality);
    }
    result.final = q;
    if (Date.now() >= nextSample) {
      nextSample = Date.now() + 1000;
      const videos = await evalWithin(page, () => window.app.receivedVideo());
      const t = ((Date.now() - t0) / 1000).toFixed(0);
      for (const v of videos) {
        result.timeline.push(`${t}s ${v.identity} ${v.frameWidth}w ${v.framesDecoded}f ${v.packetsLost}l ${v.nackCount}n ${v.streamState}`);
      }
    }
    await sleep(500);
  }
  step('observed');
  result.video = await evalWithin(page, async () => {
    const v = { framesDecoded: 0, nackCount: 0, freezeCount: 0, totalFreezesDuration: 0, packetsLost: 0, packetsReceived: 0 };
    for (const pc of window.__moim.pcs) {
      if (pc.connectionState === 'closed') continue;
      (await pc.getStats()).forEach((s) => {
        if (s.type !== 'inbound-rtp' || s.kind !== 'video') return;
        for (const k of Object.keys(v)) v[k] += s[k] || 0;
      });
    }
    return v;
  });
  result.ok = true;
}

async function finish(err) {
  clearTimeout(killer);
  const consoleText = page ? consoleTail(page, 30) : '';
  await printResultAndExit(result, err, { browser, pageServer, consoleText });
}

main().then(
  () => finish(null),
  (e) => finish(e),
);
