"""`qdrant-mcp-memory migrate`: local-mode folders (as the official server and earlier releases wrote
them) move to the embedded engine, and embedded folders to another engine, verified, nothing deleted."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from mcp.client import Client
from qdrant_client import QdrantClient, models

from qdrant_mcp_memory.backends.root import folder_kind
from support import ServerProcess

pytestmark = pytest.mark.anyio
Start = Callable[..., ServerProcess]
VECTOR = "fast-all-minilm-l6-v2"
NOTES = [
    ("The Eiffel Tower is in Paris.", {"topic": "travel"}),
    ("Sourdough needs a long fermentation.", {"topic": "food", "rating": 5}),
    ("Photosynthesis turns light into chemical energy.", None),
]


def local_mode_folder(path: Path, embed: Callable[[list[str]], list[list[float]]]) -> dict[str, str]:
    """A folder as qdrant-client's local mode writes it (what mcp-server-qdrant's QDRANT_LOCAL_PATH holds)."""
    client = QdrantClient(path=str(path))
    ids = {}
    for collection in ("notes", "archive"):
        client.create_collection(
            collection, vectors_config={VECTOR: models.VectorParams(size=384, distance=models.Distance.COSINE)}
        )
        texts = [text for text, _ in NOTES]
        points = []
        for (text, metadata), vector in zip(NOTES, embed(texts), strict=True):
            point_id = uuid.uuid4().hex
            ids[text] = str(uuid.UUID(point_id))
            points.append(
                models.PointStruct(
                    id=point_id, vector={VECTOR: vector}, payload={"document": text, "metadata": metadata}
                )
            )
        client.upsert(collection, points)
    client.close()
    return ids


def tree_digest(path: Path) -> str:
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file() and p.name != ".lock"):
        digest.update(str(file.relative_to(path)).encode() + file.read_bytes())
    return digest.hexdigest()


def migrate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "qdrant_mcp_memory", "migrate", *args], capture_output=True, text=True, timeout=120
    )


async def test_a_local_mode_folder_is_served_as_it_is_until_migrated_in_place(
    start_server: Start, tmp_path: Path, model: object
) -> None:
    folder = tmp_path / "memories"
    ids = local_mode_folder(folder, lambda texts: model.embed("document", texts))
    original = tree_digest(folder)

    # Before migrating: the old folder keeps working, read-write, with a warning saying what to do.
    server = start_server({"QDRANT_URL": None, "QDRANT_LOCAL_PATH": str(folder)})
    ready = server.ready_details()
    assert ready["storage"].startswith("qdrant-client local mode")
    assert "run `qdrant-mcp-memory migrate`" in server.log()
    async with Client(server.mcp_url) as client:
        found = await client.call_tool("qdrant-find", {"query": "bread baking", "collection_name": "notes"})
        assert found.structured_content["hits"][0]["document"] == NOTES[1][0]
    assert server.terminate() == 0

    result = migrate("--in-place", str(folder))
    assert result.returncode == 0, result.stderr
    assert "notes: 3/3 points" in result.stdout and "verified: archive (3 points), notes (3 points)" in result.stdout
    kept = next(tmp_path.glob("memories.local-mode-*"))
    assert folder_kind(folder) == "edge" and folder_kind(kept) == "local-mode"
    server = start_server({"QDRANT_URL": None, "QDRANT_LOCAL_PATH": str(folder)})
    async with Client(server.mcp_url) as client:
        for text, metadata in NOTES:
            found = await client.call_tool("qdrant-find", {"query": text, "collection_name": "archive", "limit": 1})
            hit = found.structured_content["hits"][0]
            assert (hit["id"], hit["document"], hit["metadata"]) == (ids[text], text, metadata)
    assert "storage" not in server.ready_details()
    assert server.terminate() == 0
    assert tree_digest(kept) == original  # the source is untouched, only renamed


async def test_an_embedded_folder_moves_to_another_engine_and_refuses_to_overwrite(
    start_server: Start, tmp_path: Path
) -> None:
    source = tmp_path / "source"
    server = start_server({"QDRANT_URL": None, "QDRANT_LOCAL_PATH": str(source), "QDRANT_HYBRID_SEARCH": "true"})
    async with Client(server.mcp_url) as client:
        entries = [{"information": text, "metadata": metadata} for text, metadata in NOTES]
        await client.call_tool("qdrant-store-many", {"entries": entries, "collection_name": "notes"})
    assert server.terminate() == 0
    target = tmp_path / "target"
    result = migrate("--from", str(source), "--to", str(target))
    assert result.returncode == 0, result.stderr
    again = migrate("--from", str(source), "--to", str(target))
    assert again.returncode == 1 and "already has notes: nothing was copied" in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1
    server = start_server({"QDRANT_URL": None, "QDRANT_LOCAL_PATH": str(target), "QDRANT_HYBRID_SEARCH": "true"})
    async with Client(server.mcp_url) as client:
        info = await client.call_tool("qdrant-collection-info", {"collection_name": "notes"})
        assert info.structured_content["points_count"] == 3
        assert info.structured_content["sparse_vectors"] == ["bm25"]
        found = await client.call_tool("qdrant-find", {"query": "fermentation", "collection_name": "notes"})
        assert found.structured_content["search"] == "hybrid"
        assert found.structured_content["hits"][0]["document"] == NOTES[1][0]
    assert server.terminate() == 0
    # The source still holds everything (opening an embedded folder only touches the engine's own log files).
    server = start_server({"QDRANT_URL": None, "QDRANT_LOCAL_PATH": str(source)})
    async with Client(server.mcp_url) as client:
        info = await client.call_tool("qdrant-collection-info", {"collection_name": "notes"})
        assert info.structured_content["points_count"] == 3


def test_a_migration_that_cannot_start_says_why_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    for args, words in [
        (("--in-place", str(tmp_path / "nothing")), "not a qdrant-client local-mode folder"),
        (("--from", str(tmp_path / "other"), "--to", str(tmp_path / "t")), "neither a local-mode nor an embedded"),
        (("--from", str(tmp_path / "nothing"), "--to", str(tmp_path / "t")), "holds no collections"),
    ]:
        result = migrate(*args)
        assert result.returncode == 1 and words in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
