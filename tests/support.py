"""Running the server as users run it: a subprocess on a loopback port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

REPO = Path(__file__).resolve().parents[1]


def compose_layers() -> dict[str, Any]:
    """compose.yaml as written, its included layers merged (services, secrets, volumes), before
    interpolation: for checks of what the files say, where `docker compose config` would
    resolve the very ${...} defaults being checked."""
    top = yaml.safe_load((REPO / "compose.yaml").read_text())
    merged: dict[str, Any] = {"services": {}, "secrets": {}, "volumes": {}}
    for entry in top.get("include", []):
        path = entry["path"] if isinstance(entry, dict) else entry
        layer = yaml.safe_load((REPO / path).read_text())
        for key, values in merged.items():
            values.update(layer.get(key) or {})
    return merged


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

    def ready_details(self) -> dict[str, Any]:
        """What /readyz tells an allowed host."""
        return dict(httpx.get(self.base + "/readyz", timeout=5).json())

    def terminate(self, timeout: float = 15) -> int:
        """SIGTERM, as Docker and Kubernetes stop a container; returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)


def spawn_server(
    workdir: Path, env: dict[str, str] | None = None, args: tuple[str, ...] = (), wait: str | None = "/readyz"
) -> ServerProcess:
    """Start `python -m qdrant_mcp_memory` over streamable HTTP on a free loopback port."""
    port = free_port()
    full_env = {**os.environ, "QDRANT_URL": ":memory:", "LOG_FORMAT": "json", **(env or {})}
    full_env = {key: value for key, value in full_env.items() if value is not None}
    log_path = workdir / f"server-{port}.log"
    command = [sys.executable, "-m", "qdrant_mcp_memory", "--transport", "streamable-http", "--port", str(port), *args]
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
