"""What the GStreamer suite needs around webrtcbin: a real moim server on free
ports, LiveKit access tokens, and a LiveKit `/rtc` signal connection.

Frames are protobuf on the wire, as every LiveKit SDK sends them; the tests
read and write them as protojson dicts (lowerCamelCase, enums by name)."""

import base64
import hashlib
import hmac
import json
import os
import queue
import socket
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

from google.protobuf import json_format
from livekit.protocol import rtc
from websockets.sync.client import connect

HERE = Path(__file__).resolve().parent
OUT_DIR = HERE / "out"
API_KEY = "devkey"
API_SECRET = "secret"


def moim_binary():
    env = os.environ.get("MOIM_BIN")
    return (HERE / env).resolve() if env else (HERE / "../../target/debug/moim").resolve()


def _free_port(kind):
    s = socket.socket(socket.AF_INET, kind)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class MoimServer:
    """`moim serve --dev` on ports nobody else uses, its log in out/."""

    def __init__(self):
        self.proc = None
        self.log_path = None
        self.port = None

    def start(self):
        binary = moim_binary()
        if not os.access(binary, os.X_OK):
            raise RuntimeError(
                f"moim binary not found at {binary}: build it with `cargo build -p moim` "
                "or point MOIM_BIN at one"
            )
        self.port = _free_port(socket.SOCK_STREAM)
        tcp = self.port
        while tcp == self.port:
            tcp = _free_port(socket.SOCK_STREAM)
        udp = _free_port(socket.SOCK_DGRAM)
        OUT_DIR.mkdir(exist_ok=True)
        self.log_path = OUT_DIR / f"moim-server-{int(time.time() * 1000)}.log"
        args = [
            str(binary), "serve", "--dev", "--bind", "127.0.0.1",
            "--port", str(self.port), "--rtc-tcp-port", str(tcp), "--rtc-udp-port", str(udp),
            "--no-turn",
        ]
        with open(self.log_path, "w") as log:
            log.write("# " + " ".join(args) + "\n")
            log.flush()
            env = {"MOIM_LOG": "info", **os.environ}
            # The child keeps its own copy of the descriptor.
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 30
        last = "no answer yet"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"moim exited with {self.proc.returncode}\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=1) as r:
                    if r.status == 200:
                        return self
            except OSError as e:
                last = str(e)
            time.sleep(0.2)
        raise RuntimeError(f"moim did not answer /healthz within 30 s ({last})\n{self.log_tail()}")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    def log(self):
        return self.log_path.read_text() if self.log_path else ""

    def log_tail(self, lines=60):
        return "---- moim log ----\n" + "\n".join(self.log().splitlines()[-lines:])

    @property
    def ws_url(self):
        return f"ws://127.0.0.1:{self.port}"


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
