// Server behind NAT (issue 4, "How it is proven").
//
//   [srv] eth0 10.77.2.2/24 ── in0 10.77.2.1/24 [nat] out0 10.77.1.1/24 ── eth0 10.77.1.2/24 [cli]
//
// `nat` masquerades srv's traffic out of out0 and DNATs 10.77.1.1:{7880,7881/tcp, 7882/udp} to
// srv; it forwards nothing else inwards. `cli` has only its connected route, so srv's private
// address 10.77.2.2 is unreachable from it, as a private address is from the internet.
// moim runs in srv with --bind 0.0.0.0; two livekit-client pages in Chromium run in cli
// (client-pages.mjs, under `ip netns exec`) against ws://10.77.1.1:7880. TURN is not forwarded,
// so media can only flow over the announced host candidates (UDP 7882 or ICE-TCP 7881).
// (The moim-client `smoke` example cannot be used here: it binds its media socket to 127.0.0.1.)
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Namespace, veth, MoimInNs, missingPrerequisite, cleanupAll, runClientPages, describePair } from './netns.mjs';

const HTTP = 7880;
const ICE_TCP = 7881;
const UDP = 7882;
const OUTSIDE = '10.77.1.1'; // the NAT's outside address: what clients reach
const INSIDE = '10.77.2.2'; // srv's private address
const OBSERVE_MS = 20_000; // how long the failing case watches for media

const skip = missingPrerequisite() || false; // node 20 treats skip: null as a skip

