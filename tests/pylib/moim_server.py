"""A real `moim serve --dev` for the Python suites (tests/gstreamer,
tests/rust-core-sdks): free loopback ports, its log in the suite's out/,
and a bounded wait for /healthz. Standard library only, so any suite's venv
can import it."""

from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def moim_binary() -> Path:
    env = os.environ.get("MOIM_BIN")
    return Path(env).resolve() if env else REPO / "target/debug/moim"


def free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MoimServer:
    """`moim serve --dev --no-turn` on ports nobody else uses.

    `--no-turn`: the embedded TURN server's fixed port 3478 may be taken by
    another run on this machine, and loopback peers never need a relay.
    """

    def __init__(
        self,
        out_dir: Path,
        name: str = "moim-server",
        log_filter: str = "info",
        env: dict[str, str] | None = None,
    ) -> None:
        self.extra_env = env or {}
        self.out_dir = out_dir
        self.name = name
        self.log_filter = log_filter
        self.proc: subprocess.Popen | None = None
        self.port = 0
        self.log_file: Path | None = None

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def start(self) -> "MoimServer":
        binary = moim_binary()
        if not os.access(binary, os.X_OK):
            raise RuntimeError(
                f"moim binary not found or not executable at {binary}: "
                "build it with `cargo build -p moim` or set MOIM_BIN"
            )
        self.port = free_port(socket.SOCK_STREAM)
        self.out_dir.mkdir(exist_ok=True)
        self.log_file = self.out_dir / f"{self.name}-{int(time.time() * 1000)}.log"
        args = self.command(binary)
        env = {
            **os.environ,
            "MOIM_LOG": os.environ.get("MOIM_LOG", self.log_filter),
            **self.extra_env,
        }
        with open(self.log_file, "w") as f:
            f.write("# " + " ".join(args) + "\n")
            f.flush()
            # The child keeps its own copy of the descriptor.
            self.proc = subprocess.Popen(args, stdout=f, stderr=subprocess.STDOUT, env=env)
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
                        return self
                    last = f"HTTP {r.status}"
            except OSError as e:
                last = str(e)
            time.sleep(0.2)
        raise RuntimeError(f"moim did not answer /healthz within 30 s ({last})\n" + self.log_tail())

    def command(self, binary: Path) -> list[str]:
        tcp = self.port
        while tcp == self.port:
            tcp = free_port(socket.SOCK_STREAM)
        udp = free_port(socket.SOCK_DGRAM)
        return [
            str(binary), "serve", "--dev", "--no-turn", "--bind", "127.0.0.1",
            "--port", str(self.port), "--rtc-tcp-port", str(tcp), "--rtc-udp-port", str(udp),
        ]  # fmt: skip

    def log_text(self) -> str:
        if not self.log_file or not self.log_file.exists():
            return ""
        return self.log_file.read_text(errors="replace")

    def log_tail(self, lines: int = 60) -> str:
        tail = "\n".join(self.log_text().splitlines()[-lines:])
        return f"---- moim log (last {lines} lines of {self.log_file}) ----\n{tail}\n---- end ----"

    def healthy(self) -> bool:
        """Whether /healthz answers 200 (a draining moim answers 503)."""
        try:
            with urllib.request.urlopen(self.http_url + "/healthz", timeout=0.5) as r:
                return r.status == 200
        except OSError:
            return False

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


class MoimAuth(MoimServer):
    """`moim auth --dev`: the app back end and moim meet on a port of their
    own, beside `media`, a running moim server it signs join tokens for and
    calls RoomService on. Its database is a fresh SQLite file in `data_dir`."""

    def __init__(self, out_dir: Path, media: MoimServer, data_dir: Path, name: str = "moim-auth") -> None:
        super().__init__(out_dir, name)
        self.media = media
        self.data_dir = data_dir

    def command(self, binary: Path) -> list[str]:
        return [
            str(binary), "auth", "--dev", "--port", str(self.port),
            "--media-url", self.media.http_url, "--data-dir", str(self.data_dir),
        ]  # fmt: skip
