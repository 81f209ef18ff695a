"""`qdrant-mcp-memory export` / `import`: memories through a JSON Lines file, between engines, as users run them.

An embedded folder written through the store (times, an expiry, metadata, a payload key of
another tool's, a point another tool wrote without times) goes out through `export` and into
a Qdrant server (the stand-in, or the real one in the pipeline) through `import`; every point
must arrive as `migrate` copies it. Then: importing again changes nothing, a bad line stops
the whole import before anything is written, and vectors another model made are not used.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from store_engines import MODEL, VECTOR, LoadedModel, StoreFactory

from qdrant_mcp_memory.backends import Point
from qdrant_mcp_memory.backends.edge import EdgeBackend, EmbeddedConfig
from qdrant_mcp_memory.exchange import parse_lines
from qdrant_mcp_memory.migrate import open_engine
from qdrant_mcp_memory.scheduler import EmbeddingScheduler
from qdrant_mcp_memory.store import SPARSE_VECTOR, Entry, QdrantStore, StoreConfig
from qdrant_mcp_memory.times import now, parse_duration

pytestmark = pytest.mark.anyio
NOTES = [
    ("The Eiffel Tower is in Paris.", {"topic": "travel"}),
    ("Sourdough needs a long fermentation.", {"topic": "food", "rating": 5}),
    ("Photosynthesis turns light into chemical energy.", None),
]
FOREIGN_ID = 424242  # a point another tool wrote: no times, a key of its own


def cli(*args: str, storage: dict[str, str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """The command as a user runs it, with the server's settings naming `storage`."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("QDRANT_")}
    return subprocess.run(
        [sys.executable, "-m", "qdrant_mcp_memory", *args],
        env={**env, **storage},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def edge(folder: Path) -> dict[str, str]:
    return {"QDRANT_LOCAL_PATH": str(folder)}


def server(qdrant_server: tuple[str, str | None]) -> dict[str, str]:
    url, key = qdrant_server
    return {"QDRANT_URL": url, **({"QDRANT_API_KEY": key} if key else {})}


async def written_folder(folder: Path, scheduler: EmbeddingScheduler, collection: str) -> None:
    """An embedded folder as this server and another tool left it."""
    backend = EdgeBackend(EmbeddedConfig(folder))
    async with backend.running():
        store = QdrantStore(backend, scheduler, StoreConfig(vector_name=VECTOR))
        stored = await store.store(collection, [Entry(text, metadata) for text, metadata in NOTES[:2]])
        await store.store(collection, [Entry(*NOTES[2])], expires_at=now() + parse_duration("30d", what="ttl"))
        (first, _) = stored.ids
        (memory,) = (await store.get(collection, [first])).memories
        payload = store.payloads.encode(memory)
        await backend.overwrite_payload(collection, first, {**payload, "tenant": "alice"})
        (vector,) = await scheduler.embed_documents(["A note another tool wrote."])
        foreign = {"document": "A note another tool wrote.", "metadata": {"source": "elsewhere"}, "lang": "en"}
        await backend.upsert(collection, [Point(FOREIGN_ID, {VECTOR: vector}, foreign)])


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True)) / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))


async def points_of(where: str, api_key: str | None, collection: str) -> dict[str, Any]:
    """id -> (payload, vectors to 5 places) of one collection in a folder or on a server."""
    engine = open_engine(where, api_key, target=False)
    found = {}
    async with engine.running():
        offset = None
        while True:
            page = await engine.scroll(collection, offset, 100)
            found.update(
                {str(p.id): (p.payload, {k: [round(x, 5) for x in v] for k, v in p.dense.items()}) for p in page.points}
            )
            if page.next_offset is None:
                return found
            offset = page.next_offset