describe('server behind NAT', { skip }, () => {
  const srv = new Namespace('n-srv');
  const nat = new Namespace('n-nat');
  const cli = new Namespace('n-cli');

  before(() => {
    for (const ns of [srv, nat, cli]) ns.create();
    veth(srv, 'eth0', nat, 'in0');
    veth(nat, 'out0', cli, 'eth0');
    srv.addr('eth0', `${INSIDE}/24`);
    srv.ip('route', 'add', 'default', 'via', '10.77.2.1');
    nat.addr('in0', '10.77.2.1/24');
    nat.addr('out0', `${OUTSIDE}/24`);
    cli.addr('eth0', '10.77.1.2/24');
    nat.sysctl('net.ipv4.ip_forward=1');
    nat.nft(`
table ip moimnat {
  chain pre {
    type nat hook prerouting priority dstnat; policy accept;
    iifname "out0" tcp dport { ${HTTP}, ${ICE_TCP} } counter dnat to ${INSIDE}
    iifname "out0" udp dport ${UDP} counter dnat to ${INSIDE}
  }
  chain post {
    type nat hook postrouting priority srcnat; policy accept;
    oifname "out0" counter masquerade
  }
  chain forward_filter {
    type filter hook forward priority filter; policy drop;
    ct state established,related accept
    iifname "in0" oifname "out0" accept
    iifname "out0" oifname "in0" ct status dnat accept
  }
}
`);
  });
  after(() => cleanupAll());

  async function scenario(extraArgs, label, pageOpts) {
    const server = new MoimInNs(srv, {
      args: ['--bind', '0.0.0.0', '--port', String(HTTP), '--rtc-tcp-port', String(ICE_TCP), '--rtc-udp-port', String(UDP), ...extraArgs],
      label,
      reachableFrom: cli,
      url: `http://${OUTSIDE}:${HTTP}`,
    });
    try {
      await server.start(); // also proves the HTTP port forward works
      const pages = await runClientPages(cli, { wsUrl: `ws://${OUTSIDE}:${HTTP}`, room: `netns-${label}`, ...pageOpts }, server);
      return { ...pages, log: server.log(), server };
    } finally {
      await server.stop();
    }
  }

  function natCounters() {
    const rules = nat.nftList('ip moimnat');
    const hits = (re) => Number((rules.match(re) || [])[1] || 0);
    return { udp: hits(/udp dport \d+ counter packets (\d+)/), tcp: hits(/tcp dport \{[^}]*\} counter packets (\d+)/) };
  }

  test('cli cannot route to the private address (the NAT is the only way in)', () => {
    const r = cli.exec('ip', ['route', 'get', INSIDE], { allowFail: true });
    assert.equal(r, null, `cli has a route to ${INSIDE}: ${r}`);
  });

  test(`with --node-ip ${OUTSIDE}: media flows between two clients outside`, { timeout: 100_000 }, async (t) => {
    const before = natCounters();
    const { res, run, diag, log } = await scenario(['--node-ip', OUTSIDE], 'nat-node-ip', { deadlineMs: 60_000 });
    assert.match(log, new RegExp(`media candidates announce this address announce=${OUTSIDE.replace(/\./g, '\\.')} source=NodeIp`), diag());
    assert.ok(res && res.ok && run.code === 0, `pages outside the NAT got no media although --node-ip is set\n${diag()}`);
    const paths = [];
    for (const me of ['A', 'B']) {
      const p = res.pages[me];
      t.diagnostic(`page ${me}: video framesDecoded ${p.framesDecoded.join(' → ')}, audio packets ${p.audioPackets}`);
      assert.ok(p.framesDecoded[2] > p.framesDecoded[1], `page ${me}: framesDecoded must keep growing: ${p.framesDecoded}`);
      for (const pc of p.pcs) {
        t.diagnostic(`page ${me} path: ${describePair(pc)}`);
        paths.push(describePair(pc));
        assert.equal(pc.pair?.remote?.address, OUTSIDE, `page ${me}: media is not addressed to the NAT's outside address: ${JSON.stringify(pc)}`);
      }
    }
    const after = natCounters();
    t.diagnostic(`NAT port forwards matched: udp ${after.udp - before.udp}, tcp ${after.tcp - before.tcp} new flows`);
    console.log(`NAT with --node-ip ${OUTSIDE}: media flowed; path ${[...new Set(paths)].join('; ')}; framesDecoded A=${res.pages.A.framesDecoded[2]} B=${res.pages.B.framesDecoded[2]}`);
  });

  test('without --node-ip: media fails and the start-up log names the private announced address', { timeout: 100_000 }, async (t) => {
    const { res, run, diag, log, server } = await scenario([], 'nat-no-node-ip', { observeMs: OBSERVE_MS, deadlineMs: OBSERVE_MS + 40_000 });
    const warn = log.split('\n').find((l) => / WARN /.test(l) && l.includes(`announces the private address ${INSIDE}`));
    assert.ok(warn, `no start-up WARN naming the private announced address ${INSIDE}\n${server.logTail(40)}`);
    assert.match(warn, /--node-ip/, 'the warning tells the operator what to set');
    t.diagnostic(`start-up warning: ${warn.replace(/^.*WARN /, 'WARN ').slice(0, 200)}…`);
    assert.ok(res && res.ok, `the page runner failed\n${diag()}`);
    for (const me of ['A', 'B']) {
      const p = res.pages[me];
      // Signalling works through the NAT; only media must fail.
      assert.ok(p.webSockets.some((w) => w.opened), `page ${me}: the signalling WebSocket never opened through the NAT, so this proves nothing about media\n${diag()}`);
      t.diagnostic(`page ${me} after ${OBSERVE_MS} ms: framesDecoded ${p.framesDecoded[0]}, video packets ${p.videoPackets}, audio packets ${p.audioPackets}; PeerConnections ${p.peerConnections.map((c) => `${c.connectionState}/${c.iceConnectionState}`).join(', ') || 'none'}; events ${p.events.join(' ')}`);
      assert.equal(p.framesDecoded[0], 0, `page ${me} decoded video although moim announced its private address ${INSIDE}\n${diag()}`);
      assert.equal(p.audioPackets, 0, `page ${me} received audio although moim announced its private address ${INSIDE}\n${diag()}`);
    }
    console.log(`NAT without --node-ip: no media in ${OBSERVE_MS / 1000} s as expected; moim warned: announces the private address ${INSIDE}`);
  });
});
