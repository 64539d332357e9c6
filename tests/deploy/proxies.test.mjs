// moim behind the reverse proxies people deploy it behind, configured with the files
// moim ships (deploy/nginx/moim.conf, deploy/caddy/Caddyfile), changed only in names,
// ports and certificate paths.
//
// For each proxy, two Chromium pages (livekit-client) join a room at wss://localhost:<proxy>
// and one decodes the other's camera: signalling goes through the proxy with TLS, media
// straight to moim. Then nginx's config loses its WebSocket upgrade lines, the mistake
// the seed team made: the join fails, and moim's log names the missing headers and the
// proxy's address.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  MoimServer,
  startStaticServer,
  launchBrowser,
  mintToken,
  waitFor,
  requireDeps,
  evalWithin,
  openTestPage,
  consoleTail,
} from '../browser/harness.mjs';
import { freePort, scratchDir, selfSignedCert, startProcess, replaceAll } from './tools.mjs';

requireDeps();

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const NGINX_CONF = fs.readFileSync(path.join(ROOT, 'deploy/nginx/moim.conf'), 'utf8');
const CADDYFILE = fs.readFileSync(path.join(ROOT, 'deploy/caddy/Caddyfile'), 'utf8');

/** deploy/nginx/moim.conf with this test's names, ports and files. */
function nginxSite({ https, http, moim, cert, key, webroot }) {
  return replaceAll(NGINX_CONF, [
    ['/etc/letsencrypt/live/meet.example.com/fullchain.pem', cert],
    ['/etc/letsencrypt/live/meet.example.com/privkey.pem', key],
    ['server_name meet.example.com;', 'server_name localhost;'],
    ['listen 443 ssl;', `listen 127.0.0.1:${https} ssl;`],
    ['listen [::]:443 ssl;', ''],
    ['listen 80;', `listen 127.0.0.1:${http};`],
    ['listen [::]:80;', ''],
    ['server 127.0.0.1:7880;', `server 127.0.0.1:${moim};`],
    ['/var/www/letsencrypt', webroot],
  ]);
}

const PROXY_SOURCE = '127.0.0.3';

const UPGRADE_LINES = [
  'proxy_http_version 1.1;',
  'proxy_set_header Upgrade $http_upgrade;',
  'proxy_set_header Connection $connection_upgrade;',
];

async function startNginx(site) {
  const dir = scratchDir('nginx');
  fs.writeFileSync(path.join(dir, 'site.conf'), site);
  // Only the frame around the shipped site config is the test's own.
  fs.writeFileSync(
    path.join(dir, 'nginx.conf'),
    `daemon off;
user root;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log info;
events { worker_connections 256; }
http {
  access_log ${dir}/access.log;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  include ${dir}/site.conf;
}
`,
  );
  return startProcess('nginx', ['-p', dir, '-e', `${dir}/error.log`, '-c', `${dir}/nginx.conf`], { dir });
}

async function startCaddy({ https, http, moim, cert, key }) {
  const dir = scratchDir('caddy');
  const site = replaceAll(CADDYFILE, [
    ['meet.example.com {', `{\n\tadmin off\n\thttp_port ${http}\n\thttps_port ${https}\n}\n\nhttps://localhost:${https} {\n\ttls ${cert} ${key}`],
    ['reverse_proxy 127.0.0.1:7880', `reverse_proxy 127.0.0.1:${moim}`],
  ]);
  fs.writeFileSync(path.join(dir, 'Caddyfile'), site);
  return startProcess('caddy', ['run', '--adapter', 'caddyfile', '--config', `${dir}/Caddyfile`], {
    dir,
    env: { HOME: dir, XDG_DATA_HOME: dir, XDG_CONFIG_HOME: dir },
  });
}

