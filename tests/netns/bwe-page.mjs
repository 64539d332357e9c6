// Runs INSIDE a client namespace, started by bwe.test.mjs, in one of two roles:
//   publishers: three livekit-client pages in one Chromium join opts.room as cam1..cam3, each
//     publishing a simulcast camera; cam1 also publishes its microphone and a screen share.
//     They stay until opts.stayMs has passed.
//   viewer: one page joins as bob (with opts.roomOptions), publishing nothing, and samples every remote video track
//     (stream state, decoded width, freezes, loss) once a second. After opts.cappedMs it runs
//     opts.lift (the command that removes the cap on its downlink) and samples opts.openMs more.
// Prints one line `RESULT <json>`.
import { spawnSync } from 'node:child_process';
import { startStaticServer, launchBrowser, consoleTail, mintToken, sleep, requireDeps, evalWithin, waitFor, printResultAndExit } from '../browser/harness.mjs';

const opts = JSON.parse(process.argv[2]);
const result = { ok: false, steps: [], samples: [] };
const t0 = Date.now();
const step = (s) => result.steps.push(`${Date.now() - t0}ms ${s}`);

let browser;
let pageServer;
const pages = [];
const budget = opts.role === 'viewer' ? opts.cappedMs + opts.openMs : opts.stayMs;
const killer = setTimeout(() => finish(new Error(`${opts.role} did not finish in time`)), budget + 60_000);

async function openPage(identity) {
  const page = await browser.newPage(identity);
  pages.push(page);
  await page.goto(`${pageServer.origin}/index.html`, { waitUntil: 'load', timeout: 15_000 });
  await page.waitForFunction(() => window.app && window.app.ready, null, { timeout: 10_000 });
  return page;
}

async function publishers() {
  for (const [i, identity] of ['cam1', 'cam2', 'cam3'].entries()) {
    const page = await openPage(identity);
    const token = await mintToken(identity, opts.room);
    await page.evaluate(([u, tok, what]) => window.app.join(u, tok, {}, what), [opts.wsUrl, token, i === 0 ? 'both' : 'camera']);
    if (i === 0) await page.evaluate(() => window.app.publishScreen());
    step(`${identity} published`);
  }
  await sleep(Math.max(0, opts.stayMs - (Date.now() - t0)));
}

async function viewer() {
  const page = await openPage('bob');
  const token = await mintToken('bob', opts.room);
  await page.evaluate(([u, tok, ro]) => window.app.join(u, tok, ro, 'none'), [opts.wsUrl, token, opts.roomOptions || {}]);
  step('bob joined');
  await waitFor(async () => (await evalWithin(page, () => window.app.receivedVideo())).length >= 4, {
    timeout: 30_000,
    describe: () => 'bob never saw the four video tracks',
  });
  step('four video tracks announced');
  const sample = async (phase) => {
    const video = await evalWithin(page, () => window.app.receivedVideo());
    result.samples.push({ t: Date.now() - t0, phase, video });
  };
  const capEnd = Date.now() + opts.cappedMs;
  while (Date.now() < capEnd) {
    await sample('capped');
    await sleep(1000);
  }
  const lifted = spawnSync(opts.lift[0], opts.lift.slice(1), { encoding: 'utf8' });
  step(`cap lifted (exit ${lifted.status}${lifted.stderr ? `: ${lifted.stderr.trim()}` : ''})`);
  result.liftedAt = Date.now() - t0;
  const openEnd = Date.now() + opts.openMs;
  while (Date.now() < openEnd) {
    await sample('open');
    await sleep(1000);
  }
  result.streamStateEvents = await evalWithin(page, () =>
    window.app.events.filter((e) => e.name === 'streamState').map((e) => ({ identity: e.identity, source: e.source, state: e.state })),
  );
}

async function main() {
  requireDeps();
  pageServer = await startStaticServer();
  browser = await launchBrowser(pageServer.origin);
  await (opts.role === 'viewer' ? viewer() : publishers());
  result.ok = true;
}

async function finish(err) {
  clearTimeout(killer);
  const consoleText = pages.map((p) => consoleTail(p, 15)).join('\n');
  await printResultAndExit(result, err, { browser, pageServer, consoleText });
}

main().then(
  () => finish(null),
  (e) => finish(e),
);
