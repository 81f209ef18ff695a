"""Fixtures for the bad-input reliability suite (tests/reliability/): servers started as users start them."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# Make reliability_support importable whatever pytest's import mode is.
sys.path.insert(0, str(Path(__file__).parent))

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
SERVER_ENV = {
    "arbitrary": {"QDRANT_ALLOW_ARBITRARY_FILTER": "true"},
    # query_filter stays allowed here too: with typed filters configured it must still be refused.
    "typed": {"QDRANT_ALLOW_ARBITRARY_FILTER": "true", "FILTERABLE_FIELDS": json.dumps(FILTERABLE_FIELDS)},
}


def _serve(tmp_path_factory: pytest.TempPathFactory, kind: str) -> Iterator[ServerProcess]:
    server = spawn_server(tmp_path_factory.mktemp(f"server-{kind}"), SERVER_ENV[kind])
    yield server
    code = server.terminate()
    assert code == 0, f"exit code {code} on SIGTERM:\n{server.log()[-5000:]}"


@pytest.fixture(scope="module")
def arbitrary_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server with QDRANT_ALLOW_ARBITRARY_FILTER=true (qdrant-find takes query_filter)."""
    yield from _serve(tmp_path_factory, "arbitrary")


@pytest.fixture(scope="module")
def typed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server with FILTERABLE_FIELDS (typed filter parameters instead of query_filter)."""
    yield from _serve(tmp_path_factory, "typed")
