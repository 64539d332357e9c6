// The packages moim ships are read by the tools that will run them: systemd checks the
// unit, a Compose implementation turns compose.yaml into container runs, moim reads the
// example config, and the Helm chart is rendered (by chart-render: no helm binary comes
// from this machine's registries, so Helm's engine, Go's text/template with Sprig, is
// built from Debian's packages) and its objects checked. Then the OCI image is built with podman from deploy/Containerfile
// and started, and two Chromium pages meet through the moim inside it.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import {
  startStaticServer,
  launchBrowser,
  mintToken,
  waitFor,
  requireDeps,
  evalWithin,
  openTestPage,
  consoleTail,
  moimBinary,
  pickPorts,
} from '../browser/harness.mjs';
import { scratchDir, replaceAll } from './tools.mjs';
import { buildImage, podmanRun, podman } from './podman.mjs';

requireDeps();

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const deployFile = (name) => path.join(ROOT, 'deploy', name);
const SECRET = 'an-example-secret-of-more-than-32-chars';

describe('systemd unit', () => {
  test('systemd-analyze verify accepts deploy/systemd/moim.service', () => {
    const dir = scratchDir('systemd');
    // The unit names /usr/bin/moim, where a package installs it; verify checks that the
    // binary exists, so it is pointed at the one just built.
    const unit = replaceAll(fs.readFileSync(deployFile('systemd/moim.service'), 'utf8'), [
      ['ExecStart=/usr/bin/moim', `ExecStart=${moimBinary()}`],
    ]);
    fs.writeFileSync(path.join(dir, 'moim.service'), unit);
    const r = spawnSync('systemd-analyze', ['verify', path.join(dir, 'moim.service')], { encoding: 'utf8' });
    assert.equal(r.status, 0, `systemd-analyze verify:\n${r.stdout}${r.stderr}`);
    assert.equal(r.stderr.trim(), '', `no warnings:\n${r.stderr}`);
  });

  test('the unit drains longer than moim does and may bind 443 without root', () => {
    const unit = fs.readFileSync(deployFile('systemd/moim.service'), 'utf8');
    const stop = Number(/^TimeoutStopSec=(\d+)/m.exec(unit)?.[1]);
    assert.ok(stop > 25, `TimeoutStopSec (${stop}) leaves time for the 25 s drain`);
    assert.match(unit, /^User=moim$/m);
    assert.match(unit, /^AmbientCapabilities=CAP_NET_BIND_SERVICE$/m);
    assert.match(unit, /^StateDirectory=moim$/m, '/var/lib/moim, moim\'s default data directory');
  });
});

describe('example config', () => {
  test('moim reads deploy/moim.toml and prints what it makes of it, secrets masked', () => {
    const out = execFileSync(moimBinary(), ['serve', '--config', deployFile('moim.toml'), '--print-config'], {
      encoding: 'utf8',
      env: { ...process.env, MOIM_KEYS: `mykey: ${SECRET}` },
    });
    assert.match(out, /^port = 443$/m);
    assert.match(out, /^acme = true$/m);
    assert.match(out, /^data_dir = "\/var\/lib\/moim"$/m, 'without --dev, the data lives in /var/lib/moim');
    assert.ok(!out.includes(SECRET), 'the API secret is masked');
  });
});

describe('Compose', () => {
  test('podman-compose turns deploy/compose.yaml into a moim on the host network', () => {
    const r = spawnSync('podman-compose', ['-f', deployFile('compose.yaml'), '--dry-run', 'up', '-d'], {
      encoding: 'utf8',
      env: { ...process.env, MOIM_KEYS: `mykey: ${SECRET}`, MOIM_IMAGE: 'localhost/moim:compose-check' },
    });
    assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
    const run = r.stdout.split('\n').find((l) => l.startsWith('podman run') && l.includes('localhost/moim:compose-check'));
    assert.ok(run, `a podman run for moim:\n${r.stdout}`);
    assert.match(run, /--network host/, 'host networking, for media');
    assert.match(run, /-v \S+:\/var\/lib\/moim/, 'a volume for the data directory');
    assert.match(run, new RegExp(`-e MOIM_KEYS=mykey: ${SECRET}`));
  });

  test('without MOIM_KEYS, Compose refuses with a sentence that says what to set', () => {
    const env = { ...process.env };
    delete env.MOIM_KEYS;
    const r = spawnSync('podman-compose', ['-f', deployFile('compose.yaml'), '--dry-run', 'up', '-d'], { encoding: 'utf8', env });
    assert.notEqual(r.status, 0);
    assert.match(r.stdout + r.stderr, /set MOIM_KEYS/);
  });
});

