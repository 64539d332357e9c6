// Two people on LiveKit's Node real-time SDK (@livekit/rtc-node, whose core is LiveKit's
// Rust SDK and libwebrtc) meet in a moim room, see and hear each other, send each other
// a message, survive a dropped signalling connection, and are muted and removed by an
// operator through livekit-server-sdk's RoomServiceClient.
//
// Run once on the SDK's single-PeerConnection path (/rtc/v1, its default) and once on
// its two-PeerConnection path (/rtc, `singlePeerConnection: false`, a field of the FFI's
// RoomOptions that Room.connect passes through).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';

import { DataPacketKind, DisconnectReason, Room, RoomEvent, TrackKind, dispose } from '@livekit/rtc-node';
import { AccessToken, RoomServiceClient } from 'livekit-server-sdk';

import { API_KEY, API_SECRET, CutProxy, Moim, bounded, log, waitUntil } from './harness.mjs';
import { AudioSink, Publisher, VideoSink } from './media.mjs';

const ALICE = { identity: 'alice', rgb: [200, 40, 40], toneHz: 440 };
const BOB = { identity: 'bob', rgb: [40, 60, 200], toneHz: 660 };
const COLOUR_TOLERANCE = 40; // per channel, after VP8 and two colour-space conversions
const SILENCE_RMS = 0.02; // the tone is sent at 0.3 of full scale (RMS 0.21)
const RECONNECT_BOUND_MS = 15_000; // generous: the goal is 3 s, the measured time is printed

const moim = new Moim();
before(() => moim.start());
after(async () => {
  await moim.stop();
  dispose();
});

/** One participant: a Room behind its own proxy, what it publishes and receives. */
class Person {
  constructor({ identity, rgb, toneHz }) {
    this.identity = identity;
    this.rgb = rgb;
    this.toneHz = toneHz;
    this.proxy = new CutProxy(moim.port);
    this.room = new Room();
    this.publisher = new Publisher(rgb, toneHz);
    this.video = new Map();
    this.audio = new Map();
    this.data = [];
    this.muted = [];
    this.left = [];
    this.disconnectReason = undefined;
    this.reconnectedAt = undefined;
    this.room
      .on(RoomEvent.TrackSubscribed, (track, _pub, participant) => {
        if (track.kind === TrackKind.KIND_VIDEO) this.video.set(participant.identity, new VideoSink(track));
        if (track.kind === TrackKind.KIND_AUDIO) this.audio.set(participant.identity, new AudioSink(track));
      })
      .on(RoomEvent.DataReceived, (payload, participant, kind, topic) =>
        this.data.push({ payload: Buffer.from(payload), identity: participant?.identity, kind, topic }),
      )
      .on(RoomEvent.TrackMuted, (pub, participant) => this.muted.push(`${participant.identity}/${pub.sid}`))
      .on(RoomEvent.ParticipantDisconnected, (p) => this.left.push(p.identity))
      .on(RoomEvent.Disconnected, (reason) => (this.disconnectReason = reason))
      .on(RoomEvent.Reconnected, () => (this.reconnectedAt = Date.now()));
  }

  async join(roomName, singlePeerConnection) {
    await this.proxy.start();
    const at = new AccessToken(API_KEY, API_SECRET, { identity: this.identity });
    at.addGrant({ roomJoin: true, room: roomName });
    await this.room.connect(this.proxy.wsUrl, await at.toJwt(), { autoSubscribe: true, singlePeerConnection });
  }

  get sid() {
    return this.room.localParticipant.sid;
  }

  trackSid(kind) {
    return [...this.room.localParticipant.trackPublications.values()].find((p) => p.kind === kind).sid;
  }

  async close() {
    const who = this.identity;
    await bounded(this.publisher.stop(), 5000, `${who}'s generators`);
    for (const sink of [...this.video.values(), ...this.audio.values()]) await bounded(sink.close(), 5000, `${who}'s streams`);
    if (this.room.isConnected) await bounded(this.room.disconnect(), 10_000, `${who}'s disconnect`);
    await bounded(this.proxy.close(), 5000, `${who}'s proxy`);
  }
}

