"""A server run as users run it: a subprocess on a free loopback port, its output in a log file.

The one place that starts and stops server processes, for the benchmark and the test suite
alike (tests/support.py re-exports it). A process started here runs in an empty working
folder (so a developer's `.env` cannot leak in) and, for the benchmark, in a session of its
own so that it and any child it starts (the embedded engine's index builder) can be killed
together. Every process still running when the interpreter exits is killed.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

# Processes started here and not yet closed: killed at interpreter exit whatever happened.
_LIVE: set[ServerProcess] = set()


class ServerNotReady(AssertionError):
    """The server exited, or did not answer in time; the message carries its log."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        try:
            sock.connect(("127.0.0.1", port))
        except OSError:
            return False
        return True


@dataclass(eq=False)
class ServerProcess:
    """A started server: its process, where it listens and where it logs."""

    process: subprocess.Popen[bytes]
    port: int
    log_path: Path
    name: str = "server"
    mcp_path: str = "/mcp"
    # A path answering 200 once the server can take tool calls; None when the server has none.
    ready_path: str | None = "/readyz"
    # time.perf_counter() right before the spawn, for "spawn -> ready" timings.
    started: float = field(default_factory=time.perf_counter)
    own_session: bool = False
    # A working folder made for this process alone, removed by close().
    scratch: Path | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def mcp_url(self) -> str:
        return f"{self.base}{self.mcp_path}"

    def alive(self) -> bool:
        return self.process.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def ready_details(self) -> dict[str, Any]:
        """What /readyz tells an allowed host."""
        return dict(httpx.get(self.base + "/readyz", timeout=5).json())

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log().splitlines()[-lines:])
        except OSError:
            return ""

    def terminate(self, timeout: float = 15) -> int:
        """SIGTERM, as Docker and Kubernetes stop a container; returns the exit code."""
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=timeout)
        _LIVE.discard(self)
        return code

    def stop(self, timeout: float = 10.0) -> dict[str, object]:
        """SIGTERM, then SIGKILL after `timeout`: the exit code and how long the shutdown took."""
        if not self.alive():
            return {"returncode": self.process.returncode, "exited_before_sigterm": True, "shutdown_s": 0.0}
        started = time.perf_counter()
        self.process.send_signal(signal.SIGTERM)
        try:
            outcome: dict[str, object] = {"returncode": self.process.wait(timeout), "timed_out": False}
        except subprocess.TimeoutExpired:
            self.kill()
            outcome = {"returncode": None, "timed_out": True, "killed_rc": self.process.returncode}
        outcome["shutdown_s"] = round(time.perf_counter() - started, 3)
        return outcome

    def kill(self) -> None:
        """SIGKILL the server and, when it has a session of its own, everything left in it."""
        if self.own_session:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)
        if self.alive():
            self.process.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(5)
        _LIVE.discard(self)

    def close(self) -> None:
        """Kill whatever is left (the server, children in its session) and remove its scratch folder."""
        self.kill()
        if self.scratch is not None:
            shutil.rmtree(self.scratch, ignore_errors=True)


def launch(
    argv: Sequence[str],
    *,
    port: int,
    env: Mapping[str, str],
    workdir: Path,
    log_path: Path,
    name: str = "server",
    mcp_path: str = "/mcp",
    ready_path: str | None = "/readyz",
    own_session: bool = True,
    scratch: bool = False,
) -> ServerProcess:
    """Start `argv` in `workdir` with exactly `env`, stdout and stderr to `log_path`
    (`scratch`: `workdir` was made for this process, and close() removes it)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log_file:
        started = time.perf_counter()
        process = subprocess.Popen(
            list(argv),
            env=dict(env),
            cwd=workdir,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=own_session,
        )
    server = ServerProcess(
        process, port, log_path, name, mcp_path, ready_path, started, own_session, workdir if scratch else None
    )
    _LIVE.add(server)
    return server


def ours_argv(port: int, python: str = sys.executable, args: Sequence[str] = ()) -> list[str]:
    """The command line of our server over streamable HTTP on `port`."""
    return [python, "-m", "qdrant_mcp_memory", "--transport", "streamable-http", "--port", str(port), *args]


def spawn_server(
    workdir: Path,
    env: Mapping[str, str | None] | None = None,
    args: tuple[str, ...] = (),
    wait: str | None = "/readyz",
    port: int | None = None,
) -> ServerProcess:
    """Start `python -m qdrant_mcp_memory` with the caller's environment plus `env` (None removes a
    variable), embedded in-memory Qdrant and JSON logs, on `port` (default: a free one); wait for
    `wait` to answer 200 unless None."""
    port = port or free_port()
    merged = {**os.environ, "QDRANT_URL": ":memory:", "LOG_FORMAT": "json", **(env or {})}
    full_env = {key: value for key, value in merged.items() if value is not None}
    server = launch(
        ours_argv(port, args=args),
        port=port,
        env=full_env,
        workdir=workdir,
        log_path=workdir / f"server-{port}.log",
        own_session=False,  # in the test runner's process group: Ctrl-C reaches it too
    )
    if wait:
        wait_for(server, wait)
    return server


def wait_for(server: ServerProcess, path: str, timeout: float = 60) -> None:
    """Poll `path` until it answers 200; ServerNotReady if the server exits or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not server.alive():
            raise ServerNotReady(f"server exited with {server.process.returncode}:\n{server.log()}")
        try:
            if httpx.get(server.base + path, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise ServerNotReady(f"server not ready at {path} within {timeout}s:\n{server.log()}")


@atexit.register
def _kill_leftovers() -> None:
    for server in list(_LIVE):
        server.close()
