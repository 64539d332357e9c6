"""The people in the Python SDK suites: a participant on LiveKit's Python SDK
behind its own proxy, and what it means for one to see and hear another."""

from __future__ import annotations

import asyncio
import datetime
import time

from harness import API_KEY, API_SECRET, CutProxy, Moim, log
from livekit import api, rtc
from media import AudioSink, Publisher, VideoSink

ALICE = ("alice", (200, 40, 40), 440)  # identity, colour (RGB), tone (Hz)
BOB = ("bob", (40, 60, 200), 660)
COLOUR_TOLERANCE = 40  # per channel, after VP8 and two colour-space conversions
SILENCE_RMS = 0.02  # the tone is sent at 0.3 of full scale (RMS 0.21)


class Person:
    """One participant: a Room behind its own proxy, what it publishes and receives."""

    def __init__(
        self, moim: Moim, identity: str, rgb, tone_hz: int, proxy: CutProxy | None = None
    ) -> None:
        self.identity = identity
        self.own_proxy = proxy is None  # a shared proxy is closed by whoever made it
        self.proxy = proxy or CutProxy(moim.port)
        self.room = rtc.Room()
        self.publisher = Publisher(rgb, tone_hz)
        self.video: dict[str, VideoSink] = {}
        self.audio: dict[str, AudioSink] = {}
        self._retired: list[VideoSink | AudioSink] = []  # sinks of tracks since replaced
        self.data: asyncio.Queue[rtc.DataPacket] = asyncio.Queue()
        self.muted: list[tuple[str, str]] = []  # (participant identity, track sid)
        self.left: list[str] = []
        self.speakers: list[str] = []  # identities, as the last active_speakers_changed said
        self.quality: dict[str, int] = {}  # identity -> rtc.ConnectionQuality, as last told
        self.disconnect_reason: int | None = None
        self.reconnected_at: float | None = None
        room = self.room
        room.on("track_subscribed", self._on_track)
        room.on("data_received", self.data.put_nowait)
        room.on("track_muted", lambda p, pub: self.muted.append((p.identity, pub.sid)))
        room.on("participant_disconnected", lambda p: self.left.append(p.identity))
        room.on("disconnected", self._on_disconnected)
        room.on("reconnected", self._on_reconnected)
        room.on("active_speakers_changed", self._on_speakers)
        room.on(
            "connection_quality_changed",
            lambda p, q: self.quality.__setitem__(p.identity, q),
        )

    def _on_speakers(self, speakers) -> None:
        self.speakers = [p.identity for p in speakers]

    def _on_track(self, track, _pub, participant) -> None:
        if track.kind == rtc.TrackKind.KIND_VIDEO:
            self._replace(self.video, participant.identity, VideoSink(track))
        elif track.kind == rtc.TrackKind.KIND_AUDIO:
            self._replace(self.audio, participant.identity, AudioSink(track))

    def _replace(self, sinks: dict, identity: str, sink: VideoSink | AudioSink) -> None:
        if old := sinks.get(identity):
            self._retired.append(old)
        sinks[identity] = sink

    def _on_disconnected(self, reason) -> None:
        self.disconnect_reason = reason

    def _on_reconnected(self) -> None:
        self.reconnected_at = time.monotonic()

    async def join(
        self,
        room_name: str,
        single_pc: bool,
        dynacast: bool = False,
        ttl: datetime.timedelta | None = None,
    ) -> None:
        if not self.proxy.port:  # a shared proxy is started once
            await self.proxy.start()
        token = (
            api.AccessToken(API_KEY, API_SECRET)
            .with_identity(self.identity)
            .with_grants(api.VideoGrants(room_join=True, room=room_name))
        )
        if ttl is not None:
            token = token.with_ttl(ttl)
        self.token = token.to_jwt()
        options = rtc.RoomOptions(
            auto_subscribe=True, single_peer_connection=single_pc, dynacast=dynacast
        )
        await asyncio.wait_for(self.room.connect(self.proxy.ws_url, self.token, options), 20)

    @property
    def sid(self) -> str:
        return self.room.local_participant.sid

    def track_sid(self, kind) -> str:
        pubs = self.room.local_participant.track_publications.values()
        return next(p.sid for p in pubs if p.kind == kind)

    def track_sids(self) -> set[str]:
        return set(self.room.local_participant.track_publications)

    def receives_current_tracks_of(self, other: "Person") -> bool:
        """Whether this person's video and audio sinks read the tracks `other`
        publishes now (after a republish the old sinks read tracks that ended)."""
        video, audio = self.video.get(other.identity), self.audio.get(other.identity)
        return (
            video is not None
            and audio is not None
            and video.sid == other.track_sid(rtc.TrackKind.KIND_VIDEO)
            and audio.sid == other.track_sid(rtc.TrackKind.KIND_AUDIO)
        )

    async def close(self) -> None:
        await self.publisher.stop()
        for sink in [*self._retired, *self.video.values(), *self.audio.values()]:
            await sink.close()
        if self.room.isconnected():
            await asyncio.wait_for(self.room.disconnect(), 10)
        if self.own_proxy:
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


async def close_all(*people: Person) -> None:
    """Closes everyone; a failure is logged, never raised, so that cleanup
    cannot hide the test's own failure."""
    for p in people:
        try:
            await p.close()
        except Exception as e:
            log(f"cleanup of {p.identity}: {e!r}")
