"""A rolling deploy on LiveKit's Python SDK: alice and bob talk through a load
balancer that health-checks two moim servers. The first gets SIGTERM: it
fails its health check, lets the call go on while it drains, then tells both
SDKs to reconnect (Leave, SERVER_SHUTDOWN) and exits 0. The SDKs join again
through the same URL, land on the second server, publish their camera and
microphone again (the second server gives the tracks new sids), subscribe to
each other's new tracks, and see and hear each other.

Run on the SDK's single-PeerConnection path (/rtc/v1) and its
two-PeerConnection path (/rtc).
"""

from __future__ import annotations

import asyncio
import time

import pytest
from harness import BalancingProxy, Moim, log
from media import wait_until
from people import ALICE, BOB, Person, close_all, sees_and_hears

DRAIN_S = 3
BACK_BOUND_S = 30.0  # generous; the measured time is printed


async def scenario(first: Moim, second: Moim, single_pc: bool) -> None:
    label = "single-pc" if single_pc else "dual-pc"
    balancer = BalancingProxy([first, second])
    await balancer.start()
    alice = Person(first, *ALICE, proxy=balancer)
    bob = Person(first, *BOB, proxy=balancer)
    first_tracks: dict[str, set[str]] = {}
    try:
        for p in (alice, bob):
            await p.join("deploy", single_pc=single_pc)
        for p in (alice, bob):
            await p.publisher.publish(p.room.local_participant)
        for who, other in ((alice, bob), (bob, alice)):
            await wait_until(
                lambda: other.identity in who.video and other.identity in who.audio,
                20, f"{who.identity} to subscribe to {other.identity}'s media",
            )  # fmt: skip
        await sees_and_hears(bob, alice, ALICE[1], ALICE[2], f"{label}, before the deploy")
        assert set(balancer.routed) == {first.name}, balancer.routed
        first_tracks.update({p.identity: p.track_sids() for p in (alice, bob)})

        assert first.proc is not None
        first.proc.terminate()
        sigterm_at = time.monotonic()
        await wait_until(lambda: not first.healthy(), 5, "the first server to fail its health check")
        # The call goes on while the first server drains.
        await bob.video["alice"].fresh_frames(10, timeout=DRAIN_S)
        log(f"{label}, during the drain: bob still decodes alice's video "
            f"{time.monotonic() - sigterm_at:.2f} s after SIGTERM")  # fmt: skip

        code = await asyncio.to_thread(first.proc.wait, 20)
        assert code == 0, f"the first server exits {code}"
        log(f"{label}: the first server exited 0 {time.monotonic() - sigterm_at:.2f} s after SIGTERM")

        await wait_until(
            lambda: balancer.routed.count(second.name) >= 2, BACK_BOUND_S,
            "both SDKs to join the second server",
        )  # fmt: skip
        for who, other in ((alice, bob), (bob, alice)):
            await wait_until(
                lambda: other.identity in who.room.remote_participants, BACK_BOUND_S,
                f"{who.identity} to see {other.identity} on the second server",
            )  # fmt: skip
        # A full reconnect publishes every local track again, under new sids,
        # and then the SDK says it has reconnected.
        for p in (alice, bob):
            await wait_until(
                lambda: len(p.track_sids()) == 2 and not p.track_sids() & first_tracks[p.identity],
                BACK_BOUND_S, f"{p.identity}'s SDK to publish its tracks on the second server",
            )  # fmt: skip
            await wait_until(
                lambda: p.reconnected_at is not None, BACK_BOUND_S,
                f"{p.identity}'s SDK to report reconnected",
            )  # fmt: skip
        # The old subscriptions ended with the first server; each subscribes to the new tracks.
        for who, other in ((alice, bob), (bob, alice)):
            await wait_until(
                lambda: who.receives_current_tracks_of(other), BACK_BOUND_S,
                f"{who.identity} to subscribe to {other.identity}'s tracks on the second server",
            )  # fmt: skip
        await sees_and_hears(bob, alice, ALICE[1], ALICE[2], f"{label}, on the second server")
        await sees_and_hears(alice, bob, BOB[1], BOB[2], f"{label}, on the second server")
        reconnected = max(p.reconnected_at for p in (alice, bob))
        # When the second of the two new video tracks delivered its first frame.
        video_back = max(bob.video["alice"].first_at, alice.video["bob"].first_at)
        log(f"{label}: both SDKs reported reconnected {reconnected - sigterm_at:.2f} s after "
            f"SIGTERM; video flowed both ways again {video_back - sigterm_at:.2f} s after SIGTERM; "
            f"colour and tone checked by {time.monotonic() - sigterm_at:.2f} s; "
            f"balancer routed {balancer.routed}")  # fmt: skip
        sent = [line for line in first.log_text().splitlines() if "SERVER_SHUTDOWN" in line]
        assert sent, "the first server says it sent everyone a Leave"
    except BaseException:
        for who in (alice, bob):
            remote = {
                i: [(t.kind, t.sid, t.subscribed) for t in rp.track_publications.values()]
                for i, rp in who.room.remote_participants.items()
            }
            log(f"{who.identity}: connected={who.room.isconnected()} "
                f"local={sorted(who.track_sids())} (on the first server: "
                f"{sorted(first_tracks.get(who.identity, ()))}) remote={remote}")  # fmt: skip
        print(first.log_tail(60), flush=True)
        print(second.log_tail(60), flush=True)
        raise
    finally:
        await close_all(alice, bob)
        await balancer.close()


@pytest.mark.parametrize("single_pc", [True, False], ids=["single-pc", "dual-pc"])
def test_a_call_moves_to_another_server_when_the_first_shuts_down(single_pc):
    first = Moim("moim-python-first", {"MOIM_DRAIN_TIMEOUT_SECS": str(DRAIN_S)}).start()
    second = Moim("moim-python-second").start()
    try:
        asyncio.run(asyncio.wait_for(scenario(first, second, single_pc), timeout=150))
    finally:
        first.stop()
        second.stop()
