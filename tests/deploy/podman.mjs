// podman for the image test: a Debian base image made here with debootstrap (this
// machine reaches Debian's archive, not container registries), moim's image built from
// deploy/Containerfile on it, and containers run on the host network.
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { moimBinary } from '../browser/harness.mjs';
import { scratchDir } from './tools.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '../..');
const BASE_IMAGE = 'localhost/moim-test-debian:bookworm';
const DIST_IMAGE = 'localhost/moim-test-dist:latest';
export const IMAGE = 'localhost/moim:test';

export function podman(args, opts = {}) {
  return execFileSync('podman', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], ...opts });
}

/**
 * Some machines mount cgroup v1 controllers beside a cgroup v2 tree that still holds one
 * (hugetlb here), and crun refuses that "hybrid" layout. Mounting the stray controller
 * on v1 as well moves it off v2; nothing else on such a machine uses it.
 */
function fixHybridCgroups() {
  const unified = '/sys/fs/cgroup/unified/cgroup.controllers';
  if (!fs.existsSync(unified)) return;
  for (const controller of fs.readFileSync(unified, 'utf8').split(/\s+/).filter(Boolean)) {
    const dir = `/sys/fs/cgroup/${controller}`;
    if (fs.existsSync(path.join(dir, 'tasks'))) continue;
    fs.mkdirSync(dir, { recursive: true });
    execFileSync('mount', ['-t', 'cgroup', '-o', controller, 'cgroup', dir]);
  }
}

/** Limits a container may have: crun cannot raise them past this process's own. */
function ulimitArgs() {
  const hard = execFileSync('sh', ['-c', 'ulimit -Hn'], { encoding: 'utf8' }).trim();
  const nofile = hard === 'unlimited' ? '65536' : hard;
  return ['--ulimit', `nofile=${nofile}:${nofile}`, '--ulimit', 'nproc=4096:4096'];
}

function imageExists(name) {
  return spawnSync('podman', ['image', 'exists', name]).status === 0;
}

/** debian:bookworm-slim's stand-in: a minimal bookworm from Debian's archive. */
function baseImage() {
  if (imageExists(BASE_IMAGE)) return BASE_IMAGE;
  const rootfs = path.join(HERE, 'out', 'rootfs-bookworm');
  if (!fs.existsSync(path.join(rootfs, 'etc/debian_version'))) {
    fs.rmSync(rootfs, { recursive: true, force: true });
    execFileSync('debootstrap', ['--variant=minbase', 'bookworm', rootfs, 'http://deb.debian.org/debian'], {
      stdio: 'ignore',
    });
  }
  execFileSync('sh', ['-c', `tar -C '${rootfs}' -c . | podman import - ${BASE_IMAGE}`], { stdio: 'ignore' });
  return BASE_IMAGE;
}

/** An image holding /dist as the Containerfile's build stage leaves it, from this build. */
function distImage() {
  const ctx = scratchDir('dist');
  const dist = path.join(ctx, 'dist');
  fs.mkdirSync(path.join(dist, 'bin'), { recursive: true });
  fs.mkdirSync(path.join(dist, 'share/moim'), { recursive: true });
  fs.copyFileSync(moimBinary(), path.join(dist, 'bin/moim'));
  fs.chmodSync(path.join(dist, 'bin/moim'), 0o755);
  const meet = path.join(ROOT, 'web/meet/dist');
  if (!fs.existsSync(path.join(meet, 'index.html'))) {
    throw new Error('web/meet/dist is missing: run scripts/build-meet.sh first');
  }
  fs.cpSync(meet, path.join(dist, 'share/moim/meet'), { recursive: true });
  fs.writeFileSync(path.join(ctx, 'Containerfile'), 'FROM scratch\nCOPY dist /dist\n');
  podman(['build', '-q', '-t', DIST_IMAGE, ctx]);
  return DIST_IMAGE;
}

/** Builds deploy/Containerfile's final stage on the local base, with this build's binary. */
export async function buildImage() {
  fixHybridCgroups();
  const base = baseImage();
  const dist = distImage();
  // The Rust stage is skipped (DIST replaces it), so the context needs nothing.
  const ctx = scratchDir('context');
  podman([
    'build', '--network', 'host', ...ulimitArgs(),
    '--build-arg', `RUNTIME_IMAGE=${base}`, '--build-arg', `DIST=${dist}`,
    '-f', path.join(ROOT, 'deploy/Containerfile'), '-t', IMAGE, ctx,
  ]);
  return IMAGE;
}

export async function podmanRun(image, args) {
  const name = `moim-test-${process.pid}-${Math.random().toString(36).slice(2, 6)}`;
  podman(['run', '-d', '--name', name, '--network', 'host', ...ulimitArgs(), image, ...args]);
  return {
    name,
    logs: async () => {
      const r = spawnSync('podman', ['logs', name], { encoding: 'utf8' });
      return `---- podman logs ${name} ----\n${(r.stdout + r.stderr).split('\n').slice(-40).join('\n')}`;
    },
    remove: () => spawnSync('podman', ['rm', '-f', name]),
  };
}
