"""VP9 and AV1 SVC with LiveKit's Python SDK (its Rust core and libwebrtc), the
second client after Chromium (tests/browser/svc.mjs): alice publishes one
stream with three spatial and three temporal layers (L3T3_KEY) of a 1280x720
camera;
bob asks for the low quality and decodes about a quarter of the width, then
for the high quality and decodes the full width again. moim picks the layers
out of the one stream for bob; alice's encoder is not asked to change. On
both signalling paths.
"""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest
from harness import Moim, log
from livekit import rtc
from media import wait_until
from people import ALICE, BOB, Person, close_all

WIDTH, HEIGHT, FPS = 1280, 720, 15


@pytest.fixture(scope="module")
def moim():
    server = Moim("moim-python-svc")
    server.start()
    yield server
    server.stop()


class SvcCamera:
    """A 1280x720 camera of one colour, published with L3T3_KEY."""

    def __init__(self, rgb: tuple[int, int, int], codec: int) -> None:
        self.codec = codec
        self.source = rtc.VideoSource(WIDTH, HEIGHT)
        pixel = np.array([*rgb, 255], dtype=np.uint8)
        data = np.tile(pixel, WIDTH * HEIGHT).tobytes()
        self.frame = rtc.VideoFrame(WIDTH, HEIGHT, rtc.VideoBufferType.RGBA, data)
        self.task: asyncio.Task | None = None

    async def publish(self, participant: rtc.LocalParticipant) -> None:
        track = rtc.LocalVideoTrack.create_video_track("camera", self.source)
        self.task = asyncio.create_task(self._loop())
        options = rtc.TrackPublishOptions(
            source=rtc.TrackSource.SOURCE_CAMERA,
            video_codec=self.codec,
            scalability_mode="L3T3_KEY",
            # Enough for all three layers of a flat picture, so that the
            # encoder keeps the top one on.
            video_encoding=rtc.VideoEncoding(max_bitrate=1_500_000, max_framerate=FPS),
        )
        await participant.publish_track(track, options)

    async def _loop(self) -> None:
        while True:
            self.source.capture_frame(self.frame)
            await asyncio.sleep(1 / FPS)

    async def stop(self) -> None:
        if self.task:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)


async def width_settles(bob: Person, want, timeout: float, what: str) -> int:
    """Waits until the width of bob's newest decoded frames of alice meets `want`
    for 10 frames in a row; returns it."""
    sink = bob.video["alice"]
    deadline = time.monotonic() + timeout
    run = 0
    while time.monotonic() < deadline:
        await sink.fresh_frames(1, timeout=max(0.1, deadline - time.monotonic()))
        w, _ = sink.size()
        run = run + 1 if want(w) else 0
        if run >= 10:
            return w
    raise AssertionError(f"{what}: bob decodes {sink.size()[0]} wide after {timeout:.0f} s")


async def scenario(moim: Moim, single_pc: bool, codec: str) -> None:
    label = f"{codec} {'single-pc' if single_pc else 'dual-pc'}"
    alice, bob = Person(moim, *ALICE), Person(moim, *BOB)
    camera = SvcCamera(ALICE[1], rtc.VideoCodec.Value(codec))
    try:
        room = f"svc-{codec}-{int(single_pc)}"
        await alice.join(room, single_pc)
        await bob.join(room, single_pc)
        await camera.publish(alice.room.local_participant)
        await wait_until(lambda: "alice" in bob.video, 20, "bob to subscribe to alice's video")
        pub = next(
            p
            for p in bob.room.remote_participants["alice"].track_publications.values()
            if p.kind == rtc.TrackKind.KIND_VIDEO
        )
        want = f"video/{codec}".lower()
        assert pub.mime_type.lower() == want, f"alice's track is {pub.mime_type}, not {codec}"

        pub.set_video_quality(rtc.VideoQuality.VIDEO_QUALITY_HIGH)
        # The encoder turns its top layer on once its estimate allows it.
        high = await width_settles(bob, lambda w: w >= WIDTH * 0.9, 30, "asked for high")
        pub.set_video_quality(rtc.VideoQuality.VIDEO_QUALITY_LOW)
        low = await width_settles(bob, lambda w: w <= WIDTH // 3, 15, "asked for low")
        pub.set_video_quality(rtc.VideoQuality.VIDEO_QUALITY_HIGH)
        again = await width_settles(bob, lambda w: w >= WIDTH * 0.9, 15, "asked for high again")
        log(
            f"{label}: L3T3_KEY {WIDTH}x{HEIGHT}; bob decodes {high} wide at high, "
            f"{low} at low, {again} at high again"
        )
    except BaseException:
        print(moim.log_tail(60), flush=True)
        raise
    finally:
        await camera.stop()
        await close_all(alice, bob)


@pytest.mark.parametrize("codec", ["VP9", "AV1"])
@pytest.mark.parametrize("single_pc", [True, False], ids=["single-pc", "dual-pc"])
def test_a_subscriber_picks_spatial_layers_of_one_stream(moim, single_pc, codec):
    asyncio.run(scenario(moim, single_pc, codec))