async def test_a_folder_moves_to_a_server_through_export_and_import_as_through_migrate(
    tmp_path: Path, scheduler: EmbeddingScheduler, qdrant_server: tuple[str, str | None], unique: Any
) -> None:
    folder, notes = tmp_path / "edge", unique("notes")
    await written_folder(folder, scheduler, notes)

    exported = cli("export", "--with-vectors", storage=edge(folder))
    assert exported.returncode == 0, exported.stderr
    lines = [json.loads(line) for line in exported.stdout.splitlines()]
    assert len(lines) == 4 and f"{notes}: 4/4 points" in exported.stderr
    by_id = {line["id"]: line for line in lines}
    foreign = by_id[FOREIGN_ID]
    assert foreign["other_payload"] == {"lang": "en"} and foreign["created_at"] is None
    assert foreign["vector"]["name"] == VECTOR and foreign["vector"]["model"] == MODEL
    tenant = next(line for line in lines if line["other_payload"] == {"tenant": "alice"})
    assert tenant["created_at"] and tenant["document"] == NOTES[0][0] and tenant["metadata"] == NOTES[0][1]
    assert sum(line["expires_at"] is not None for line in lines) == 1

    # Into the server under another name beside migrate's copy: the two collections hold the same points.
    moved = unique("moved")
    file = tmp_path / "memories.jsonl"
    file.write_text(exported.stdout, encoding="utf-8")
    imported = cli("import", str(file), "--collection", moved, storage=server(qdrant_server))
    assert imported.returncode == 0, imported.stderr
    assert f"{moved}: 4/4 points" in imported.stderr
    migrated = subprocess.run(
        [sys.executable, "-m", "qdrant_mcp_memory", "migrate", "--from", str(folder), "--to", qdrant_server[0],
         "--collection", notes],
        env={**os.environ, **({"QDRANT_API_KEY": qdrant_server[1]} if qdrant_server[1] else {})},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert migrated.returncode == 0, migrated.stderr
    url, key = qdrant_server
    through_import = await points_of(url, key, moved)
    assert through_import == await points_of(url, key, notes) == await points_of(str(folder), None, notes)

    # Again: the same ids, nothing added or changed.
    again = cli("import", str(file), "--collection", moved, storage=server(qdrant_server))
    assert again.returncode == 0, again.stderr
    assert await points_of(url, key, moved) == through_import

    # Back from the server into a new folder without vectors: embedded again, the same points.
    back = cli("export", "--collection", moved, storage=server(qdrant_server))
    assert back.returncode == 0 and '"vector"' not in back.stdout, back.stderr
    home = tmp_path / "home"
    returned = cli("import", "-", storage=edge(home), stdin=back.stdout)
    assert returned.returncode == 0, returned.stderr
    arrived = await points_of(str(home), None, moved)
    assert arrived.keys() == through_import.keys()
    for point_id, (payload, vectors) in arrived.items():
        assert payload == through_import[point_id][0]
        assert cosine(vectors[VECTOR], through_import[point_id][1][VECTOR]) > 0.9999


async def test_a_bad_line_stops_the_import_before_anything_is_written(tmp_path: Path) -> None:
    good = {"collection": "notes", "id": 1, "document": "Fine.", "metadata": None}
    lines = [
        good,
        {**good, "id": 2},
        {**good, "id": 3, "created_at": "yesterday"},
        {**good, "id": 2},
        "{not json",
        {**good, "id": 4, "vector": {"name": VECTOR, "model": MODEL, "values": [float("nan")]}},
    ]
    file = tmp_path / "memories.jsonl"
    file.write_text("\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n")
    folder = tmp_path / "edge"

    result = cli("import", str(file), storage=edge(folder))

    assert result.returncode == 1
    (message,) = result.stderr.splitlines()
    assert message.startswith("qdrant-mcp-memory import: nothing was imported: line 3: created_at 'yesterday'")
    assert "line 4: point 2 of 'notes' is on line 2 too" in message
    assert "line 5: not JSON" in message and "line 6: vector.values must be" in message
    assert not folder.exists() or not any(folder.iterdir())


async def test_vectors_another_model_made_are_embedded_again(tmp_path: Path, model: LoadedModel) -> None:
    text = "The standup moved to 10:00."
    (right,) = model.embed_blocking("document", [text])
    elsewhere = [1.0] + [0.0] * (len(right) - 1)
    lines = [
        {
            "collection": "c",
            "id": 1,
            "document": text,
            "vector": {"name": VECTOR, "model": "other", "values": elsewhere},
        },
        {"collection": "c", "id": 2, "document": text, "vector": {"name": VECTOR, "model": MODEL, "values": elsewhere}},
        {"collection": "c", "id": 3, "document": text, "metadata": {"k": 1}},
    ]
    folder = tmp_path / "edge"

    result = cli("import", "-", storage=edge(folder), stdin="".join(json.dumps(line) + "\n" for line in lines))

    assert result.returncode == 0, result.stderr
    points = await points_of(str(folder), None, "c")
    assert cosine(points["1"][1][VECTOR], right) > 0.9999  # another model's: embedded again
    assert points["2"][1][VECTOR] == elsewhere  # this model's: kept as it was
    assert cosine(points["3"][1][VECTOR], right) > 0.9999  # none: embedded
    assert points["3"][0] == {"document": text, "metadata": {"k": 1}}


async def test_export_of_a_collection_that_does_not_exist_says_so(tmp_path: Path) -> None:
    result = cli("export", "--collection", "nowhere", storage=edge(tmp_path / "edge"))
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.strip().endswith("has no collection nowhere")


async def test_an_import_into_a_hybrid_collection_writes_its_bm25_vector_too(
    open_store: StoreFactory, unique: Callable[[str], str]
) -> None:
    notes = unique("hybrid")
    line = {"collection": notes, "id": 1, "document": "Invoice ZX-4417 is overdue.", "created_at": "2026-01-02"}
    async with open_store(hybrid=True) as store:
        await store.store(notes, [Entry("Invoice ZX-4471 was paid.")])
        await store.restore(notes, parse_lines([json.dumps(line)], None, store.payloads))
        (point,) = await store.backend.retrieve(notes, [1], with_vectors=True)
        assert SPARSE_VECTOR in point.sparse and point.payload["created_at"] == "2026-01-02T00:00:00.000000Z"
        found = await store.find(notes, "ZX-4417", 1)
        assert found.mode == "hybrid" and found.hits[0].id == 1
