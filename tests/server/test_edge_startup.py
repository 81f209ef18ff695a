"""The embedded engine as a started server sees it: a collection that does not load and a failed
build are reported (readiness details, a metric, tool errors) while the rest is served; the
temporary folder of `:memory:` exists only while a server serves from it."""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from mcp.client import Client
from prometheus_client.parser import text_string_to_metric_families
from storage_faults import BUILD_SIZE, Steps, seed_closed

from qdrant_mcp_memory.backends.root import TEMPORARY_PREFIX, collection_folder
from support import ServerProcess, free_port, spawn_server

pytestmark = pytest.mark.anyio
Start = Callable[..., ServerProcess]


def conditions(server: ServerProcess) -> dict[str, dict[str, str]]:
    return {c["kind"]: c for c in server.ready_details().get("conditions", [])}


async def test_a_collection_that_does_not_load_and_a_failed_build_are_reported_and_the_rest_is_served(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "data"
    await seed_closed(folder, "broken", 20)
    await seed_closed(folder, "notes")  # enough for a build
    for segment in (folder / "collections" / collection_folder("broken")).glob("gen-1/segments/*/segment.json"):
        segment.write_text("damaged")
    steps = Steps(tmp_path / "steps")
    steps.hold("child-loaded")
    metrics_port = free_port()
    env = {
        "QDRANT_URL": None,
        "QDRANT_LOCAL_PATH": str(folder),
        "OTEL_METRICS_EXPORTER": "prometheus",
        "OTEL_EXPORTER_PROMETHEUS_HOST": "127.0.0.1",
        "OTEL_EXPORTER_PROMETHEUS_PORT": str(metrics_port),
        **steps.env,
    }
    server = spawn_server(tmp_path, env)
    try:
        os.kill(steps.wait("child-loaded"), signal.SIGKILL)  # the build's child dies
        deadline = time.monotonic() + 60
        while "index-build-failed" not in conditions(server):
            assert time.monotonic() < deadline, server.log()
            time.sleep(0.1)
        found = conditions(server)
        assert found["collection-unloadable"]["collection"] == "broken"
        assert "generation 1 failed to load" in found["collection-unloadable"]["detail"]
        assert found["index-build-failed"]["collection"] == "notes"
        assert "killed by SIGKILL" in found["index-build-failed"]["detail"]
        exposition = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
        gauge = {
            sample.labels["qdrant_mcp_storage_condition"]: sample.value
            for family in text_string_to_metric_families(exposition)
            for sample in family.samples
            if sample.name == "qdrant_mcp_storage_conditions"
        }
        assert gauge == {
            "disk-full": 0,
            "collection-unloadable": 1,
            "collection-fell-back": 0,
            "index-build-failed": 1,
            "index-build-skipped": 0,
        }
        async with Client(server.mcp_url) as client:
            listed = await client.call_tool("qdrant-list-collections", {})
            assert listed.structured_content["collections"] == ["notes"]
            broken = await client.call_tool("qdrant-find", {"query": "anything", "collection_name": "broken"})
            assert broken.is_error and "'broken' cannot be loaded" in broken.content[0].text
            stored = await client.call_tool("qdrant-store", {"information": "still served", "collection_name": "notes"})
            assert not stored.is_error
            info = await client.call_tool("qdrant-collection-info", {"collection_name": "notes"})
            assert info.structured_content["points_count"] == BUILD_SIZE + 1
        log = server.log()
        assert "a collection cannot be loaded" in log and "index build failed" in log
    finally:
        assert server.terminate() == 0, server.log()


def temporary_folders(parent: Path) -> list[Path]:
    return sorted(parent.glob(TEMPORARY_PREFIX + "*"))


def test_a_server_that_cannot_start_leaves_no_temporary_folder(tmp_path: Path) -> None:
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        server = spawn_server(tmp_path, {"TMPDIR": str(scratch)}, wait=None, port=taken.getsockname()[1])
        assert server.process.wait(60) != 0
    assert "is in use by another process" in server.log()
    assert temporary_folders(scratch) == []


def test_a_killed_servers_temporary_folder_is_removed_by_the_next_start(tmp_path: Path) -> None:
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    killed = spawn_server(tmp_path, {"TMPDIR": str(scratch)})
    (left,) = temporary_folders(scratch)
    killed.process.kill()
    killed.process.wait()
    assert left.exists()
    server = spawn_server(tmp_path, {"TMPDIR": str(scratch)})
    (own,) = temporary_folders(scratch)
    assert own != left and not left.exists()
    assert server.terminate() == 0
    assert temporary_folders(scratch) == []
