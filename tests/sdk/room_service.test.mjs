// livekit-server-sdk (npm) against a real moim: RoomServiceClient calls every
// RoomService method over the JSON path while a participant sits in the room,
// and WebhookReceiver verifies every webhook moim signs. The webhook receiver
// fails its first deliveries; every event must still arrive, in order.
//
// Run: node --experimental-websocket --test   (MOIM_BIN overrides the binary)

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { createServer } from 'node:http';
import { existsSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  AccessToken,
  DataPacket_Kind,
  RoomServiceClient,
  WebhookReceiver,
} from 'livekit-server-sdk';
import { SignalRequest, SignalResponse, TrackType, DisconnectReason } from '@livekit/protocol';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const bin =
  process.env.MOIM_BIN ??
  [
    path.join(process.env.CARGO_TARGET_DIR ?? path.join(root, 'target'), 'debug/moim'),
    path.join(root, 'target/debug/moim'),
  ].find((p) => existsSync(p));

const FAIL_FIRST = 3;

async function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

async function until(what, f, ms = 10000) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

// The webhook receiver: answers 500 to its first deliveries, then records.
const receiver = new WebhookReceiver('devkey', 'secret');
const hooks = { attempts: 0, failed: 0, events: [], bad: [] };
const hookServer = createServer((req, res) => {
  let body = '';
  req.on('data', (c) => (body += c));
  req.on('end', async () => {
    hooks.attempts += 1;
    if (hooks.failed < FAIL_FIRST) {
      hooks.failed += 1;
      res.writeHead(500).end('not yet');
      return;
    }
    try {
      assert.equal(req.headers['content-type'], 'application/webhook+json');
      const ev = await receiver.receive(body, req.headers.authorization);
      hooks.events.push(ev);
      res.writeHead(200).end('ok');
    } catch (e) {
      hooks.bad.push(String(e));
      res.writeHead(401).end(String(e));
    }
  });
});
await new Promise((r) => hookServer.listen(0, '127.0.0.1', r));
const hookUrl = `http://127.0.0.1:${hookServer.address().port}/hook`;

// moim itself.
assert.ok(bin, 'build moim first (cargo build -p moim) or set MOIM_BIN');
const httpPort = await freePort();
const args = ['serve', '--dev', '--port', String(httpPort), '--rtc-udp-port', String(await freePort()), '--rtc-tcp-port', '0'];
if (execFileSync(bin, ['serve', '--help']).toString().includes('--no-turn')) args.push('--no-turn');
const moim = spawn(bin, args, {
  env: { ...process.env, MOIM_WEBHOOK_URLS: hookUrl, MOIM_LOG: 'warn' },
  stdio: ['ignore', 'inherit', 'inherit'],
});
const host = `http://127.0.0.1:${httpPort}`;
await until('moim /healthz', async () => {
  try {
    return (await fetch(`${host}/healthz`)).ok;
  } catch {
    return false;
  }
});
after(() => {
  moim.kill('SIGTERM');
  hookServer.close();
});

/** A signaling-only participant: a WebSocket on /rtc, protobuf frames. */
async function participant(room, identity) {
  const at = new AccessToken('devkey', 'secret', { identity });
  at.addGrant({ roomJoin: true, room });
  const ws = new WebSocket(`ws://127.0.0.1:${httpPort}/rtc?access_token=${await at.toJwt()}&protocol=16`);
  ws.binaryType = 'arraybuffer';
  const got = [];
  ws.onmessage = (m) => got.push(SignalResponse.fromBinary(new Uint8Array(m.data)).message);
  const ping = setInterval(() => {
    if (ws.readyState === 1) ws.send(new SignalRequest({ message: { case: 'ping', value: BigInt(Date.now()) } }).toBinary());
  }, 2000);
  ws.onclose = () => clearInterval(ping);
  await until(`${identity} joins`, () => got.some((m) => m.case === 'join'));
  const send = (message) => ws.send(new SignalRequest({ message }).toBinary());
  const waitFor = (what, f) => until(what, () => got.find((m) => f(m)));
  return { ws, got, send, waitFor, close: () => ws.close() };
}

