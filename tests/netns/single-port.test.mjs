// One port for everything (issue 15): a network that lets only port 443 through.
//
//   [srv] eth0 10.77.3.1/24 ──────── eth0 10.77.3.2/24 [cli]   (nftables in cli: only 443 out)
//
// moim runs in srv with --single-port 443. In cli, nftables lets out only TCP and UDP to
// port 443 of the server (and what answers it); everything else leaving cli is dropped and
// counted. Two livekit-client pages in Chromium join ws://10.77.3.1:443 and must decode each
// other's video, and every PeerConnection's selected candidate pair must use port 443:
//   1. TCP and UDP 443 open: media through moim's TURN over UDP on 443;
//   2. only TCP 443 open: media through moim's TURN over TCP on 443.
// Both relay to the media port (7882) inside the server. Chromium drops remote candidates
// on ports under 1024 (measured: 1023 and 443 fail, 1024 works), so moim's own media and
// ICE-TCP candidates on 443 would be no use to a browser; TURN on 443 is the path.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Namespace, veth, MoimInNs, missingPrerequisite, cleanupAll, runClientPages, describePair } from './netns.mjs';

const SRV_IP = '10.77.3.1';
const PORT = 443;

const skip = missingPrerequisite() || false;

/** nftables for cli: out to the server only on `allowed` ("tcp", "udp"), port 443. */
function onlyPort443(allowed) {
  const rules = allowed.map((proto) => `    ip daddr ${SRV_IP} ${proto} dport ${PORT} accept`).join('\n');
  return `
table inet moim443 {
  chain output {
    type filter hook output priority filter; policy accept;
    oifname "lo" accept
    ct state established,related accept
${rules}
    counter drop
  }
}
`;
}

describe('only port 443 open between the client and moim --single-port 443', { skip }, () => {
  const srv = new Namespace('p-srv');
  const cli = new Namespace('p-cli');

  before(() => {
    srv.create();
    cli.create();
    veth(srv, 'eth0', cli, 'eth0');
    srv.addr('eth0', `${SRV_IP}/24`);
    cli.addr('eth0', '10.77.3.2/24');
  });
  after(() => cleanupAll());

  function dropped() {
    const rules = cli.nftList('inet moim443');
    return [...rules.matchAll(/counter packets (\d+)/g)].reduce((a, m) => a + Number(m[1]), 0);
  }

  async function meet(t, label, allowed, serverArgs, check) {
    // Declaring the table first makes the delete succeed whether or not it exists.
    cli.nft(`table inet moim443\ndelete table inet moim443\n${onlyPort443(allowed)}`);
    const server = new MoimInNs(srv, {
      args: ['--bind', '0.0.0.0', '--node-ip', SRV_IP, '--single-port', String(PORT), ...serverArgs],
      label,
      reachableFrom: cli,
      url: `http://${SRV_IP}:${PORT}`,
    });
    try {
      await server.start();
      const before = dropped();
      const opts = { wsUrl: `ws://${SRV_IP}:${PORT}`, room: `netns-${label}`, deadlineMs: 75_000 };
      const { res, run, diag } = await runClientPages(cli, opts, server);
      assert.ok(res && res.ok && run.code === 0, `pages behind the 443-only firewall did not get media\n${diag()}`);
      const blocked = dropped() - before;
      for (const me of ['A', 'B']) {
        const p = res.pages[me];
        const [f0, f1, f2] = p.framesDecoded;
        assert.ok(f2 > f1 && f1 > f0, `page ${me}: framesDecoded must keep growing: ${p.framesDecoded}`);
        for (const pc of p.pcs) {
          t.diagnostic(`page ${me} path: ${describePair(pc)}`);
          assert.ok(pc.pair?.local && pc.pair?.remote, `page ${me}: no selected pair: ${JSON.stringify(pc)}`);
          check(pc.pair, me);
        }
      }
      const paths = [...new Set(['A', 'B'].flatMap((me) => res.pages[me].pcs.map(describePair)))];
      console.log(`443 only (${allowed.join('+')}), ${label}: media flowed; ${paths.join('; ')}; ${blocked} packets to other ports dropped`);
    } finally {
      await server.stop();
    }
  }

  /** The selected pair runs through moim's TURN on port 443 over `protocol`. */
  const throughTurnOn443 = (pair, me, protocol) => {
    const l = pair.local;
    assert.equal(l.type, 'relay', `page ${me}: only TURN on 443 gets through here: ${JSON.stringify(pair)}`);
    assert.equal(l.relayProtocol, protocol, `page ${me}: TURN over ${protocol} expected: ${JSON.stringify(pair)}`);
    assert.match(l.url ?? '', /:443\?transport=/, `page ${me}: TURN on port 443 expected: ${JSON.stringify(pair)}`);
  };

  test('TCP and UDP 443 open: media through TURN over UDP on 443', { timeout: 120_000 }, async (t) => {
    await meet(t, 'p443-udp', ['tcp', 'udp'], [], (pair, me) => throughTurnOn443(pair, me, 'udp'));
  });

  test('only TCP 443 open: media through TURN over TCP on 443', { timeout: 120_000 }, async (t) => {
    await meet(t, 'p443-tcp', ['tcp'], [], (pair, me) => throughTurnOn443(pair, me, 'tcp'));
  });
});
