"""What the GStreamer suite needs around webrtcbin: a real moim server on free
ports, LiveKit access tokens, and a LiveKit `/rtc` signal connection.

Frames are protobuf on the wire, as every LiveKit SDK sends them; the tests
read and write them as protojson dicts (lowerCamelCase, enums by name)."""

import base64
import hashlib
import hmac
import json
import queue
import sys
import threading
import time
from pathlib import Path

from google.protobuf import json_format
from livekit.protocol import rtc
from websockets.sync.client import connect

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "pylib"))
from moim_server import MoimServer as _SharedMoimServer  # noqa: E402
OUT_DIR = HERE / "out"
API_KEY = "devkey"
API_SECRET = "secret"


class MoimServer(_SharedMoimServer):
    """`moim serve --dev` on ports nobody else uses, its log in out/."""

    def __init__(self):
        super().__init__(OUT_DIR)


def _b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def token(room, identity, can_publish=True, can_subscribe=True):
    """An HS256 LiveKit access token for the dev key, valid for an hour."""
    now = int(time.time())
    claims = {
        "iss": API_KEY, "sub": identity, "name": identity, "nbf": now - 10, "exp": now + 3600,
        "video": {
            "room": room, "roomJoin": True,
            "canPublish": can_publish, "canSubscribe": can_subscribe,
        },
    }
    header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = _b64url(json.dumps(claims).encode())
    sig = hmac.new(API_SECRET.encode(), f"{header}.{body}".encode(), hashlib.sha256).digest()
    return f"{header}.{body}.{_b64url(sig)}"


class Signal:
    """One LiveKit `/rtc` signal connection. Frames arrive on a reader thread
    and wait in `inbox` until the test's loop takes them."""

    def __init__(self, server, room, identity, **grants):
        url = (
            f"{server.ws_url}/rtc?access_token={token(room, identity, **grants)}"
            "&protocol=17&auto_subscribe=1&sdk=gstreamer&version=1.22"
        )
        self.identity = identity
        self.ws = connect(url, open_timeout=10, max_size=4 * 1024 * 1024)
        self.inbox = queue.Queue()
        self.frames = []
        self.closed = False
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        try:
            for raw in self.ws:
                msg = json_format.MessageToDict(rtc.SignalResponse.FromString(raw))
                self.frames.append(msg)
                self.inbox.put(msg)
        except Exception:  # the connection ended; the test sees `closed`
            pass
        self.closed = True

    def send(self, msg):
        req = json_format.ParseDict(msg, rtc.SignalRequest())
        # websockets' sync client lets one thread send while another reads.
        self.ws.send(req.SerializeToString())

    def wait_for(self, key, timeout=10):
        """The next frame carrying `key`; other frames go back to the queue."""
        deadline = time.monotonic() + timeout
        held = []
        try:
            while time.monotonic() < deadline:
                try:
                    msg = self.inbox.get(timeout=0.05)
                except queue.Empty:
                    continue
                if key in msg:
                    return msg[key]
                held.append(msg)
        finally:
            for m in held:
                self.inbox.put(m)
        raise TimeoutError(f"{self.identity}: no `{key}` frame within {timeout} s")

    def trickle(self, target, mline, candidate):
        init = {"candidate": candidate, "sdpMLineIndex": mline, "sdpMid": None}
        self.send({"trickle": {"candidateInit": json.dumps(init), "target": target}})

    def close(self):
        try:
            self.ws.close()
        except Exception:
            pass
