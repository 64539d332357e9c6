// UDP blocked (issue 4, "How it is proven").
//
//   [srv] eth0 10.77.1.1/24 ──────── eth0 10.77.1.2/24 [cli]   (nftables in cli: drop all UDP)
//
// moim runs in srv. In cli, nftables drops every UDP packet in and out (loopback excepted). The
// browser suite's harness runs inside cli (`ip netns exec cli node client-pages.mjs`): its page
// is served from http://127.0.0.1 there (a secure context), and two livekit-client pages join
// ws://10.77.1.1:7880 and must decode each other's video. The selected ICE candidate pair of
// every PeerConnection says which path carried the media:
//   1. default server (ICE-TCP and TURN both on): any TCP path; Chromium picks TURN/TCP here;
//   2. TURN disabled (--no-turn): ICE-TCP (TCP to the server's host/tcp candidate on 7881);
//   3. ICE-TCP disabled (--rtc-tcp-port 0): TURN over TCP (local relay candidate, relayProtocol tcp).
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Namespace, veth, MoimInNs, missingPrerequisite, cleanupAll, runClientPages, describePair } from './netns.mjs';

const SRV_IP = '10.77.1.1';
const HTTP = 7880;
const ICE_TCP = 7881;
const UDP = 7882;
const TURN = 3478;

const skip = missingPrerequisite() || false; // node 20 treats skip: null as a skip

describe('UDP blocked in the client namespace', { skip }, () => {
  const srv = new Namespace('u-srv');
  const cli = new Namespace('u-cli');

  before(() => {
    srv.create();
    cli.create();
    veth(srv, 'eth0', cli, 'eth0');
    srv.addr('eth0', `${SRV_IP}/24`);
    cli.addr('eth0', '10.77.1.2/24');
    cli.nft(`
table inet moimblock {
  chain input {
    type filter hook input priority filter; policy accept;
    iifname != "lo" meta l4proto udp counter drop
  }
  chain output {
    type filter hook output priority filter; policy accept;
    oifname != "lo" meta l4proto udp counter drop
  }
}
`);
  });
  after(() => cleanupAll());

  function udpDropped() {
    const rules = cli.nftList('inet moimblock');
    return [...rules.matchAll(/counter packets (\d+)/g)].reduce((a, m) => a + Number(m[1]), 0);
  }

  async function runPages(t, label, serverArgs, check) {
    const server = new MoimInNs(srv, {
      args: ['--bind', '0.0.0.0', '--node-ip', SRV_IP, '--port', String(HTTP), '--rtc-udp-port', String(UDP), '--turn-port', String(TURN), ...serverArgs],
      label,
      reachableFrom: cli,
      url: `http://${SRV_IP}:${HTTP}`,
    });
    try {
      await server.start();
      const droppedBefore = udpDropped();
      const opts = { wsUrl: `ws://${SRV_IP}:${HTTP}`, room: `netns-${label}`, deadlineMs: 75_000 };
      const { res, run, diag } = await runClientPages(cli, opts, server);
      assert.ok(res && res.ok && run.code === 0, `pages in the UDP-blocked namespace did not get media\n${diag()}`);
      assert.equal(res.secureContext, true, 'page on http://127.0.0.1 is a secure context');
      const dropped = udpDropped() - droppedBefore;
      t.diagnostic(`nftables in cli dropped ${dropped} UDP packets during the run`);
      for (const me of ['A', 'B']) {
        const p = res.pages[me];
        const [f0, f1, f2] = p.framesDecoded;
        t.diagnostic(`page ${me}: video framesDecoded ${f0} → ${f1} → ${f2}, video packets ${p.videoPackets}, audio packets ${p.audioPackets}`);
        assert.ok(f2 > f1 && f1 > f0, `page ${me}: framesDecoded must keep growing: ${p.framesDecoded}`);
        assert.ok(p.pcs.length > 0, `page ${me} has no live PeerConnection`);
        for (const pc of p.pcs) {
          t.diagnostic(`page ${me} path: ${describePair(pc)}`);
          assert.ok(pc.pair && pc.pair.local && pc.pair.remote, `page ${me}: no selected candidate pair: ${JSON.stringify(pc)}`);
          check(pc.pair, me);
        }
      }
      const paths = [...new Set(['A', 'B'].flatMap((me) => res.pages[me].pcs.map(describePair)))];
      console.log(`UDP blocked, ${label}: media flowed; path ${paths.join('; ')}; framesDecoded A=${res.pages.A.framesDecoded[2]} B=${res.pages.B.framesDecoded[2]}; ${dropped} UDP packets dropped`);
      return res;
    } finally {
      await server.stop();
    }
  }

  test('the client namespace really drops UDP (no UDP reaches the server)', async () => {
    // A UDP datagram from cli to srv must be refused by the output rule.
    const r = await cli.run(process.execPath, ['-e', `
      const s = require('node:dgram').createSocket('udp4');
      s.send(Buffer.from('x'), ${UDP}, '${SRV_IP}', (err) => { console.log(err ? 'blocked:' + err.code : 'sent'); s.close(); });
    `], { timeoutMs: 10_000 });
    assert.match(r.stdout, /blocked:EPERM/, `UDP send from cli was not blocked: ${r.stdout}${r.stderr}`);
  });

  test('default server: media reaches Chromium over TCP (ICE-TCP or TURN/TCP)', { timeout: 120_000 }, async (t) => {
    await runPages(t, 'udp-blocked-default', ['--rtc-tcp-port', String(ICE_TCP)], (pair, me) => {
      const l = pair.local;
      const tcp = l.type === 'relay' ? l.relayProtocol === 'tcp' : l.protocol === 'tcp';
      assert.ok(tcp, `page ${me}: selected pair is not over TCP: ${JSON.stringify(pair)}`);
    });
  });

  test('TURN disabled: media reaches Chromium over ICE-TCP (host/tcp)', { timeout: 120_000 }, async (t) => {
    await runPages(t, 'udp-blocked-ice-tcp', ['--rtc-tcp-port', String(ICE_TCP), '--no-turn'], (pair, me) => {
      // Chrome reports the local side of an active ICE-TCP connection as prflx (its port is only
      // known once connected); what matters is TCP on both sides to the server's ICE-TCP port.
      assert.ok(['host', 'prflx'].includes(pair.local.type), `page ${me}: expected a host/prflx candidate: ${JSON.stringify(pair)}`);
      assert.equal(pair.remote.type, 'host', `page ${me}: expected the server's host candidate: ${JSON.stringify(pair)}`);
      assert.equal(pair.remote.protocol, 'tcp', `page ${me}: expected ICE-TCP: ${JSON.stringify(pair)}`);
      assert.equal(pair.local.protocol, 'tcp', `page ${me}: expected ICE-TCP: ${JSON.stringify(pair)}`);
      assert.equal(pair.remote.port, ICE_TCP, `page ${me}: expected the server's ICE-TCP port: ${JSON.stringify(pair)}`);
    });
  });

  test('ICE-TCP disabled: media reaches Chromium through the embedded TURN over TCP', { timeout: 120_000 }, async (t) => {
    await runPages(t, 'udp-blocked-turn-tcp', ['--rtc-tcp-port', '0'], (pair, me) => {
      assert.equal(pair.local.type, 'relay', `page ${me}: expected a relay candidate: ${JSON.stringify(pair)}`);
      assert.equal(pair.local.relayProtocol, 'tcp', `page ${me}: expected TURN over TCP: ${JSON.stringify(pair)}`);
    });
  });
});
