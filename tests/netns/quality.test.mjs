// Connection quality on a lossy link (issue 12, "How it is proven").
//
//   [cla] eth0 10.77.4.2/24 ── a0 ┐
//                               br0 10.77.4.1/24 [srv]
//   [clb] eth0 10.77.4.3/24 ── b0 ┘
//
// moim runs in srv on a bridge both clients share, so both reach (and are answered from) the
// one announced address 10.77.4.1. Alice's page runs in cla on a
// clean link. Bob's runs in clb, where nftables drops one UDP packet in five at random, both
// ways. TURN and ICE-TCP are off, so media can only take the lossy UDP path.
//   - at 20% loss both pages must be told that bob's link is poor (or lost), and alice's own is
//     excellent or good;
//   - at 1%, 5% and 10% loss bob must keep decoding alice's video: NACKs recover it (nackCount
//     grows), and freezes stay few. The figures are printed.
//   - the same with loss in bursts on bob's downlink: every UDP packet bob receives is dropped
//     for 50 ms at random moments, about one a second (5% in all, a burst takes 5 or 6 video
//     packets in a row; the test switches an nftables rule, since this kernel may lack netem).
import { describe, test, before, after } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import assert from 'node:assert/strict';
import path from 'node:path';
import { Namespace, veth, MoimInNs, missingPrerequisite, cleanupAll, HERE } from './netns.mjs';

const SRV_IP = '10.77.4.1';
const HTTP = 7880;
const OBSERVE_MS = 25_000;

const skip = missingPrerequisite() || false;

async function runPage(ns, identity, room) {
  const opts = { wsUrl: `ws://${SRV_IP}:${HTTP}`, room, identity, observeMs: OBSERVE_MS };
  const run = await ns.run(process.execPath, [path.join(HERE, 'quality-page.mjs'), JSON.stringify(opts)], {
    timeoutMs: OBSERVE_MS + 75_000,
  });
  const line = run.stdout.split('\n').find((l) => l.startsWith('RESULT '));
  const res = line ? JSON.parse(line.slice(7)) : { ok: false, error: `no RESULT: ${run.stdout}${run.stderr.slice(-3000)}` };
  return res;
}

