"""Fixtures for the bad-input reliability suite (tests/reliability/): servers started as users start them."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

# Make reliability_support importable whatever pytest's import mode is.
sys.path.insert(0, str(Path(__file__).parent))

from reliability_support import CORPUS_COLLECTION, ModernEra, seed

from support import ServerProcess, spawn_server

# Typed filter parameters of every type and condition, for the FILTERABLE_FIELDS server.
FILTERABLE_FIELDS = [
    {"name": "topic", "description": "topic", "field_type": "keyword", "condition": "=="},
    {"name": "year", "description": "year", "field_type": "integer", "condition": ">="},
    {"name": "level", "description": "level", "field_type": "integer", "condition": "=="},
    {"name": "score", "description": "score", "field_type": "float", "condition": "<"},
    {"name": "done", "description": "done", "field_type": "boolean", "condition": "=="},
    {"name": "tags", "description": "tags", "field_type": "keyword", "condition": "any"},
    {"name": "nums", "description": "nums", "field_type": "integer", "condition": "except"},
]
SERVER_ENV: dict[str, dict[str, str | None]] = {
    "arbitrary": {"QDRANT_ALLOW_ARBITRARY_FILTER": "true"},
    # query_filter stays allowed here too: with typed filters configured it must still be refused.
    "typed": {"QDRANT_ALLOW_ARBITRARY_FILTER": "true", "FILTERABLE_FIELDS": json.dumps(FILTERABLE_FIELDS)},
    # Neither filter setting: query_filter is no parameter.
    "default": {},
    # No write tools (and no query_filter); it serves a folder a writable server seeded.
    "read-only": {"QDRANT_READ_ONLY": "true"},
}


def _serve(workdir: Path, env: dict[str, str | None]) -> Iterator[ServerProcess]:
    server = spawn_server(workdir, env)
    yield server
    code = server.terminate()
    assert code == 0, f"exit code {code} on SIGTERM:\n{server.log()[-5000:]}"


@pytest.fixture(scope="module")
def arbitrary_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server with QDRANT_ALLOW_ARBITRARY_FILTER=true (qdrant-find takes query_filter)."""
    yield from _serve(tmp_path_factory.mktemp("server-arbitrary"), SERVER_ENV["arbitrary"])


@pytest.fixture(scope="module")
def typed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server with FILTERABLE_FIELDS (typed filter parameters instead of query_filter)."""
    yield from _serve(tmp_path_factory.mktemp("server-typed"), SERVER_ENV["typed"])


@pytest.fixture(scope="module")
def default_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server with neither filter setting."""
    yield from _serve(tmp_path_factory.mktemp("server-default"), SERVER_ENV["default"])


@pytest.fixture(scope="module")
def read_only_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A QDRANT_READ_ONLY server over an embedded folder that a writable server first seeded with
    reliability_support.SEED in CORPUS_COLLECTION (a read-only server has no tool to write it)."""
    workdir = tmp_path_factory.mktemp("server-read-only")
    storage: dict[str, str | None] = {"QDRANT_URL": None, "QDRANT_LOCAL_PATH": str(workdir / "data")}
    writer = spawn_server(workdir, storage)
    with httpx.Client() as http:
        seed(ModernEra(writer.mcp_url, http), CORPUS_COLLECTION)
    code = writer.terminate()
    assert code == 0, f"the seeding server's exit code {code} on SIGTERM:\n{writer.log()[-5000:]}"
    yield from _serve(workdir, {**storage, **SERVER_ENV["read-only"]})
