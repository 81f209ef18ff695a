"""A full disk (issue 15, item 3), with the data folder on a real small filesystem (a tmpfs).

The engine writes through memory maps: a page it cannot back on disk kills the process with
SIGBUS. The server must refuse writes with a tool error naming the disk while reads go on,
survive a restart on the full disk (serving what it has, read-only), take writes again by
itself once space is freed, and keep every write it acknowledged.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from mcp.client import Client
from small_disk import ballast, small_filesystem

from bench import promtext
from qdrant_mcp_memory.backends import DenseVector, NewCollection, Point, PointId
from qdrant_mcp_memory.backends.diskspace import MIB, MIN_FREE_BYTES, free_bytes, mib
from qdrant_mcp_memory.backends.edge import EdgeBackend, EmbeddedConfig
from support import ServerProcess, free_port, spawn_server

pytestmark = pytest.mark.anyio
COLLECTION = "full-disk"
VECTOR = "fast-all-minilm-l6-v2"
# Room for the collection, the holes loading it fills on tmpfs (its 32 MiB vector chunk and WAL
# segments), its payload indexes, the watermark, and a few calls' worth above it, with room to spare once freed.
DISK_MIB = 192
# Free space left above the watermark before the calls start: a few calls fit, then refusals.
HEADROOM = 4 * MIB
# A call's size on disk is mostly its metadata (not embedded, so the calls stay fast; random, so
# the engine's compression cannot shrink it): 40 x 60 000 characters, ~5 MB with the WAL's copy.
ENTRIES = 40
METADATA_CHARS = 60_000


def entries(call: int) -> list[dict[str, Any]]:
    return [
        {
            "information": f"memory {call}-{i} on a nearly full disk",
            "metadata": {"call": call, "pad": secrets.token_urlsafe(METADATA_CHARS * 3 // 4)},
        }
        for i in range(ENTRIES)
    ]


def prometheus_exporter(port: int) -> dict[str, str]:
    return {
        "OTEL_SDK_DISABLED": "false",
        "OTEL_METRICS_EXPORTER": "prometheus",
        "OTEL_EXPORTER_PROMETHEUS_HOST": "127.0.0.1",
        "OTEL_EXPORTER_PROMETHEUS_PORT": str(port),
        "OTEL_TRACES_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
    }


def disk(server: ServerProcess) -> dict[str, Any]:
    details = server.ready_details()
    assert details["status"] == "ready", details
    return dict(details["disk"])


async def store_many(client: Client, call: int) -> Any:
    return await client.call_tool("qdrant-store-many", {"entries": entries(call), "collection_name": COLLECTION})


async def assert_reads_work(client: Client, points: int) -> None:
    info = await client.call_tool("qdrant-collection-info", {"collection_name": COLLECTION})
    assert not info.is_error, info.content
    assert info.structured_content["points_count"] == points
    found = await client.call_tool("qdrant-find", {"query": "a memory on a full disk", "collection_name": COLLECTION})
    assert not found.is_error and found.structured_content["hits"], found.content


async def stored_ids(folder: Path) -> set[PointId]:
    """Every point id in the folder, read by the engine itself once the server has stopped."""
    ids: set[PointId] = set()
    async with (backend := EdgeBackend(EmbeddedConfig(folder))).running():
        offset: PointId | None = None
        while True:
            page = await backend.scroll(COLLECTION, offset, 1_000)
            ids.update(point.id for point in page.points)
            if (offset := page.next_offset) is None:
                return ids


async def test_a_full_disk_refuses_writes_keeps_reads_survives_a_restart_and_loses_nothing(tmp_path: Path) -> None:
    with small_filesystem(tmp_path / "disk", DISK_MIB) as mounted:
        data = mounted / "data"
        env = {"QDRANT_URL": None, "QDRANT_LOCAL_PATH": str(data)}
        server = spawn_server(tmp_path, env)
        acknowledged: set[PointId] = set()
        async with Client(server.mcp_url) as client:
            first = await store_many(client, 0)  # creates the collection (and its sparse files)
            assert not first.is_error, first.content
            acknowledged.update(first.structured_content["ids"])
            space = disk(server)
            assert space["path"] == str(data) and space["writes"] == "accepted", space
            assert space["free_bytes"] > space["min_free_bytes"] == MIN_FREE_BYTES, space
            # A stranger's Host gets the status only.
            stranger = httpx.get(server.base + "/readyz", headers={"host": "elsewhere.example"})
            assert stranger.json() == {"status": "ready"}
            filler = ballast(mounted / "ballast", space["free_bytes"] - MIN_FREE_BYTES - HEADROOM)

            refusal = None
            for call in range(1, 60):  # the first fits in the headroom; a call is ~5 MB: the headroom fits a few
                result = await store_many(client, call)
                if result.is_error:
                    refusal = result.content[0].text
                    break
                acknowledged.update(result.structured_content["ids"])
            assert refusal is not None, f"{call} calls filled the disk without a refusal"
            assert call > 1, f"the first call was refused, with {mib(HEADROOM)} above the watermark: {refusal}"
            assert str(data) in refusal and "free" in refusal and "writes are refused" in refusal, refusal
            assert server.alive()
            await assert_reads_work(client, len(acknowledged))
            details = server.ready_details()
            assert details["disk"]["writes"] == "refused", details
            assert [c["kind"] for c in details["conditions"]] == ["disk-full"], details

        assert server.terminate() == 0
        # On the still-full disk: serves what it has, read-only; the metrics say so too.
        metrics_port = free_port()
        server = spawn_server(tmp_path, {**env, **prometheus_exporter(metrics_port)})
        async with Client(server.mcp_url) as client:
            await assert_reads_work(client, len(acknowledged))
            refused = await store_many(client, 100)
            assert refused.is_error and str(data) in refused.content[0].text, refused.content
            metrics = promtext.scrape(f"http://127.0.0.1:{metrics_port}/metrics")
            free = promtext.total(metrics, "qdrant_mcp_disk_free_bytes")
            assert 0 < free < promtext.total(metrics, "qdrant_mcp_disk_min_free_bytes") == MIN_FREE_BYTES, metrics

            filler.unlink()  # space comes back: writes resume by themselves
            with anyio.fail_after(30):
                while disk(server)["writes"] == "refused":
                    await anyio.sleep(0.2)
            resumed = await store_many(client, 101)
            assert not resumed.is_error, resumed.content
            acknowledged.update(resumed.structured_content["ids"])
            assert "conditions" not in server.ready_details(), server.ready_details()["conditions"]
        assert server.terminate() == 0
        assert "Traceback" not in server.log()

        missing = acknowledged - await stored_ids(data)
        assert not missing, f"{len(missing)} of {len(acknowledged)} acknowledged points are gone"


async def seed(data: Path, loads: int) -> None:
    """A collection with one point, written in-process and opened `loads` times more."""
    async with (backend := EdgeBackend(EmbeddedConfig(data))).running():
        await backend.create_collection(COLLECTION, NewCollection(DenseVector(VECTOR, 384)))
        await backend.upsert(COLLECTION, [Point(1, {VECTOR: [1.0] + [0.0] * 383}, {"document": "one memory"})])
    for _ in range(loads):
        async with EdgeBackend(EmbeddedConfig(data)).running():
            pass


async def test_a_restart_on_a_disk_filled_by_someone_else_serves_what_it_has_read_only(tmp_path: Path) -> None:
    """Opening a collection writes a little (its config, the WAL's tail): with the disk full to the
    last byte, the server gives up its reserve to open it, serves it, and refuses writes."""
    with small_filesystem(tmp_path / "disk", 128) as mounted:
        data = mounted / "data"
        await seed(data, loads=1)  # loaded once: on tmpfs its holes are filled, a load writes only a little
        ballast(mounted / "ballast", free_bytes(mounted))
        server = spawn_server(tmp_path, {"QDRANT_URL": None, "QDRANT_LOCAL_PATH": str(data)})
        async with Client(server.mcp_url) as client:
            await assert_reads_work(client, 1)
            refused = await store_many(client, 1)
            assert refused.is_error and str(data) in refused.content[0].text, refused.content
        assert server.terminate() == 0
    assert "gave up the reserve" in server.log()


async def test_a_disk_filled_by_someone_else_stops_a_load_before_it_dies_of_sigbus(tmp_path: Path) -> None:
    """On tmpfs, loading a shard fills the holes of its vector chunk (33 MiB, more than the reserve):
    with the disk full to the last byte, the server must say so rather than die of SIGBUS."""
    with small_filesystem(tmp_path / "disk", 128) as mounted:
        data = mounted / "data"
        await seed(data, loads=0)
        ballast(mounted / "ballast", free_bytes(mounted))
        server = spawn_server(tmp_path, {"QDRANT_URL": None, "QDRANT_LOCAL_PATH": str(data)}, wait=None)
        code = server.process.wait(timeout=120)
    assert code > 0, f"exit status {code}:\n{server.log()}"
    assert "cannot load" in server.log() and str(data) in server.log() and "free" in server.log(), server.log()
