"""Dynacast with LiveKit's Python SDK (its Rust core and libwebrtc): alice
publishes with `dynacast=True`; while bob watches, her encoder sends video;
when bob unsubscribes, moim tells her nobody needs the track and she stops
sending it; when bob subscribes again, it comes back. On both signalling paths.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from harness import Moim, log
from livekit import rtc
from media import wait_until
from people import ALICE, BOB, Person, close_all

LOWER_AFTER_S = 3.0  # moim's delay before it tells a publisher to send less


@pytest.fixture(scope="module")
def moim():
    server = Moim()
    server.start()
    yield server
    server.stop()


async def video_bytes_sent(p: Person) -> int:
    stats = await p.room.get_rtc_stats()
    return sum(
        s.outbound_rtp.sent.bytes_sent
        for s in stats.publisher_stats
        if s.HasField("outbound_rtp") and s.outbound_rtp.stream.kind == "video"
    )


async def steady(p: Person, seconds: float) -> bool:
    """Whether no video byte left `p` for `seconds`."""
    before = await video_bytes_sent(p)
    await asyncio.sleep(seconds)
    return await video_bytes_sent(p) == before


async def scenario(moim: Moim, single_pc: bool) -> None:
    label = "single-pc" if single_pc else "dual-pc"
    alice, bob = Person(moim, *ALICE), Person(moim, *BOB)
    try:
        await alice.join(f"dynacast-{label}", single_pc, dynacast=True)
        await bob.join(f"dynacast-{label}", single_pc)
        await alice.publisher.publish(alice.room.local_participant)
        await wait_until(lambda: "alice" in bob.video, 20, "bob to subscribe to alice's video")
        await bob.video["alice"].fresh_frames(10, timeout=20)
        b0 = await video_bytes_sent(alice)
        await asyncio.sleep(1)
        assert await video_bytes_sent(alice) > b0, "alice sends video while bob watches"

        pub = next(
            p
            for p in bob.room.remote_participants["alice"].track_publications.values()
            if p.kind == rtc.TrackKind.KIND_VIDEO
        )
        pub.set_subscribed(False)
        stopped = time.monotonic()
        deadline = stopped + LOWER_AFTER_S + 10
        while not await steady(alice, 2.0):
            assert time.monotonic() < deadline, "alice kept sending video nobody watches"
        paused_after = time.monotonic() - 2.0 - stopped

        pub.set_subscribed(True)
        resumed = time.monotonic()
        await wait_until(lambda: "alice" in bob.video, 10, "bob to subscribe again")
        b1 = await video_bytes_sent(alice)
        deadline = resumed + 10
        # A solid colour costs the encoder a few hundred bytes a second: any
        # growth is the encoder running again.
        while await video_bytes_sent(alice) <= b1:
            assert time.monotonic() < deadline, "alice's video did not come back"
            await asyncio.sleep(0.1)
        log(
            f"{label}: alice's video stopped ~{paused_after:.1f} s after bob unsubscribed, "
            f"and flowed again {time.monotonic() - resumed:.2f} s after he subscribed"
        )
    except BaseException:
        print(moim.log_tail(60), flush=True)
        raise
    finally:
        await close_all(alice, bob)


@pytest.mark.parametrize("single_pc", [True, False], ids=["single-pc", "dual-pc"])
def test_a_publisher_stops_sending_video_nobody_watches(moim, single_pc):
    asyncio.run(scenario(moim, single_pc))
