"""Shared fixtures: the offline model, and the server run as users run it (a subprocess)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from otlp import receiver  # noqa: F401  # a fixture the telemetry and reliability suites share

from support import ServerProcess, spawn_server

# Suites marked by their folder, so `-m 'not stack'` and the like select whole folders.
FOLDER_MARKERS = {"bench", "ci", "conformance", "deploy", "oauth", "observability", "reliability", "stack"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    tests = Path(__file__).parent
    for item in items:
        folder = Path(str(item.fspath)).resolve().relative_to(tests).parts[0]
        if folder in FOLDER_MARKERS:
            item.add_marker(folder)


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


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    started: list[ServerProcess] = []

    def start(
        env: dict[str, str] | None = None, args: tuple[str, ...] = (), wait: str | None = "/readyz"
    ) -> ServerProcess:
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