/** Rejects when `promise` takes longer than `ms`: an SDK call that never returns fails the test. */
function withTimeout(promise, ms, what) {
  let timer;
  const late = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms / 1000} s waiting for ${what}`)), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

async function seesAndHears(who, other, label) {
  const video = who.video.get(other.identity);
  const audio = who.audio.get(other.identity);
  await video.freshFrames(10, 15_000);
  const { rgb, width, height } = video.centre();
  log(`${label}: ${who.identity} decodes ${other.identity}'s video ${width}x${height}, centre colour ` +
    `(${rgb.map((c) => c.toFixed(0))}), sent (${other.rgb})`);
  rgb.forEach((c, i) => assert.ok(Math.abs(c - other.rgb[i]) <= COLOUR_TOLERANCE,
    `${who.identity} sees colour (${rgb.map((v) => v.toFixed(0))}), not (${other.rgb})`));
  await audio.freshAudio(600, 15_000);
  const { rms, peakHz } = audio.analyse(500);
  log(`${label}: ${who.identity} hears ${other.identity}: RMS ${rms.toFixed(3)} of full scale, ` +
    `strongest frequency ${peakHz} Hz, sent ${other.toneHz} Hz`);
  assert.ok(rms > SILENCE_RMS, `${who.identity} hears near silence from ${other.identity} (RMS ${rms})`);
  assert.ok(Math.abs(peakHz - other.toneHz) <= 20, `${who.identity} hears ${peakHz} Hz, not ${other.toneHz} Hz`);
}

async function listed(svc, roomName) {
  return Object.fromEntries((await svc.listParticipants(roomName)).map((p) => [p.identity, p]));
}

