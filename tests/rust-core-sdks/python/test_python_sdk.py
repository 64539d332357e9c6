"""Two people on LiveKit's Python SDK (PyPI `livekit`, whose core is LiveKit's
Rust SDK and libwebrtc) meet in a moim room, see and hear each other, send
each other a message, survive a dropped signalling connection, and are muted
and removed by an operator through `livekit-api`'s RoomService.

Run once on the SDK's single-PeerConnection path (/rtc/v1, its default) and
once on its two-PeerConnection path (/rtc).
"""

from __future__ import annotations

import asyncio
import time

import pytest
from harness import API_KEY, API_SECRET, CutProxy, Moim, log
from livekit import api, rtc
from media import AudioSink, Publisher, VideoSink, wait_until

ALICE = ("alice", (200, 40, 40), 440)  # identity, colour (RGB), tone (Hz)
BOB = ("bob", (40, 60, 200), 660)
COLOUR_TOLERANCE = 40  # per channel, after VP8 and two colour-space conversions
SILENCE_RMS = 0.02  # the tone is sent at 0.3 of full scale (RMS 0.21)
RECONNECT_BOUND_S = 15.0  # generous: the goal is 3 s, the measured time is printed


@pytest.fixture(scope="module")
def moim():
    server = Moim()
    server.start()
    yield server
    server.stop()


class Person:
    """One participant: a Room behind its own proxy, what it publishes and receives."""

    def __init__(self, moim: Moim, identity: str, rgb, tone_hz: int) -> None:
        self.identity = identity
        self.proxy = CutProxy(moim.port)
        self.room = rtc.Room()
        self.publisher = Publisher(rgb, tone_hz)
        self.video: dict[str, VideoSink] = {}
        self.audio: dict[str, AudioSink] = {}
        self.data: asyncio.Queue[rtc.DataPacket] = asyncio.Queue()
        self.muted: list[tuple[str, str]] = []  # (participant identity, track sid)
        self.left: list[str] = []
        self.disconnect_reason: int | None = None
        self.reconnected_at: float | None = None
        room = self.room
        room.on("track_subscribed", self._on_track)
        room.on("data_received", self.data.put_nowait)
        room.on("track_muted", lambda p, pub: self.muted.append((p.identity, pub.sid)))
        room.on("participant_disconnected", lambda p: self.left.append(p.identity))
        room.on("disconnected", self._on_disconnected)
        room.on("reconnected", self._on_reconnected)

    def _on_track(self, track, _pub, participant) -> None:
        if track.kind == rtc.TrackKind.KIND_VIDEO:
            self.video[participant.identity] = VideoSink(track)
        elif track.kind == rtc.TrackKind.KIND_AUDIO:
            self.audio[participant.identity] = AudioSink(track)

    def _on_disconnected(self, reason) -> None:
        self.disconnect_reason = reason

    def _on_reconnected(self) -> None:
        self.reconnected_at = time.monotonic()

    async def join(self, room_name: str, single_pc: bool) -> None:
        await self.proxy.start()
        token = (
            api.AccessToken(API_KEY, API_SECRET)
            .with_identity(self.identity)
            .with_grants(api.VideoGrants(room_join=True, room=room_name))
            .to_jwt()
        )
        options = rtc.RoomOptions(auto_subscribe=True, single_peer_connection=single_pc)
        await asyncio.wait_for(self.room.connect(self.proxy.ws_url, token, options), 20)

    @property
    def sid(self) -> str:
        return self.room.local_participant.sid

    def track_sid(self, kind) -> str:
        pubs = self.room.local_participant.track_publications.values()
        return next(p.sid for p in pubs if p.kind == kind)

    async def close(self) -> None:
        await self.publisher.stop()
        for sink in [*self.video.values(), *self.audio.values()]:
            await sink.close()
        if self.room.isconnected():
            await asyncio.wait_for(self.room.disconnect(), 10)
        await self.proxy.close()


