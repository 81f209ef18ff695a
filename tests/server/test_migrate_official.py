"""A folder the official `mcp-server-qdrant` 0.8.1 wrote (QDRANT_LOCAL_PATH, qdrant-client local
mode): served as it is, then `migrate --in-place` to the embedded engine with every point intact.

The official server comes from PyPI into the benchmark's cached venv (bench/provision.py), so
this needs PyPI once; the container suite (no network) does not run this file."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest
from mcp.client import Client
from mcp.client.stdio import StdioServerParameters, stdio_client

from bench.provision import official_venv
from qdrant_mcp_memory.backends.root import folder_kind
from support import ServerProcess

pytestmark = pytest.mark.anyio
NOTES = [
    ("The Eiffel Tower is in Paris.", {"topic": "travel"}),
    ("Sourdough needs a long fermentation.", {"topic": "food", "rating": 5}),
    ("Photosynthesis turns light into chemical energy.", {}),
]


async def write_with_the_official_server(folder: Path, errlog: Path) -> None:
    venv = await anyio.to_thread.run_sync(official_venv)
    params = StdioServerParameters(
        command=str(venv / "bin" / "mcp-server-qdrant"),
        args=["--transport", "stdio"],
        env={
            "PATH": os.environ["PATH"],
            "HOME": str(folder.parent),
            "QDRANT_LOCAL_PATH": str(folder),
            "COLLECTION_NAME": "notes",
            "FASTEMBED_CACHE_PATH": os.environ["FASTEMBED_CACHE_PATH"],
            "HF_HUB_OFFLINE": "1",
        },
    )
    with errlog.open("w") as log, anyio.fail_after(180):
        async with Client(stdio_client(params, errlog=log), mode="legacy") as client:
            for text, metadata in NOTES:
                stored = await client.call_tool("qdrant-store", {"information": text, "metadata": metadata})
                assert not stored.is_error, stored


async def test_a_folder_the_official_server_wrote_is_served_then_migrated(
    start_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    folder = tmp_path / "official"
    await write_with_the_official_server(folder, tmp_path / "official.stderr")
    assert folder_kind(folder) == "local-mode"

    env = {"QDRANT_URL": None, "QDRANT_LOCAL_PATH": str(folder), "COLLECTION_NAME": "notes"}
    server = start_server(env)
    assert server.ready_details()["storage"].startswith("qdrant-client local mode")
    async with Client(server.mcp_url) as client:
        found = await client.call_tool("qdrant-find", {"query": "bread baking"})
        assert found.structured_content["hits"][0]["document"] == NOTES[1][0]
    assert server.terminate() == 0

    migrated = subprocess.run(
        [sys.executable, "-m", "qdrant_mcp_memory", "migrate", "--in-place", str(folder)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert migrated.returncode == 0, migrated.stderr
    assert "verified: notes (3 points)" in migrated.stdout, migrated.stdout
    assert folder_kind(folder) == "edge"

    server = start_server(env)
    async with Client(server.mcp_url) as client:
        for text, metadata in NOTES:
            found = await client.call_tool("qdrant-find", {"query": text, "limit": 1})
            hit = found.structured_content["hits"][0]
            # The official server stores metadata as given; an empty object reads back as it was.
            assert (hit["document"], hit["metadata"] or {}) == (text, metadata)
    assert server.terminate() == 0
