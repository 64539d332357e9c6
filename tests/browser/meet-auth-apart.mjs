// moim meet served by `moim auth`, on an origin of its own, beside a moim server on another
// (issue 13, "Where it runs"). Kay and Lee log in on the app's origin and join one meeting; their
// pages connect to the media server's origin (the app's CSP must allow it), and each decodes
// the other's camera and hears the other's microphone. The join token's serverUrl names the
// media server, not the app.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { HERE, OUT_DIR, MoimServer, launchBrowser, consoleTail } from './harness.mjs';
import { flowing } from './meet-media.mjs';

const DIST = path.resolve(HERE, '../../web/meet/dist');

describe('moim meet on moim auth, the media server apart', { timeout: 120_000 }, () => {
  const media = new MoimServer({ args: ['--no-turn', '--data-dir', fs.mkdtempSync(path.join(OUT_DIR, 'apart-media-'))] });
  let app;
  let browsers = [];
  before(async () => {
    assert.ok(fs.existsSync(path.join(DIST, 'index.html')), `moim meet is not built in ${DIST}: run scripts/build-meet.sh`);
    fs.mkdirSync(OUT_DIR, { recursive: true });
    await media.start();
    app = new MoimServer({
      command: 'auth',
      args: ['--media-url', media.httpUrl, '--meet-dir', DIST, '--data-dir', fs.mkdtempSync(path.join(OUT_DIR, 'apart-app-'))],
    });
    await app.start();
  });
  after(async () => {
    for (const b of browsers) await b.close();
    await app?.stop();
    await media.stop();
  });

  test('two people meet through the app on its own port', async () => {
    const [kayBrowser, leeBrowser] = await Promise.all([launchBrowser(app.httpUrl), launchBrowser(app.httpUrl)]);
    browsers = [kayBrowser, leeBrowser];
    const kay = await kayBrowser.newPage('apart/kay');
    const lee = await leeBrowser.newPage('apart/lee');
    const explain = () => [consoleTail(kay, 20), consoleTail(lee, 20), app.logTail(20), media.logTail(20)].join('\n');
    try {
      const login = async (page, name) => {
        await page.goto(app.httpUrl + '/');
        await page.locator('#dev-name').fill(name);
        await page.getByRole('button', { name: 'Log in' }).click();
        await page.getByRole('heading', { name: 'New meeting' }).waitFor();
      };
      await login(kay, 'Kay');
      const grants = [];
      kay.on('response', async (r) => {
        if (/\/api\/rooms\/[^/]+\/join$/.test(new URL(r.url()).pathname) && r.status() === 200) grants.push(await r.json());
      });
      await kay.getByRole('button', { name: 'Create' }).click();
      await kay.getByRole('button', { name: 'Join now' }).click();
      await kay.locator('[data-testid=toggle-mic]').waitFor();
      const link = kay.url();

      await login(lee, 'Lee');
      await lee.goto(link);
      await lee.getByRole('button', { name: 'Join now' }).click();

      await flowing(kay, 'Lee', ['camera', 'audio']);
      await flowing(lee, 'Kay', ['camera', 'audio']);
      assert.equal(grants[0]?.serverUrl, media.wsUrl, 'the join token sends the page to the media server, not to the app');
      const csp = (await fetch(link)).headers.get('content-security-policy');
      assert.match(csp, new RegExp(`connect-src 'self' ${app.wsUrl} ${media.wsUrl};`), csp);
    } catch (e) {
      e.message += `\n${explain()}`;
      throw e;
    }
  });
});