async def sees_and_hears(who: Person, other: Person, rgb, tone_hz: int, label: str) -> None:
    video = who.video[other.identity]
    audio = who.audio[other.identity]
    await video.fresh_frames(10, timeout=15)
    r, g, b = video.centre_rgb()
    w, h = video.size()
    log(f"{label}: {who.identity} decodes {other.identity}'s video {w}x{h}, "
        f"centre colour ({r:.0f},{g:.0f},{b:.0f}), sent {rgb}")  # fmt: skip
    for got, want in zip((r, g, b), rgb):
        assert abs(got - want) <= COLOUR_TOLERANCE, f"{who.identity} sees colour {(r, g, b)}, not {rgb}"
    await audio.fresh_audio(0.6, timeout=15)
    rms, peak = audio.analyse(0.5)
    log(f"{label}: {who.identity} hears {other.identity}: RMS {rms:.3f} of full scale, "
        f"strongest frequency {peak:.0f} Hz, sent {tone_hz} Hz")  # fmt: skip
    assert rms > SILENCE_RMS, f"{who.identity} hears near silence from {other.identity} (RMS {rms:.4f})"
    assert abs(peak - tone_hz) <= 20, f"{who.identity} hears {peak:.0f} Hz, not {tone_hz} Hz"


async def listed(lk: api.LiveKitAPI, room: str) -> dict[str, api.ParticipantInfo]:
    res = await lk.room.list_participants(api.ListParticipantsRequest(room=room))
    return {p.identity: p for p in res.participants}