describe('a link that loses packets at random', { skip }, () => {
  const srv = new Namespace('q-srv');
  const cla = new Namespace('q-cla');
  const clb = new Namespace('q-clb');

  before(() => {
    for (const ns of [srv, cla, clb]) ns.create();
    veth(srv, 'a0', cla, 'eth0');
    veth(srv, 'b0', clb, 'eth0');
    srv.ip('link', 'add', 'br0', 'type', 'bridge');
    for (const port of ['a0', 'b0']) {
      srv.ip('link', 'set', port, 'master', 'br0');
      srv.ip('link', 'set', port, 'up');
    }
    srv.addr('br0', `${SRV_IP}/24`);
    cla.addr('eth0', '10.77.4.2/24');
    clb.addr('eth0', '10.77.4.3/24');
  });
  after(() => cleanupAll());

  /** Makes bob's link drop `percent`% of UDP packets each way, at random. */
  function lose(percent) {
    clb.exec('nft', ['delete', 'table', 'inet', 'moimloss'], { allowFail: true });
    clb.nft(`
table inet moimloss {
  chain input {
    type filter hook input priority filter; policy accept;
    iifname != "lo" meta l4proto udp numgen random mod 100 < ${percent} counter drop
  }
  chain output {
    type filter hook output priority filter; policy accept;
    oifname != "lo" meta l4proto udp numgen random mod 100 < ${percent} counter drop
  }
}
`);
  }

  /**
   * Drops all UDP bob receives for `burstMs` at random moments 0.5 to 1.5 s apart, until the
   * returned function is called (at most 300 bursts). It resolves to how many there were.
   */
  function startBursts(burstMs) {
    clb.nft('table inet moimburst {\n  chain input {\n    type filter hook input priority filter; policy accept;\n  }\n}\n');
    let stopped = false;
    let bursts = 0;
    const rule = ['add', 'rule', 'inet', 'moimburst', 'input', 'iifname', '!=', 'lo', 'meta', 'l4proto', 'udp', 'drop'];
    const loop = (async () => {
      while (!stopped && bursts < 300) {
        await sleep(500 + Math.random() * 1000);
        if (stopped) break;
        clb.exec('nft', rule);
        await sleep(burstMs);
        clb.exec('nft', ['flush', 'chain', 'inet', 'moimburst', 'input']);
        bursts += 1;
      }
    })();
    return async () => {
      stopped = true;
      await loop;
      clb.exec('nft', ['delete', 'table', 'inet', 'moimburst'], { allowFail: true });
      return bursts;
    };
  }

  /** Runs alice (clean link) and bob (lossy) in one room; returns both pages' results. */
  async function call(t, percent, burstMs = 0) {
    lose(percent);
    const stopBursts = burstMs ? startBursts(burstMs) : async () => 0;
    const server = new MoimInNs(srv, {
      args: ['--bind', '0.0.0.0', '--node-ip', SRV_IP, '--port', String(HTTP), '--rtc-tcp-port', '0', '--no-turn'],
      label: burstMs ? 'loss-bursts' : `loss-${percent}`,
      reachableFrom: cla,
      url: `http://${SRV_IP}:${HTTP}`,
      // How bob's downlink was shared out and which keyframes were asked for, for a failure.
      log: 'info,moim_sfu::shard=debug',
    });
    try {
      await server.start();
      const room = burstMs ? 'netns-loss-bursts' : `netns-loss-${percent}`;
      const [alice, bob] = await Promise.all([runPage(cla, 'alice', room), runPage(clb, 'bob', room)]);
      const diag = () =>
        `bob's view of alice's video, a line a second (width, frames decoded, lost, NACKs, stream state):\n  ${(bob.timeline || []).join('\n  ')}\n` +
        `alice: ${JSON.stringify({ ...alice, console: undefined, timeline: undefined })}\nbob: ${JSON.stringify({ ...bob, console: undefined, timeline: undefined })}\n` +
        `${alice.console || ''}\n${bob.console || ''}\n` +
        `${server.logMatching(/re-shared|congested|paused|resumed|keyframe/, 20)}\n${server.logTail(20)}`;
      assert.ok(alice.ok && bob.ok, `a page failed\n${diag()}`);
      return { alice, bob, diag };
    } finally {
      const bursts = await stopBursts();
      if (burstMs) console.log(`# ${bursts} bursts of ${burstMs} ms`);
      await server.stop();
    }
  }

  test('at 20% loss both pages are told bob is poor or lost and alice is excellent or good', { timeout: 150_000 }, async (t) => {
    const { alice, bob, diag } = await call(t, 20);
    const bad = (q) => q === 'poor' || q === 'lost';
    const fine = (q) => q === 'excellent' || q === 'good';
    console.log(`20% loss on bob's link: alice saw ${JSON.stringify(alice.seen)}, bob saw ${JSON.stringify(bob.seen)}`);
    assert.ok(bad(alice.final.bob), `alice must be told bob's link is poor or lost\n${diag()}`);
    assert.ok(bad(bob.final.bob), `bob must be told his own link is poor or lost\n${diag()}`);
    assert.ok(fine(alice.final.alice), `alice's own clean link must be excellent or good\n${diag()}`);
  });

  const LOSSES = [
    { title: '1% loss', percent: 1 },
    { title: '5% loss', percent: 5 },
    { title: '10% loss', percent: 10 },
    { title: 'loss in 50 ms bursts about once a second', percent: 0, burstMs: 50 },
  ];
  for (const loss of LOSSES) {
    test(`at ${loss.title} bob keeps decoding alice's video, NACKs repairing it`, { timeout: 150_000 }, async (t) => {
      const { bob, diag } = await call(t, loss.percent, loss.burstMs);
      const v = bob.video;
      console.log(
        `${loss.title} on bob's link, ${OBSERVE_MS / 1000} s: bob decoded ${v.framesDecoded} frames, ` +
          `sent ${v.nackCount} NACKs, packetsLost ${v.packetsLost} of ${v.packetsReceived + v.packetsLost}, ` +
          `${v.freezeCount} freezes (${v.totalFreezesDuration.toFixed(1)} s frozen); bob was told ${JSON.stringify(bob.seen.bob)}`,
      );
      assert.ok(v.framesDecoded > 100, `bob must keep decoding video: ${JSON.stringify(v)}\n${diag()}`);
      assert.ok(v.nackCount > 0, `bob's losses must be asked for again: ${JSON.stringify(v)}\n${diag()}`);
      assert.ok(v.totalFreezesDuration < OBSERVE_MS / 1000 / 4, `video must be frozen for under a quarter of the call: ${JSON.stringify(v)}\n${diag()}`);
    });
  }
});
