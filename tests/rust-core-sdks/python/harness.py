"""The pieces a test needs around the SDK: a real moim server, a TCP proxy that
can cut the SDK's signalling connection, and tokens.

Nothing here knows LiveKit's protocol beyond reading the HTTP request line the
SDK sends, which is how the tests tell which signalling path it chose.
"""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
SUITE = HERE.parent
sys.path.insert(0, str(SUITE.parent / "pylib"))
from moim_server import MoimServer  # noqa: E402
OUT_DIR = SUITE / "out"
API_KEY = "devkey"
API_SECRET = "secret"


def log(msg: str) -> None:
    """One check line, flushed at once so a hang shows where it stopped."""
    print(f"[python-sdk] {msg}", flush=True)


class Moim(MoimServer):
    """`moim serve --dev` on free loopback ports, its log in out/."""

    def __init__(self, name: str = "moim-python", env: dict[str, str] | None = None) -> None:
        super().__init__(OUT_DIR, name, "info,moim_server=debug", env)


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

    async def _target(self) -> int | None:
        """The port a new connection goes to."""
        return self.target_port

    async def _handle(self, cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        target = await self._target()
        if target is None:
            cw.close()
            return
        try:
            ur, uw = await asyncio.open_connection("127.0.0.1", target)
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


class BalancingProxy(CutProxy):
    """A load balancer: each new connection goes to the first server whose
    /healthz answers 200, as a real balancer's health check decides."""

    def __init__(self, servers: list[MoimServer]) -> None:
        super().__init__(servers[0].port)
        self.servers = servers
        self.routed: list[str] = []

    async def _target(self) -> int | None:
        for server in self.servers:
            if await asyncio.to_thread(server.healthy):
                self.routed.append(server.name)
                return server.port
        return None
