"""The Qdrant stand-in (`qdrant_standin.py`) run as a process, as tests use a Qdrant server.

Only where the real `qdrant/qdrant` image cannot be pulled: the pipeline points the same
tests at the real image through QDRANT_TEST_URL instead.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

SCRIPT = Path(__file__).resolve().parent / "qdrant_standin.py"


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Standin:
    process: subprocess.Popen[bytes]
    port: int
    api_key: str | None
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def _admin(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        response = httpx.request(method, f"{self.url}/__standin/{path}", json=body, timeout=5)
        response.raise_for_status()
        return response.json()

    def inject(self, status: int | None = 503, count: int = 1, **options: Any) -> None:
        """Fail the next `count` matching requests (options: method, path, delay, after, error)."""
        self._admin("POST", "faults", {"status": status, "count": count, **options})

    def clear_faults(self) -> None:
        self._admin("DELETE", "faults")

    def requests(self) -> list[dict[str, Any]]:
        """Every request seen since the last reset: {seq, method, path, status, fault}."""
        return list(self._admin("GET", "requests")["requests"])

    def reset_requests(self) -> None:
        self._admin("DELETE", "requests")

    def stop(self, timeout: float = 10) -> int:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                return self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
        return self.process.wait()


def spawn_standin(
    workdir: Path, api_key: str | None = None, storage: Path | None = None, port: int | None = None
) -> Standin:
    """Start the stand-in on a loopback port and wait until it answers /readyz."""
    port = port or _free_port()
    log_path = workdir / f"qdrant-standin-{port}.log"
    command = [sys.executable, str(SCRIPT), "--port", str(port)]
    if api_key:
        command += ["--api-key", api_key]
    if storage:
        command += ["--storage", str(storage)]
    with log_path.open("ab") as log_file:
        process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT, env=os.environ.copy())
    standin = Standin(process, port, api_key, log_path)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the Qdrant stand-in exited with {process.returncode}:\n{standin.log()}")
        try:
            if httpx.get(f"{standin.url}/readyz", timeout=1).status_code == 200:
                return standin
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    standin.stop()
    raise AssertionError(f"the Qdrant stand-in did not answer within 30 s:\n{standin.log()}")