test('RoomServiceClient calls every method; effects reach the participant', async () => {
  const api = new RoomServiceClient(host, 'devkey', 'secret');

  const created = await api.createRoom({ name: 'sdk', emptyTimeout: 60, maxParticipants: 5, metadata: 'planned' });
  assert.equal(created.name, 'sdk');
  assert.equal(created.metadata, 'planned');
  assert.equal(created.maxParticipants, 5);
  assert.ok(created.sid.startsWith('RM_'));
  assert.deepEqual((await api.listRooms(['sdk'])).map((r) => [r.name, r.numParticipants]), [['sdk', 0]]);

  const carol = await participant('sdk', 'carol');
  assert.equal((await api.listRooms()).find((r) => r.name === 'sdk').numParticipants, 1);
  assert.deepEqual((await api.listParticipants('sdk')).map((p) => p.identity), ['carol']);
  const info = await api.getParticipant('sdk', 'carol');
  assert.ok(info.sid.startsWith('PA_'));

  // A track announced on the signal connection can be muted from the API.
  carol.send({ case: 'addTrack', value: { cid: 'mic', name: 'mic', type: TrackType.AUDIO } });
  const published = await carol.waitFor('trackPublished', (m) => m.case === 'trackPublished');
  const trackSid = published.value.track.sid;
  const muted = await api.mutePublishedTrack('sdk', 'carol', trackSid, true);
  assert.equal(muted.muted, true);
  await carol.waitFor('mute request', (m) => m.case === 'mute' && m.value.sid === trackSid && m.value.muted);

  const updated = await api.updateParticipant('sdk', 'carol', {
    metadata: '{"hand":"up"}',
    name: 'Carol C.',
    attributes: { seat: '3' },
  });
  assert.equal(updated.metadata, '{"hand":"up"}');
  const upd = await carol.waitFor('participant update', (m) =>
    m.case === 'update' && m.value.participants.some((p) => p.metadata === '{"hand":"up"}'),
  );
  const me = upd.value.participants.find((p) => p.identity === 'carol');
  assert.equal(me.name, 'Carol C.');
  assert.equal(me.attributes.seat, '3');

  const room = await api.updateRoomMetadata('sdk', 'agenda');
  assert.equal(room.metadata, 'agenda');
  await carol.waitFor('room update', (m) => m.case === 'roomUpdate' && m.value.room.metadata === 'agenda');

  await api.sendData('sdk', new TextEncoder().encode('hi'), DataPacket_Kind.RELIABLE, {
    destinationIdentities: ['carol'],
    topic: 'ops',
  });
  await api.updateSubscriptions('sdk', 'carol', [], true);

  await api.removeParticipant('sdk', 'carol');
  const leave = await carol.waitFor('leave', (m) => m.case === 'leave');
  assert.equal(leave.value.reason, DisconnectReason.PARTICIPANT_REMOVED);
  await until('carol is gone', async () => (await api.listParticipants('sdk')).length === 0);

  // Errors come back as Twirp errors.
  await assert.rejects(api.getParticipant('sdk', 'carol'), (e) => e.code === 'not_found' || /not_found|not in room/.test(String(e.message)));
  await assert.rejects(
    new RoomServiceClient(host, 'devkey', 'wrong-secret').listRooms(),
    (e) => e.status === 401 || /signature/.test(String(e.message)),
  );

  await api.deleteRoom('sdk');
  await until('room gone', async () => (await api.listRooms()).every((r) => r.name !== 'sdk'));
  carol.close();
});

test('webhooks are signed, retried after failures, and arrive in order per room', async () => {
  const want = ['room_started', 'participant_joined', 'participant_left', 'room_finished'];
  await until('room_finished webhook', () => hooks.events.some((e) => e.event === 'room_finished' && e.room?.name === 'sdk'), 30000);
  assert.deepEqual(hooks.bad, [], 'every delivery verified by WebhookReceiver');
  assert.ok(hooks.failed === FAIL_FIRST && hooks.attempts > hooks.events.length, `retried: ${hooks.attempts} attempts for ${hooks.events.length} events`);
  const sdk = hooks.events.filter((e) => e.room?.name === 'sdk');
  assert.deepEqual(sdk.map((e) => e.event), want);
  assert.equal(sdk[1].participant.identity, 'carol');
  assert.equal(sdk[2].participant.identity, 'carol');
  assert.ok(sdk.every((e) => e.id.startsWith('EV_') && e.createdAt > 0n));
  assert.equal(new Set(sdk.map((e) => e.id)).size, sdk.length, 'each event once');
});