async def scenario(moim: Moim, single_pc: bool, path: str) -> None:
    label = "single-pc" if single_pc else "dual-pc"
    room_name = f"python-{label}"
    alice, bob = Person(moim, *ALICE), Person(moim, *BOB)
    lk = api.LiveKitAPI(moim.http_url, API_KEY, API_SECRET)
    try:
        # Join, on the path the options ask for.
        for p in (alice, bob):
            await p.join(room_name, single_pc)
            assert p.proxy.paths() == [path], f"{p.identity} signalled on {p.proxy.paths()}"
        log(f"{label}: alice ({alice.sid}) and bob ({bob.sid}) joined over {path}")
        await wait_until(lambda: "bob" in alice.room.remote_participants, 10, "alice to see bob")
        await wait_until(lambda: "alice" in bob.room.remote_participants, 10, "bob to see alice")

        # Publish a colour and a tone each; each decodes the other's.
        for p in (alice, bob):
            await p.publisher.publish(p.room.local_participant)
        for who, other in ((alice, bob), (bob, alice)):
            await wait_until(
                lambda: other.identity in who.video and other.identity in who.audio,
                20, f"{who.identity} to subscribe to {other.identity}'s video and audio",
            )  # fmt: skip
        await sees_and_hears(bob, alice, ALICE[1], ALICE[2], label)
        await sees_and_hears(alice, bob, BOB[1], BOB[2], label)

        # Reliable data with a topic, both ways.
        for sender, receiver in ((alice, bob), (bob, alice)):
            payload = f"hello from {sender.identity}".encode()
            await sender.room.local_participant.publish_data(payload, reliable=True, topic="chat")
            pkt = await asyncio.wait_for(receiver.data.get(), 10)
            assert (pkt.data, pkt.topic, pkt.participant.identity) == (payload, "chat", sender.identity)
            assert pkt.kind == rtc.DataPacketKind.KIND_RELIABLE
            log(f"{label}: {receiver.identity} got {payload!r} on topic 'chat' from {sender.identity}")

        # The operator sees both, with their tracks.
        people = await listed(lk, room_name)
        assert set(people) == {"alice", "bob"}, f"RoomService lists {sorted(people)}"
        for p in (alice, bob):
            assert people[p.identity].sid == p.sid
            assert len(people[p.identity].tracks) == 2, people[p.identity].tracks
        log(f"{label}: RoomService lists alice and bob with 2 tracks each")

        # Bob's signalling connection drops; the SDK resumes and media flows again.
        cut_at = time.monotonic()
        assert bob.proxy.cut() == 1, "bob should have exactly one signalling connection open"
        await wait_until(lambda: bob.reconnected_at, RECONNECT_BOUND_S, "bob's SDK to reconnect")
        await bob.video["alice"].fresh_frames(5, timeout=RECONNECT_BOUND_S)
        await alice.video["bob"].fresh_frames(5, timeout=RECONNECT_BOUND_S)
        media_at = time.monotonic()
        log(f"{label}: reconnect: signal back after {bob.reconnected_at - cut_at:.2f} s, "
            f"video both ways after {media_at - cut_at:.2f} s; longest video gap at bob "
            f"{bob.video['alice'].longest_gap(cut_at):.2f} s, at alice "
            f"{alice.video['bob'].longest_gap(cut_at):.2f} s; resumed over {bob.proxy.paths()[1:]}")  # fmt: skip
        assert media_at - cut_at < RECONNECT_BOUND_S
        assert bob.proxy.paths()[1:] == [path], f"bob resumed over {bob.proxy.paths()[1:]}"
        assert bob.room.remote_participants["alice"].sid == alice.sid
        assert alice.room.remote_participants["bob"].sid == bob.sid
        people = await listed(lk, room_name)
        assert people["bob"].sid == bob.sid, "bob's resume gave him a new participant sid"
        await sees_and_hears(bob, alice, ALICE[1], ALICE[2], label + " after reconnect")
        await sees_and_hears(alice, bob, BOB[1], BOB[2], label + " after reconnect")

        # The operator mutes alice's microphone; both of them see it.
        mic = alice.track_sid(rtc.TrackKind.KIND_AUDIO)
        await lk.room.mute_published_track(
            api.MuteRoomTrackRequest(room=room_name, identity="alice", track_sid=mic, muted=True)
        )
        await wait_until(lambda: ("alice", mic) in alice.muted, 10, "alice to see her mic muted")
        await wait_until(lambda: ("alice", mic) in bob.muted, 10, "bob to see alice's mic muted")
        people = await listed(lk, room_name)
        assert next(t for t in people["alice"].tracks if t.sid == mic).muted
        log(f"{label}: RoomService muted alice's mic {mic}; alice and bob both saw track_muted")

        # The operator removes bob; bob is told why, alice sees him leave.
        await lk.room.remove_participant(api.RoomParticipantIdentity(room=room_name, identity="bob"))
        await wait_until(lambda: bob.disconnect_reason is not None, 10, "bob to be disconnected")
        assert bob.disconnect_reason == rtc.DisconnectReason.PARTICIPANT_REMOVED, bob.disconnect_reason
        await wait_until(lambda: "bob" in alice.left, 10, "alice to see bob leave")
        assert set(await listed(lk, room_name)) == {"alice"}
        log(f"{label}: RoomService removed bob; bob got PARTICIPANT_REMOVED, alice saw him leave")

        # Every subscription was usable: moim told no one a codec was refused.
        refused = [line for line in moim.log_text().splitlines() if "cannot receive" in line]
        assert not refused, f"moim refused subscriptions it can serve: {refused[:2]}"
    except BaseException:
        print(moim.log_tail(80), flush=True)
        raise
    finally:
        for p in (alice, bob):
            try:
                await p.close()
            except Exception as e:  # cleanup must not hide the test's own failure
                log(f"cleanup of {p.identity}: {e!r}")
        await lk.aclose()


@pytest.mark.parametrize(
    "single_pc,path", [(True, "/rtc/v1"), (False, "/rtc")], ids=["single-pc", "dual-pc"]
)
def test_two_people_meet_talk_reconnect_and_are_managed(moim, single_pc, path):
    asyncio.run(asyncio.wait_for(scenario(moim, single_pc, path), timeout=180))
