"""The pieces a test needs around the SDK: a real moim server, a TCP proxy that
can cut the SDK's signalling connection, and tokens.

Nothing here knows LiveKit's protocol beyond reading the HTTP request line the
SDK sends, which is how the tests tell which signalling path it chose.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
SUITE = HERE.parent
OUT_DIR = SUITE / "out"
API_KEY = "devkey"
API_SECRET = "secret"


def log(msg: str) -> None:
    """One check line, flushed at once so a hang shows where it stopped."""
    print(f"[python-sdk] {msg}", flush=True)


def moim_binary() -> Path:
    env = os.environ.get("MOIM_BIN")
    path = Path(env) if env else SUITE / "../../target/debug/moim"
    return path.resolve()


def _free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Moim:
    """`moim serve --dev` on free loopback ports, its log in out/."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = None
        self.port = 0
        self.log_file: Path | None = None

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        binary = moim_binary()
        if not os.access(binary, os.X_OK):
            raise RuntimeError(
                f"moim binary not found or not executable at {binary}: "
                "build it with `cargo build -p moim` or set MOIM_BIN"
            )
        self.port = _free_port(socket.SOCK_STREAM)
        tcp = _free_port(socket.SOCK_STREAM)
        udp = _free_port(socket.SOCK_DGRAM)
        OUT_DIR.mkdir(exist_ok=True)
        self.log_file = OUT_DIR / f"moim-python-{int(time.time() * 1000)}.log"
        # --no-turn: the embedded TURN server's fixed port 3478 may be taken by
        # another run on this machine, and loopback peers never need a relay.
        args = [
            str(binary), "serve", "--dev", "--no-turn", "--bind", "127.0.0.1",
            "--port", str(self.port), "--rtc-tcp-port", str(tcp), "--rtc-udp-port", str(udp),
        ]  # fmt: skip
        env = {**os.environ, "MOIM_LOG": os.environ.get("MOIM_LOG", "info,moim_server=debug")}
        with open(self.log_file, "w") as f:
            f.write("# " + " ".join(args) + "\n")
            f.flush()
            self.proc = subprocess.Popen(args, stdout=f, stderr=f, env=env)
        deadline = time.monotonic() + 30
        last = "no answer yet"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"moim exited with {self.proc.returncode} before answering /healthz\n"
                    + self.log_tail()
                )
            try:
                with urllib.request.urlopen(self.http_url + "/healthz", timeout=1) as r:
                    if r.status == 200:
                        return
                    last = f"HTTP {r.status}"
            except OSError as e:
                last = str(e)
            time.sleep(0.2)
        raise RuntimeError(f"moim did not answer /healthz within 30 s ({last})\n" + self.log_tail())

    def log_text(self) -> str:
        if not self.log_file or not self.log_file.exists():
            return ""
        return self.log_file.read_text(errors="replace")

    def log_tail(self, lines: int = 60) -> str:
        tail = "\n".join(self.log_text().splitlines()[-lines:])
        return f"---- moim log (last {lines} lines of {self.log_file}) ----\n{tail}\n---- end ----"

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.proc = None


@dataclass
class CutProxy:
    """A TCP proxy in front of moim's HTTP port for one participant.

    The SDK's signalling WebSocket runs through it, so a test can cut that
    connection (both sides closed at once, as a dropped network would) while
    the media, which goes straight to moim's UDP port, is left alone.
    """

    target_port: int
    port: int = 0
    request_lines: list[str] = field(default_factory=list)
    _server: asyncio.AbstractServer | None = None
    _open: set = field(default_factory=set)

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def paths(self) -> list[str]:
        """The request paths (no query) of every connection, oldest first."""
        return [line.split(" ")[1].split("?")[0] for line in self.request_lines if " " in line]

    async def _handle(self, cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        try:
            ur, uw = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            cw.close()
            return
        pair = (cw, uw)
        self._open.add(pair)
        first = True

        async def pump(r: asyncio.StreamReader, w: asyncio.StreamWriter, sniff: bool) -> None:
            nonlocal first
            try:
                while chunk := await r.read(65536):
                    if sniff and first:
                        first = False
                        self.request_lines.append(chunk.split(b"\r\n", 1)[0].decode("latin-1"))
                    w.write(chunk)
                    await w.drain()
            except (ConnectionError, asyncio.CancelledError):
                pass
            finally:
                w.close()

        await asyncio.gather(pump(cr, uw, True), pump(ur, cw, False))
        self._open.discard(pair)

    def cut(self) -> int:
        """Abort every open connection; returns how many were cut."""
        n = 0
        for cw, uw in list(self._open):
            for w in (cw, uw):
                w.transport.abort()
            n += 1
        self._open.clear()
        return n

    async def close(self) -> None:
        self.cut()
        if self._server:
            self._server.close()
            await self._server.wait_closed()
