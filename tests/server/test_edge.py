"""The embedded engine's own guarantees: folders, locking, and index builds that never block a search."""

from __future__ import annotations

import json
import random
from pathlib import Path

import anyio
import pytest
from store_engines import VECTOR

from qdrant_mcp_memory.backends import DenseVector, NewCollection, Point, Search
from qdrant_mcp_memory.backends.edge import OPTIMIZE_AT_UNINDEXED, EdgeBackend, EmbeddedConfig
from qdrant_mcp_memory.backends.root import collection_folder, folder_kind
from qdrant_mcp_memory.errors import ServiceError

pytestmark = pytest.mark.anyio
DIMENSION = 384


def unit_vector(rng: random.Random) -> list[float]:
    vector = [rng.gauss(0, 1) for _ in range(DIMENSION)]
    norm = sum(x * x for x in vector) ** 0.5
    return [x / norm for x in vector]


@pytest.mark.parametrize(
    "names",
    [
        ["..", ".", "a/b", "a\\b", "with\x00nul", "/etc/passwd", "../escape"],
        ["Notes", "notes", "NOTES"],  # one folder each, even on a case-insensitive filesystem
        ["x" * 255, "é" * 127, "日本語のメモ", "🧠 memories"],
    ],
)
def test_collection_folders_are_safe_and_distinct(names: list[str]) -> None:
    folders = [collection_folder(name) for name in names]
    assert len({folder.lower() for folder in folders}) == len(names)
    for folder in folders:
        assert "/" not in folder and "\\" not in folder and "\x00" not in folder and folder not in (".", "..")
        assert len(folder.encode()) <= 60 and folder == folder.strip()


async def test_odd_collection_names_live_inside_the_root(tmp_path: Path) -> None:
    backend = EdgeBackend(EmbeddedConfig(tmp_path / "root"))
    names = ["../outside", "Notes", "notes", "日本語"]
    async with backend.running():
        for name in names:
            await backend.create_collection(name, NewCollection(DenseVector(VECTOR, DIMENSION)))
        assert await backend.list_collections() == sorted(names)
    assert not (tmp_path / "outside").exists()
    metas = [json.loads(p.read_text())["name"] for p in (tmp_path / "root" / "collections").glob("*/collection.json")]
    assert sorted(metas) == sorted(names)
    async with backend.running():  # reopened: the exact names come back
        assert await backend.list_collections() == sorted(names)


async def test_a_folder_is_opened_by_one_process_only(tmp_path: Path) -> None:
    first, second = EdgeBackend(EmbeddedConfig(tmp_path)), EdgeBackend(EmbeddedConfig(tmp_path))
    async with first.running():
        with pytest.raises(ServiceError, match="in use by another qdrant-mcp-memory process"):
            async with second.running():
                pass


def test_folders_are_told_apart(tmp_path: Path) -> None:
    assert folder_kind(tmp_path / "new") == "missing"
    (tmp_path / "empty").mkdir()
    assert folder_kind(tmp_path / "empty") == "empty"
    local = tmp_path / "local"
    local.mkdir()
    (local / "meta.json").write_text('{"collections": {}, "aliases": {}}')
    assert folder_kind(local) == "local-mode"
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("my files")
    assert folder_kind(other) == "other"


async def test_a_foreign_folder_is_never_taken_over(tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("my files")
    with pytest.raises(ServiceError, match="not empty and not an embedded Qdrant folder"):
        async with EdgeBackend(EmbeddedConfig(other)).running():
            pass
    assert sorted(p.name for p in other.iterdir()) == ["notes.txt"]


@pytest.mark.timeout(300)
async def test_the_index_is_built_in_the_background_while_searches_and_writes_go_on(tmp_path: Path) -> None:
    rng = random.Random(7)
    backend = EdgeBackend(EmbeddedConfig(tmp_path / "data"))
    count = OPTIMIZE_AT_UNINDEXED + 1_000
    async with backend.running():
        await backend.create_collection("big", NewCollection(DenseVector(VECTOR, DIMENSION)))
        for start in range(0, count, 1_000):
            points = [
                Point(i, {VECTOR: unit_vector(rng)}, {"document": f"point {i}", "metadata": None})
                for i in range(start, min(count, start + 1_000))
            ]
            await backend.upsert("big", points)
        # Writes paused: the shard is flushed and an index build starts in a child process.
        with anyio.fail_after(30):
            while (await backend.describe("big")).status != "yellow":
                await anyio.sleep(0.05)
        # Searches are served while the build runs: each one answered with the build still going (one that
        # waited for the build would come back to a green collection). How long they take: python -m bench.
        during_build = 0
        late: list[int] = []
        probe = unit_vector(rng)
        while (await backend.describe("big")).status == "yellow":
            hits = await backend.search("big", Search(VECTOR, probe, 5))
            assert len(hits) == 5
            during_build += (await backend.describe("big")).status == "yellow"
            if len(late) < 20:  # writes during the build are replayed onto the new index
                late.append(count + len(late))
                await backend.upsert("big", [Point(late[-1], {VECTOR: probe}, {"document": "late", "metadata": None})])
            await anyio.sleep(0.02)
        assert during_build > 10, f"only {during_build} searches were answered while the index was being built"
        assert await backend.count("big") == count + len(late)
        assert {point.id for point in await backend.retrieve("big", late)} == set(late)
        shard = backend._collections["big"].shard
        info = await anyio.to_thread.run_sync(shard.info)
        assert info.indexed_vectors_count >= OPTIMIZE_AT_UNINDEXED

    def generations() -> list[str]:
        return sorted(p.name for p in (tmp_path / "data" / "collections").glob("*/gen-*"))

    # The copy is gone; the replaced generation stays until the new one has loaded at a later start.
    assert generations() == ["gen-1", "gen-2"]
    async with backend.running():  # it opens again as it was left
        assert await backend.count("big") == count + len(late)
        assert generations() == ["gen-2"]