describe('moim behind a reverse proxy with TLS', () => {
  // nginx of the first test connects to moim from 127.0.0.3 (proxy_bind), so the client
  // (127.0.0.1) and the proxy differ; only that address is a trusted proxy.
  const server = new MoimServer({ args: ['--no-turn', '--trusted-proxy', PROXY_SOURCE] });
  let pageServer;
  let browser;
  let cert;

  before(
    async () => {
      await server.start();
      pageServer = await startStaticServer();
      cert = selfSignedCert('localhost');
      browser = await launchBrowser(pageServer.origin, { extraArgs: ['--ignore-certificate-errors'] });
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

  /** Alice and Bob meet at `url`; resolves once Bob has decoded 30 frames of Alice's camera. */
  async function meetThrough(url, label, proxy) {
    const room = `${label}-${Math.random().toString(36).slice(2, 8)}`;
    const alice = await browser.newPage(`${label}/alice`);
    const bob = await browser.newPage(`${label}/bob`);
    const explain = () =>
      [consoleTail(alice, 20), consoleTail(bob, 20), proxy.logTail(), server.logTail(30)].join('\n');
    try {
      await openTestPage(alice, pageServer.origin);
      await openTestPage(bob, pageServer.origin);
      await alice.evaluate(([u, t]) => window.app.join(u, t, {}, 'camera'), [url, await mintToken('alice', room)]);
      await bob.evaluate(([u, t]) => window.app.join(u, t, {}, 'none'), [url, await mintToken('bob', room)]);
      await waitFor(async () => (await evalWithin(bob, () => window.app.stats())).video.framesDecoded > 30, {
        timeout: 30_000,
        describe: explain,
      });
    } finally {
      await alice.close();
      await bob.close();
    }
  }

  test('through nginx with deploy/nginx/moim.conf, two people see each other', { timeout: 90_000 }, async () => {
    const https = await freePort();
    const site = nginxSite({ https, http: await freePort(), moim: server.ports.http, ...cert, webroot: scratchDir('webroot') });
    const nginx = await startNginx(replaceAll(site, [['proxy_pass http://moim;', `proxy_pass http://moim;\n        proxy_bind ${PROXY_SOURCE};`]]));
    try {
      await nginx.waitForPort(https);
      await meetThrough(`wss://localhost:${https}`, 'nginx', nginx);
      const access = fs.readFileSync(path.join(nginx.dir, 'access.log'), 'utf8');
      assert.match(access, /GET \/rtc\/v1\?[^"]* HTTP\/1\.1" 101 /, `the signal connection went through nginx\n${access}`);
      // moim believed nginx's X-Forwarded-For: the client is the browser's address, not nginx's.
      const accepted = fs.readFileSync(server.logFile, 'utf8').split('\n').filter((l) => l.includes('signal connection accepted'));
      assert.ok(accepted.length >= 2, `two signal connections logged:\n${server.logTail(30)}`);
      for (const line of accepted) {
        assert.match(line, /client=127\.0\.0\.1 proxy=127\.0\.0\.3/, line);
      }
    } finally {
      await nginx.stop();
    }
  });

  test(
    'nginx without the upgrade lines: the join fails and moim names the missing headers and the proxy',
    { timeout: 90_000 },
    async () => {
      const https = await freePort();
      let site = nginxSite({ https, http: await freePort(), moim: server.ports.http, ...cert, webroot: scratchDir('webroot') });
      site = replaceAll(site, UPGRADE_LINES.map((line) => [line, `# removed: ${line}`]));
      const nginx = await startNginx(site);
      const page = await browser.newPage('nginx-broken');
      try {
        await nginx.waitForPort(https);
        await openTestPage(page, pageServer.origin);
        const outcome = await evalWithin(
          page,
          async ([u, t]) => {
            try {
              await window.app.join(u, t, {}, 'none');
              return 'joined';
            } catch (e) {
              return `failed: ${e?.message ?? e}`;
            }
          },
          [`wss://localhost:${https}`, await mintToken('carol', 'broken-proxy')],
          30_000,
        );
        assert.match(outcome, /^failed/, 'no one joins through a proxy that drops the upgrade');
        const log = await waitFor(
          () => {
            const text = fs.readFileSync(server.logFile, 'utf8');
            return /without a WebSocket upgrade/.test(text) && text;
          },
          { timeout: 10_000, describe: () => server.logTail(40) },
        );
        const warning = log.split('\n').find((l) => /WARN.*without a WebSocket upgrade/.test(l));
        assert.ok(warning, `moim warns about it:\n${server.logTail(40)}`);
        assert.match(warning, /127\.0\.0\.1/, 'the warning names the proxy');
        assert.match(warning, /Upgrade: absent/, 'and the missing header');
        assert.match(warning, /proxy_set_header Upgrade/, 'and the nginx lines that fix it');
      } finally {
        await page.close();
        await nginx.stop();
      }
    },
  );

  test('through Caddy with deploy/caddy/Caddyfile, two people see each other', { timeout: 90_000 }, async () => {
    const https = await freePort();
    const caddy = await startCaddy({ https, http: await freePort(), moim: server.ports.http, ...cert });
    try {
      await caddy.waitForPort(https);
      await meetThrough(`wss://localhost:${https}`, 'caddy', caddy);
    } finally {
      await caddy.stop();
    }
  });
});