describe('Helm chart', () => {
  let render;
  before(() => {
    const dir = scratchDir('chart-render');
    const bin = path.join(dir, 'chart-render');
    fs.copyFileSync(path.join(ROOT, 'tests/deploy/chart-render/main.go'), path.join(dir, 'main.go'));
    // Debian's Go packages live in GOPATH form under /usr/share/gocode.
    execFileSync('go', ['build', '-o', bin, '.'], {
      cwd: dir,
      env: { ...process.env, GO111MODULE: 'off', GOPATH: '/usr/share/gocode', GOCACHE: path.join(dir, 'cache') },
    });
    render = (...sets) => {
      const r = spawnSync(bin, [deployFile('helm/moim'), 'meet', ...sets], { encoding: 'utf8' });
      return { ok: r.status === 0, objects: r.status === 0 ? JSON.parse(r.stdout) : [], error: r.stderr };
    };
  });
  const of = (objects, kind) => objects.find((o) => o.kind === kind);
  const env = (container, name) => container.env.find((e) => e.name === name);

  test('renders a Deployment on the host network, its Service, Secret and disruption budget', () => {
    const { ok, objects, error } = render(`keys.value=mykey: ${SECRET}`);
    assert.ok(ok, error);
    assert.deepEqual(objects.map((o) => o.kind).sort(), ['Deployment', 'PodDisruptionBudget', 'Secret', 'Service']);
    const pod = of(objects, 'Deployment').spec.template.spec;
    const moim = pod.containers[0];
    assert.equal(pod.hostNetwork, true, 'media ports are the node\'s');
    assert.equal(pod.dnsPolicy, 'ClusterFirstWithHostNet');
    assert.ok(pod.terminationGracePeriodSeconds > Number(env(moim, 'MOIM_DRAIN_TIMEOUT_SECS').value), 'the grace period outlasts the drain');
    assert.equal(moim.readinessProbe.httpGet.path, '/healthz');
    assert.equal(moim.livenessProbe.httpGet.path, '/healthz');
    assert.ok(moim.livenessProbe.failureThreshold * moim.livenessProbe.periodSeconds > pod.terminationGracePeriodSeconds, 'a draining pod (503) is not killed for it');
    assert.deepEqual(env(moim, 'MOIM_NODE_IP').valueFrom, { fieldRef: { fieldPath: 'status.hostIP' } }, 'by default the node\'s address is announced');
    const secret = of(objects, 'Secret');
    assert.equal(env(moim, 'MOIM_KEYS').valueFrom.secretKeyRef.name, secret.metadata.name);
    assert.equal(secret.stringData.keys, `mykey: ${SECRET}`);
    const service = of(objects, 'Service');
    assert.deepEqual(service.spec.selector, of(objects, 'PodDisruptionBudget').spec.selector.matchLabels);
    assert.ok(moim.ports.some((p) => p.protocol === 'UDP' && p.containerPort === 7882));
  });

  test('a public IP behind cloud NAT, or STUN discovery, replaces the node address', () => {
    const nat = render(`keys.value=mykey: ${SECRET}`, 'media.nodeIp=203.0.113.10', 'media.singlePort=443');
    assert.ok(nat.ok, nat.error);
    const moim = of(nat.objects, 'Deployment').spec.template.spec.containers[0];
    assert.equal(env(moim, 'MOIM_NODE_IP').value, '203.0.113.10');
    assert.ok(moim.args.includes('--single-port=443'));
    const stun = render(`keys.value=mykey: ${SECRET}`, 'media.useExternalIp=true');
    const moim2 = of(stun.objects, 'Deployment').spec.template.spec.containers[0];
    assert.equal(env(moim2, 'MOIM_NODE_IP'), undefined);
    assert.ok(moim2.args.includes('--use-external-ip'));
  });

  test('without keys the chart refuses, saying what to set; an existing Secret is used as is', () => {
    const none = render();
    assert.equal(none.ok, false);
    assert.match(none.error, /set keys\.value/);
    const existing = render('keys.existingSecret=moim-keys');
    assert.ok(existing.ok, existing.error);
    assert.equal(of(existing.objects, 'Secret'), undefined);
    const moim = of(existing.objects, 'Deployment').spec.template.spec.containers[0];
    assert.equal(env(moim, 'MOIM_KEYS').valueFrom.secretKeyRef.name, 'moim-keys');
  });
});

describe('OCI image from deploy/Containerfile, run with podman', () => {
  let image;
  let pageServer;
  let browser;
  before(
    async () => {
      image = await buildImage();
      pageServer = await startStaticServer();
      browser = await launchBrowser(pageServer.origin);
    },
    { timeout: 600_000 },
  );
  after(async () => {
    await browser?.close();
    await pageServer?.close();
  });

  test('moim starts in the container, serves moim meet, and two people meet through it', { timeout: 120_000 }, async () => {
    const ports = await pickPorts();
    const container = await podmanRun(image, [
      'serve', '--dev', '--bind', '127.0.0.1', '--port', String(ports.http),
      '--rtc-udp-port', String(ports.udp), '--rtc-tcp-port', String(ports.tcp), '--no-turn',
    ]);
    const url = `http://127.0.0.1:${ports.http}`;
    try {
      await waitFor(async () => (await fetch(`${url}/healthz`).catch(() => null))?.ok, {
        timeout: 30_000,
        describe: () => container.logs(),
      });
      const home = await (await fetch(`${url}/`)).text();
      assert.match(home, /<title>moim meet<\/title>/, 'the image carries the meeting app');

      const room = `container-${Math.random().toString(36).slice(2, 8)}`;
      const alice = await browser.newPage('container/alice');
      const bob = await browser.newPage('container/bob');
      await openTestPage(alice, pageServer.origin);
      await openTestPage(bob, pageServer.origin);
      await alice.evaluate(([u, t]) => window.app.join(u, t, {}, 'camera'), [`ws://127.0.0.1:${ports.http}`, await mintToken('alice', room)]);
      await bob.evaluate(([u, t]) => window.app.join(u, t, {}, 'none'), [`ws://127.0.0.1:${ports.http}`, await mintToken('bob', room)]);
      await waitFor(async () => (await evalWithin(bob, () => window.app.stats())).video.framesDecoded > 30, {
        timeout: 30_000,
        describe: async () => `${consoleTail(bob, 20)}\n${await container.logs()}`,
      });
      await alice.close();
      await bob.close();

      // podman stop sends the image's STOPSIGNAL; moim drains and exits 0.
      podman(['stop', '-t', '40', container.name]);
      const code = podman(['inspect', '--format', '{{.State.ExitCode}}', container.name]).trim();
      assert.equal(code, '0', `moim exits 0 on SIGTERM\n${await container.logs()}`);
    } finally {
      container.remove();
    }
  });
});
