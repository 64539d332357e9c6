"""A meeting longer than its tokens, on LiveKit's Python SDK (its core is
LiveKit's Rust SDK): Alice joins with a token that expires 10 s later. moim
sends her fresh ones while she is in the room (refresh_token), so when her
signalling connection drops after the first has expired, the SDK resumes
with a fresh token, and the call goes on. The token she joined with is
refused by then, so the fresh one is what let her back.

Run on both signalling paths, as the SDK's two PeerConnection modes use them.
"""

from __future__ import annotations

import asyncio
import datetime
import time
import urllib.error
import urllib.request

import jwt_claims
import pytest
from harness import Moim, log
from media import wait_until
from people import ALICE, BOB, Person, close_all

SHORT_TTL = datetime.timedelta(seconds=10)
PAST_EXPIRY_S = 10 + 5 + 3  # moim allows 5 s of clock skew past `exp`


@pytest.fixture(scope="module")
def moim():
    server = Moim("moim-python-long")
    server.start()
    yield server
    server.stop()


def validate_status(moim: Moim, token: str) -> int:
    try:
        with urllib.request.urlopen(f"{moim.http_url}/rtc/validate?access_token={token}") as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


async def data_arrives(sender: Person, receiver: Person, text: str) -> None:
    while not receiver.data.empty():
        receiver.data.get_nowait()
    await sender.room.local_participant.publish_data(text.encode(), reliable=True, topic="chat")
    pkt = await asyncio.wait_for(receiver.data.get(), 10)
    assert (pkt.data, pkt.participant.identity) == (text.encode(), sender.identity)


async def scenario(moim: Moim, single_pc: bool) -> None:
    label = "single-pc" if single_pc else "dual-pc"
    alice, bob = Person(moim, *ALICE), Person(moim, *BOB)
    room = f"python-long-{label}"
    try:
        minted = time.time()
        await alice.join(room, single_pc, ttl=SHORT_TTL)
        await bob.join(room, single_pc)
        await wait_until(lambda: "bob" in alice.room.remote_participants, 10, "alice to see bob")
        first_exp = jwt_claims.claims(alice.token)["exp"]

        await asyncio.sleep(max(0.0, minted + PAST_EXPIRY_S - time.time()))
        assert validate_status(moim, alice.token) == 401, "alice's first token is refused by now"
        log(f"{label}: alice's first token (exp {first_exp}) has expired and is refused")

        cut_at = time.monotonic()
        assert alice.proxy.cut() == 1, "alice has one signalling connection open"
        await wait_until(lambda: alice.reconnected_at, 20, "alice's SDK to resume")
        log(f"{label}: alice resumed {alice.reconnected_at - cut_at:.2f} s after the cut")
        assert alice.disconnect_reason is None, f"alice was disconnected: {alice.disconnect_reason}"

        await data_arrives(bob, alice, "still here?")
        await data_arrives(alice, bob, "yes")
        # A resume keeps the session; a fresh join would have given a new sid.
        assert bob.room.remote_participants["alice"].sid == alice.sid
        log(f"{label}: after the resume, data flows both ways and alice keeps her sid")
    except BaseException:
        print(moim.log_tail(60), flush=True)
        raise
    finally:
        await close_all(alice, bob)


@pytest.mark.parametrize("single_pc", [True, False], ids=["single-pc", "dual-pc"])
def test_a_participant_resumes_after_its_first_token_expired(moim, single_pc):
    asyncio.run(asyncio.wait_for(scenario(moim, single_pc), timeout=90))
