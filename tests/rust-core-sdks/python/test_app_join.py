"""The app API's join token with LiveKit's Python SDK, a client moim did not
write: Ada and Bob log in to `moim serve --dev`'s app back end (dev login,
cookies, CSRF header), Ada creates a room, both ask /api/rooms/{id}/join
and connect the SDK with the serverUrl and token they get. They land in
that room, see each other by the names they logged in with, and only Ada
holds host powers.
"""

from __future__ import annotations

import asyncio
import http.cookiejar
import json
import urllib.request

import jwt_claims
import pytest
from harness import Moim, log
from livekit import rtc
from media import wait_until


@pytest.fixture(scope="module")
def moim():
    server = Moim("moim-python-app")
    server.start()
    yield server
    server.stop()


class AppUser:
    """A browser's worth of the app: a cookie jar, and the headers the meet app sends."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.jar = http.cookiejar.CookieJar()
        self.http = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))

    def post(self, path: str, body: dict) -> dict:
        csrf = next((c.value for c in self.jar if c.name == "moim_csrf"), None)
        headers = {"content-type": "application/json", "origin": self.base}
        if csrf:
            headers["x-csrf-token"] = csrf
        req = urllib.request.Request(
            self.base + path, data=json.dumps(body).encode(), headers=headers, method="POST"
        )
        with self.http.open(req, timeout=10) as r:
            return json.loads(r.read() or b"{}")


async def scenario(moim: Moim) -> None:
    ada, bob = AppUser(moim.http_url), AppUser(moim.http_url)
    ada.post("/auth/dev-login", {"name": "Ada"})
    bob.post("/auth/dev-login", {"name": "Bob"})
    room_id = ada.post("/api/rooms", {"title": "Python standup"})["id"]
    rooms: list[rtc.Room] = []
    try:
        for who in (ada, bob):
            grant = who.post(f"/api/rooms/{room_id}/join", {})
            assert grant["serverUrl"] == moim.ws_url, grant
            room = rtc.Room()
            await asyncio.wait_for(room.connect(grant["serverUrl"], grant["token"]), 20)
            assert room.name == room_id
            rooms.append((room, jwt_claims.video_grant(grant["token"])))
        (ada_room, ada_grant), (bob_room, bob_grant) = rooms
        assert ada_grant.get("roomAdmin") is True and not bob_grant.get("roomAdmin")
        await wait_until(lambda: len(bob_room.remote_participants) == 1, 10, "Bob to see Ada")
        await wait_until(lambda: len(ada_room.remote_participants) == 1, 10, "Ada to see Bob")
        seen_by_bob = [p.name for p in bob_room.remote_participants.values()]
        seen_by_ada = [p.name for p in ada_room.remote_participants.values()]
        assert seen_by_bob == ["Ada"] and seen_by_ada == ["Bob"], (seen_by_bob, seen_by_ada)
        log(f"app join: both in room {room_id}; Bob sees {seen_by_bob}, Ada sees {seen_by_ada}")
    except BaseException:
        print(moim.log_tail(40), flush=True)
        raise
    finally:
        for room, _ in rooms:
            await room.disconnect()


def test_the_apps_join_token_brings_the_python_sdk_into_the_room(moim):
    asyncio.run(scenario(moim))
