"""Shared fixtures: the offline model, and the server run as users run it (a subprocess)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session", autouse=True)
def offline_model() -> Path:
    """The real all-MiniLM-L6-v2, from the cache `../shared/offline-models/build-fastembed-cache` builds."""
    cache = os.environ.get("FASTEMBED_CACHE_PATH")
    if not cache or not Path(cache).is_dir():
        pytest.fail(
            "FASTEMBED_CACHE_PATH must name a fastembed cache holding all-MiniLM-L6-v2: "
            "run scripts/test, or ../shared/offline-models/build-fastembed-cache DIR and export it"
        )
    os.environ["HF_HUB_OFFLINE"] = "1"
    return Path(cache)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class ServerProcess:
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def mcp_url(self) -> str:
        return f"{self.base}/mcp"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def terminate(self, timeout: float = 15) -> int:
        """SIGTERM, as Docker and Kubernetes stop a container; returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)


def spawn_server(
    workdir: Path, env: dict[str, str] | None = None, args: tuple[str, ...] = (), wait: str | None = "/readyz"
) -> ServerProcess:
    """Start `python -m qdrant_mcp` over streamable HTTP on a free loopback port."""
    port = free_port()
    full_env = {**os.environ, "QDRANT_URL": ":memory:", "LOG_FORMAT": "json", **(env or {})}
    full_env = {key: value for key, value in full_env.items() if value is not None}
    log_path = workdir / f"server-{port}.log"
    command = [sys.executable, "-m", "qdrant_mcp", "--transport", "streamable-http", "--port", str(port), *args]
    with log_path.open("wb") as log_file:
        # cwd=workdir: a developer's own .env must not leak into the test.
        process = subprocess.Popen(command, env=full_env, cwd=workdir, stdout=log_file, stderr=subprocess.STDOUT)
    server = ServerProcess(process, port, log_path)
    if wait:
        wait_for(server, wait)
    return server


def wait_for(server: ServerProcess, path: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise AssertionError(f"server exited with {server.process.returncode}:\n{server.log()}")
        try:
            if httpx.get(server.base + path, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"server not ready at {path} within {timeout}s:\n{server.log()}")


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    started: list[ServerProcess] = []

    def start(env: dict[str, str] | None = None, args: tuple[str, ...] = (), wait: str | None = "/readyz") -> ServerProcess:
        server = spawn_server(tmp_path, env, args, wait)
        started.append(server)
        return server

    yield start
    for server in started:
        if server.process.poll() is None:
            server.process.kill()
            server.process.wait()


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server for the tests that only need the default configuration."""
    server = spawn_server(tmp_path_factory.mktemp("server"))
    yield server
    code = server.terminate()
    assert code == 0, f"exit code {code} on SIGTERM:\n{server.log()}"
