"""Fixtures for the openai provider's tests: a real OpenAI-compatible embedding server on loopback.

Infinity (bench/embedding_server.py) serves all-MiniLM-L6-v2, the default model, with an API
key of its own, once for the session; our servers run as users run them (subprocesses) with
EMBEDDING_PROVIDER=openai pointed at it, directly or through a test-controlled front.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# Make faulty_front and provider_support importable whatever pytest's import mode is.
sys.path.insert(0, str(Path(__file__).parent))

from faulty_front import FaultyFront
from provider_support import API_KEY, Start

from bench.embedding_server import api_url, spawn_infinity
from support import ServerProcess, spawn_server


@pytest.fixture(scope="session")
def infinity(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = spawn_infinity(tmp_path_factory.mktemp("infinity"), api_key=API_KEY)
    yield server
    server.close()


@pytest.fixture(scope="session")
def infinity_url(infinity: ServerProcess) -> str:
    return api_url(infinity)


@pytest.fixture
def front(infinity: ServerProcess) -> Iterator[FaultyFront]:
    faulty = FaultyFront(infinity.base).start()
    yield faulty
    faulty.close()


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Start]:
    """`start(env, wait=...)`: our server, stopped with SIGTERM after the test (exit 0 expected)."""
    started: list[ServerProcess] = []

    def run(env: dict[str, Any], wait: str | None = "/readyz") -> ServerProcess:
        server = spawn_server(tmp_path, env, wait=wait)
        started.append(server)
        return server

    yield run
    for server in started:
        if server.alive():
            code = server.terminate()
            assert code == 0, f"exit code {code} on SIGTERM:\n{server.log_tail()}"
