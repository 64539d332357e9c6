"""The app API's join token with LiveKit's Python SDK, a client moim did not
write: Ada and Bob log in to `moim serve --dev`'s app back end (dev login,
cookies, CSRF header), Ada creates a room, both ask /api/rooms/{id}/join
and connect the SDK with the serverUrl and token they get. They land in
that room, see each other by the names they logged in with, and only Ada
holds host powers. A guest comes by invite through the lobby and is
removed by the host, and the SDK says why.

Each story runs twice: on the one port of `moim serve`, and with the app
on its own port as `moim auth`, beside the server, where the host's
removal crosses to the server through RoomService.
"""

from __future__ import annotations

import asyncio
import http.cookiejar
import json
import urllib.request

import jwt_claims
import pytest
from harness import OUT_DIR, Moim, log
from moim_server import MoimAuth
from livekit import rtc
from media import wait_until


class Deployment:
    """Where the app is and where the rooms are: one `moim serve` for both,
    or `moim auth` on its own port beside a `moim serve` (it signs join
    tokens with the server's key and calls its RoomService)."""

    def __init__(self, media: Moim, auth: MoimAuth | None) -> None:
        self.media = media
        self.auth = auth
        self.app_url = (auth or media).http_url
        self.ws_url = media.ws_url

    def log_tail(self, lines: int) -> str:
        tails = [self.media.log_tail(lines)]
        if self.auth:
            tails.append(self.auth.log_tail(lines))
        return "\n".join(tails)


@pytest.fixture(scope="module", params=["one-port", "auth-apart"])
def moim(request, tmp_path_factory):
    server = Moim("moim-python-app")
    server.start()
    auth = None
    if request.param == "auth-apart":
        auth = MoimAuth(OUT_DIR, server, tmp_path_factory.mktemp("moim-auth"))
        auth.start()
    yield Deployment(server, auth)
    if auth:
        auth.stop()
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


async def scenario(moim: Deployment) -> None:
    ada, bob = AppUser(moim.app_url), AppUser(moim.app_url)
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


async def guest_scenario(moim: Deployment) -> None:
    """Kim, a guest with no account, comes by Ada's invite into a room with
    the lobby on: she is told to wait, Ada admits her, her held request
    answers a token the Python SDK joins with, Ada sees her by the name she
    typed, and when Ada removes her the SDK says why it was disconnected."""
    ada, kim = AppUser(moim.app_url), AppUser(moim.app_url)
    ada.post("/auth/dev-login", {"name": "Ada"})
    room_id = ada.post("/api/rooms", {"guestsAllowed": True, "lobby": True})["id"]
    invite = ada.post(f"/api/rooms/{room_id}/invites", {"maxUses": 1})["token"]
    waiting = kim.post(f"/api/rooms/{room_id}/join", {"name": "Kim", "invite": invite})
    assert waiting["status"] == "waiting", waiting
    lobby = json.loads(ada.http.open(moim.app_url + f"/api/rooms/{room_id}/lobby", timeout=10).read())
    assert [g["name"] for g in lobby["waiting"]] == ["Kim"], lobby
    ada.post(f"/api/rooms/{room_id}/lobby/{lobby['waiting'][0]['id']}/admit", {})
    grant = kim.post(f"/api/rooms/{room_id}/join", {"ticket": waiting["ticket"]})
    assert not jwt_claims.video_grant(grant["token"]).get("roomAdmin")
    ada_room, kim_room = rtc.Room(), rtc.Room()
    reasons: list[int] = []
    kim_room.on("disconnected", lambda reason: reasons.append(reason))
    try:
        ada_grant = ada.post(f"/api/rooms/{room_id}/join", {})
        await asyncio.wait_for(ada_room.connect(ada_grant["serverUrl"], ada_grant["token"]), 20)
        await asyncio.wait_for(kim_room.connect(grant["serverUrl"], grant["token"]), 20)
        await wait_until(lambda: len(ada_room.remote_participants) == 1, 10, "Ada to see Kim")
        (kim_seen,) = ada_room.remote_participants.values()
        assert kim_seen.name == "Kim" and kim_seen.identity.startswith("guest-"), kim_seen.identity
        ada.post(f"/api/rooms/{room_id}/participants/{kim_seen.identity}/remove", {})
        await wait_until(lambda: bool(reasons), 10, "Kim's SDK to be disconnected")
        assert reasons[0] == rtc.DisconnectReason.PARTICIPANT_REMOVED, reasons
        log(f"guest by invite and lobby: Kim admitted, seen by Ada, removed (reason {reasons[0]})")
    except BaseException:
        print(moim.log_tail(40), flush=True)
        raise
    finally:
        await kim_room.disconnect()
        await ada_room.disconnect()


def test_a_guest_admitted_from_the_lobby_joins_with_the_python_sdk_and_is_removed_by_the_host(moim):
    asyncio.run(guest_scenario(moim))


async def hand_scenario(moim: Deployment) -> None:
    """moim meet's raised hand is the participant attribute `hand`, which the
    app's join token lets a participant set: Bob raises his with the Python
    SDK, Ada's SDK sees it change and lower again, as her meet page would."""
    ada, bob = AppUser(moim.app_url), AppUser(moim.app_url)
    ada.post("/auth/dev-login", {"name": "Ada"})
    bob.post("/auth/dev-login", {"name": "Bob"})
    room_id = ada.post("/api/rooms", {"title": "Hands"})["id"]
    ada_room, bob_room = rtc.Room(), rtc.Room()
    changes: list[dict] = []
    ada_room.on(
        "participant_attributes_changed",
        lambda changed, participant: changes.append({"who": participant.name, **changed}),
    )
    try:
        for who, room in ((ada, ada_room), (bob, bob_room)):
            grant = who.post(f"/api/rooms/{room_id}/join", {})
            assert jwt_claims.video_grant(grant["token"]).get("canUpdateOwnMetadata") is True
            await asyncio.wait_for(room.connect(grant["serverUrl"], grant["token"]), 20)
        await wait_until(lambda: len(ada_room.remote_participants) == 1, 10, "Ada to see Bob")
        await asyncio.wait_for(bob_room.local_participant.set_attributes({"hand": "up"}), 10)
        await wait_until(lambda: any(c.get("hand") == "up" for c in changes), 10, "Ada to see Bob's hand up")
        await asyncio.wait_for(bob_room.local_participant.set_attributes({"hand": ""}), 10)
        await wait_until(lambda: changes[-1].get("hand") == "", 10, "Ada to see Bob's hand down")
        assert {c["who"] for c in changes} == {"Bob"}, changes
        log(f"raised hand through the Python SDK: Ada saw {changes}")
    except BaseException:
        print(moim.log_tail(40), flush=True)
        raise
    finally:
        await bob_room.disconnect()
        await ada_room.disconnect()


def test_a_hand_raised_with_the_python_sdk_is_seen_by_another(moim):
    asyncio.run(hand_scenario(moim))