async function scenario(singlePeerConnection, path) {
  const label = singlePeerConnection ? 'single-pc' : 'dual-pc';
  const roomName = `node-${label}`;
  const alice = new Person(ALICE);
  const bob = new Person(BOB);
  const svc = new RoomServiceClient(moim.httpUrl, API_KEY, API_SECRET);
  try {
    // Join, on the path the options ask for.
    for (const p of [alice, bob]) {
      await withTimeout(p.join(roomName, singlePeerConnection), 20_000, `${p.identity} to join`);
      assert.deepEqual(p.proxy.paths(), [path], `${p.identity} signalled on ${p.proxy.paths()}`);
    }
    log(`${label}: alice (${alice.sid}) and bob (${bob.sid}) joined over ${path}`);
    await waitUntil(() => alice.room.remoteParticipants.has('bob'), 10_000, 'alice to see bob');
    await waitUntil(() => bob.room.remoteParticipants.has('alice'), 10_000, 'bob to see alice');

    // Publish a colour and a tone each; each decodes the other's.
    for (const p of [alice, bob]) {
      await withTimeout(p.publisher.publish(p.room.localParticipant), 20_000, `${p.identity} to publish`);
    }
    for (const [who, other] of [[alice, bob], [bob, alice]]) {
      await waitUntil(() => who.video.has(other.identity) && who.audio.has(other.identity), 20_000,
        `${who.identity} to subscribe to ${other.identity}'s video and audio`);
    }
    await seesAndHears(bob, alice, label);
    await seesAndHears(alice, bob, label);

    // Reliable data with a topic, both ways.
    for (const [sender, receiver] of [[alice, bob], [bob, alice]]) {
      const payload = Buffer.from(`hello from ${sender.identity}`);
      await withTimeout(sender.room.localParticipant.publishData(payload, { reliable: true, topic: 'chat' }),
        10_000, `${sender.identity} to send data`);
      const got = await waitUntil(() => receiver.data.shift(), 10_000, `${receiver.identity} to get data`);
      assert.deepEqual([got.payload, got.topic, got.identity], [payload, 'chat', sender.identity]);
      assert.equal(got.kind, DataPacketKind.KIND_RELIABLE);
      log(`${label}: ${receiver.identity} got '${payload}' on topic 'chat' from ${sender.identity}`);
    }

    // The operator sees both, with their tracks.
    let people = await listed(svc, roomName);
    assert.deepEqual(Object.keys(people).sort(), ['alice', 'bob']);
    for (const p of [alice, bob]) {
      assert.equal(people[p.identity].sid, p.sid);
      assert.equal(people[p.identity].tracks.length, 2);
    }
    log(`${label}: RoomService lists alice and bob with 2 tracks each`);

    // Bob's signalling connection drops; the SDK resumes and media flows again.
    const cutAt = Date.now();
    assert.equal(bob.proxy.cut(), 1, 'bob should have exactly one signalling connection open');
    await waitUntil(() => bob.reconnectedAt, RECONNECT_BOUND_MS, "bob's SDK to reconnect");
    await bob.video.get('alice').freshFrames(5, RECONNECT_BOUND_MS);
    await alice.video.get('bob').freshFrames(5, RECONNECT_BOUND_MS);
    const mediaAt = Date.now();
    log(`${label}: reconnect: signal back after ${((bob.reconnectedAt - cutAt) / 1000).toFixed(2)} s, ` +
      `video both ways after ${((mediaAt - cutAt) / 1000).toFixed(2)} s; longest video gap at bob ` +
      `${(bob.video.get('alice').longestGap(cutAt) / 1000).toFixed(2)} s, at alice ` +
      `${(alice.video.get('bob').longestGap(cutAt) / 1000).toFixed(2)} s; resumed over ${bob.proxy.paths().slice(1)}`);
    assert.ok(mediaAt - cutAt < RECONNECT_BOUND_MS);
    assert.deepEqual(bob.proxy.paths().slice(1), [path], `bob resumed over ${bob.proxy.paths().slice(1)}`);
    assert.equal(bob.room.remoteParticipants.get('alice').sid, alice.sid);
    assert.equal(alice.room.remoteParticipants.get('bob').sid, bob.sid);
    people = await listed(svc, roomName);
    assert.equal(people.bob.sid, bob.sid, "bob's resume gave him a new participant sid");
    await seesAndHears(bob, alice, `${label} after reconnect`);
    await seesAndHears(alice, bob, `${label} after reconnect`);

    // The operator mutes alice's microphone; both of them see it.
    const mic = alice.trackSid(TrackKind.KIND_AUDIO);
    await svc.mutePublishedTrack(roomName, 'alice', mic, true);
    await waitUntil(() => alice.muted.includes(`alice/${mic}`), 10_000, 'alice to see her mic muted');
    await waitUntil(() => bob.muted.includes(`alice/${mic}`), 10_000, "bob to see alice's mic muted");
    people = await listed(svc, roomName);
    assert.ok(people.alice.tracks.find((t) => t.sid === mic).muted);
    log(`${label}: RoomService muted alice's mic ${mic}; alice and bob both saw trackMuted`);

    // The operator removes bob; bob is told why, alice sees him leave.
    await svc.removeParticipant(roomName, 'bob');
    await waitUntil(() => bob.disconnectReason !== undefined, 10_000, 'bob to be disconnected');
    assert.equal(bob.disconnectReason, DisconnectReason.PARTICIPANT_REMOVED);
    await waitUntil(() => alice.left.includes('bob'), 10_000, 'alice to see bob leave');
    assert.deepEqual(Object.keys(await listed(svc, roomName)), ['alice']);
    log(`${label}: RoomService removed bob; bob got PARTICIPANT_REMOVED, alice saw him leave`);
  } catch (e) {
    log(`${label}: FAILED: ${e.stack ?? e}`);
    console.log(moim.logTail(80));
    throw e;
  } finally {
    // Cleanup is bounded and never hides the test's own failure.
    for (const p of [alice, bob]) await p.close();
  }
}

test('two people on the single-PeerConnection path (/rtc/v1) meet, talk, reconnect and are managed',
  { timeout: 180_000 }, () => scenario(true, '/rtc/v1'));
test('two people on the two-PeerConnection path (/rtc) meet, talk, reconnect and are managed',
  { timeout: 180_000 }, () => scenario(false, '/rtc'));
