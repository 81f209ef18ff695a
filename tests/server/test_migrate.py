"""`qdrant-mcp-memory migrate`: local-mode folders (as the official server and earlier releases wrote
them) move to the embedded engine, and embedded folders to another engine, verified, nothing deleted."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from mcp.client import Client
from qdrant_client import QdrantClient, models

from qdrant_mcp_memory.backends.root import folder_kind
from qdrant_mcp_memory.migrate import PAUSE_AT_ENV, interrupted_migration, open_engine
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


MIGRATE = [sys.executable, "-m", "qdrant_mcp_memory", "migrate"]


def migrate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*MIGRATE, *args], capture_output=True, text=True, timeout=120)


async def contents(folder: Path) -> dict[str, dict[str, Any]]:
    """Every point of every collection in a local-mode or embedded folder: id -> (payload, vectors to 5 places)."""
    engine = open_engine(str(folder), None, target=False)
    found: dict[str, dict[str, Any]] = {}
    async with engine.running():
        for name in await engine.list_collections():
            points, offset = found.setdefault(name, {}), None
            while True:
                page = await engine.scroll(name, offset, 100)
                for point in page.points:
                    vectors = {key: [round(x, 5) for x in vector] for key, vector in point.dense.items()}
                    points[str(point.id)] = (point.payload, vectors)
                if page.next_offset is None:
                    break
                offset = page.next_offset
    return found


def kill_in_place_migration_at(step: str, folder: Path) -> None:
    """Run `migrate --in-place` until it reaches `step` (the command's test hook pauses it there), then SIGKILL it."""
    process = subprocess.Popen(
        [*MIGRATE, "--in-place", str(folder)],
        env={**os.environ, PAUSE_AT_ENV: step},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    output = []
    for line in process.stdout:
        output.append(line)
        if line.strip() == f"paused at {step}":
            break
    process.kill()
    process.wait()
    process.stdout.close()
    assert output[-1:] == [f"paused at {step}\n"], "".join(output)


async def test_a_local_mode_folder_is_served_as_it_is_until_migrated_in_place(
    start_server: Start, tmp_path: Path, model: object
) -> None:
    folder = tmp_path / "memories"
    ids = local_mode_folder(folder, lambda texts: model.embed_blocking("document", texts))
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


def test_in_place_with_a_collection_is_refused(tmp_path: Path) -> None:
    """Replacing the folder with a part of it would hide the collections left out from the server."""
    result = migrate("--in-place", str(tmp_path / "memories"), "--collection", "notes")
    assert result.returncode == 2 and "--in-place moves every collection" in result.stderr
    assert "--from PATH --to NEW --collection NAME" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "memories.migrating.json").exists()


def test_an_in_place_migration_that_fails_leaves_nothing_behind(tmp_path: Path, model: object) -> None:
    """Failed, not killed (here: a server still has the folder open): one line, the source untouched, and
    no journal or partial copy that would stop the server from starting."""
    folder = tmp_path / "memories"
    local_mode_folder(folder, lambda texts: model.embed_blocking("document", texts))
    original = tree_digest(folder)
    holder = QdrantClient(path=str(folder))
    try:
        result = migrate("--in-place", str(folder))
    finally:
        holder.close()
    assert result.returncode == 1 and "is already accessed by another instance" in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert interrupted_migration(folder) is None and sorted(p.name for p in tmp_path.iterdir()) == ["memories"]
    assert tree_digest(folder) == original


@pytest.mark.parametrize(
    ("step", "unjournaled"),
    [
        ("copying", False),  # a collection copied, the next one not yet
        ("verified", False),  # the copy verified and flushed; nothing renamed yet
        ("source-kept", False),  # the source renamed away: PATH is missing
        ("source-kept", True),  # the same, left by the command's first version (no journal)
        ("switched", False),  # the copy in place; only the journal is left
    ],
)
async def test_an_interrupted_in_place_migration_is_finished_by_the_command_the_server_names(
    start_server: Start, tmp_path: Path, model: object, step: str, unjournaled: bool
) -> None:
    """SIGKILL `migrate --in-place` at each step: the server refuses to start (creating nothing), naming the
    command that finishes the job; that command finishes it; every point is there, the source is kept as it was."""
    folder = tmp_path / "memories"
    local_mode_folder(folder, lambda texts: model.embed_blocking("document", texts))
    original, points = tree_digest(folder), await contents(folder)
    kill_in_place_migration_at(step, folder)
    if unjournaled:
        (tmp_path / "memories.migrating.json").unlink()
    left = sorted(tmp_path.iterdir())

    server = start_server({"QDRANT_URL": None, "QDRANT_LOCAL_PATH": str(folder)}, wait=None)
    assert server.process.wait(timeout=120) == 1
    errors = [json.loads(line)["message"] for line in server.log().splitlines() if '"error"' in line]
    assert len(errors) == 1 and errors[0].startswith(f"cannot start: an in-place migration of {folder} did not finish")
    assert sorted(tmp_path.iterdir()) == sorted([*left, server.log_path])  # no empty store was made at the missing PATH
    command = re.search(r"run `([^`]+)` to finish it", errors[0])
    assert command is not None, errors[0]

    program, *args = shlex.split(command[1])
    finished = subprocess.run(
        [str(Path(sys.executable).with_name(program)), *args], capture_output=True, text=True, timeout=120
    )
    assert finished.returncode == 0, finished.stdout + finished.stderr
    assert finished.stdout.strip().splitlines()[-1].startswith(f"done: {folder} now holds the embedded engine")
    kept = [path.name for path in tmp_path.iterdir() if path.name.startswith("memories.")]
    assert len(kept) == 1 and kept[0].startswith("memories.local-mode-"), kept  # no copy or journal left
    assert folder_kind(folder) == "edge" and tree_digest(tmp_path / kept[0]) == original
    assert await contents(folder) == points
