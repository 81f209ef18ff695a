"""Write the corpus straight into an engine folder, in the official layout, without MCP.

Run in the interpreter of the server that will open the folder, so the folder is written
by the very engine versions that read it:

    python -m bench.writers edge       FOLDER VECTORS.npy SEED COUNT   # our venv: Qdrant Edge
    python -m bench.writers local-mode FOLDER VECTORS.npy SEED COUNT   # any venv with qdrant-client

Layout: collection `bench`, one named dense vector `fast-all-minilm-l6-v2` (384-d, cosine),
payload {"document": text, "metadata": {...}}. Edge folders are written through the server
package's own `EdgeBackend`, then their HNSW index is built as the server's own builder
(`qdrant_mcp_memory.backends.optimize`) builds it after bulk writes. Local-mode
folders are written with `qdrant_client.QdrantClient(path=...)`. Prints one JSON line of
timings. Imports only numpy, the engine's package and bench.workload (no benchmark deps).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from .workload import corpus_metadata, corpus_text

COLLECTION = "bench"
VECTOR_NAME = "fast-all-minilm-l6-v2"
DIMENSION = 384
BATCH = 1_000
ID_NAMESPACE = uuid.UUID("0b5c6f0e-8a4f-4f55-9d6b-0c2f6d1b7a31")


def point_id(seed: int, index: int) -> str:
    return str(uuid.uuid5(ID_NAMESPACE, f"corpus:{seed}:{index}"))


def payload(seed: int, index: int) -> dict[str, Any]:
    return {"document": corpus_text(seed, index), "metadata": corpus_metadata(seed, index)}


async def write_edge(folder: Path, vectors: Any, seed: int) -> dict[str, Any]:
    from qdrant_mcp_memory.backends import DenseVector, NewCollection, Point
    from qdrant_mcp_memory.backends.edge import EdgeBackend, EmbeddedConfig

    started = time.perf_counter()
    backend = EdgeBackend(EmbeddedConfig(folder))
    async with backend.running():
        await backend.create_collection(COLLECTION, NewCollection(DenseVector(VECTOR_NAME, DIMENSION)))
        for low in range(0, len(vectors), BATCH):
            rows = vectors[low : low + BATCH]
            points = [
                Point(point_id(seed, low + i), {VECTOR_NAME: row.tolist()}, payload(seed, low + i))
                for i, row in enumerate(rows)
            ]
            await backend.upsert(COLLECTION, points)
    # Leaving running() abandoned any index build the writes started: build it now, once.
    written = time.perf_counter()
    timings: dict[str, Any] = {"write_s": round(written - started, 1)}
    timings.update(build_edge_index(folder))
    timings["index_s"] = round(time.perf_counter() - written, 1)
    return timings


def build_edge_index(folder: Path) -> dict[str, Any]:
    """Build the collection's HNSW index in place (the folder is closed); the shard's counts after it."""
    import qdrant_edge

    from qdrant_mcp_memory.backends.root import collection_folder

    collection = folder / "collections" / collection_folder(COLLECTION)
    generation = json.loads((collection / "collection.json").read_text())["generation"]
    # What the server's builder (qdrant_mcp_memory.backends.optimize) does in its child process,
    # without lowering this process's CPU priority: here nothing else waits for the CPU.
    shard = qdrant_edge.EdgeShard.load(str(collection / f"gen-{generation}"))
    try:
        changed = shard.optimize()
        shard.flush()
        info = shard.info()
        counts = {"points": info.points_count, "indexed_vectors": info.indexed_vectors_count}
    finally:
        shard.close()
    return {"index_built": bool(changed), **counts}


def write_local_mode(folder: Path, vectors: Any, seed: int) -> dict[str, Any]:
    from qdrant_client import QdrantClient, models

    started = time.perf_counter()
    client = QdrantClient(path=str(folder))
    try:
        vector = models.VectorParams(size=DIMENSION, distance=models.Distance.COSINE)
        client.create_collection(COLLECTION, vectors_config={VECTOR_NAME: vector})
        for low in range(0, len(vectors), BATCH):
            rows = vectors[low : low + BATCH]
            points = [
                models.PointStruct(
                    id=point_id(seed, low + i), vector={VECTOR_NAME: row.tolist()}, payload=payload(seed, low + i)
                )
                for i, row in enumerate(rows)
            ]
            client.upsert(COLLECTION, points=points, wait=True)
        count = client.count(COLLECTION, exact=True).count
    finally:
        client.close()
    return {"write_s": round(time.perf_counter() - started, 1), "points": count}


def main(argv: list[str]) -> int:
    import numpy

    if len(argv) != 5 or argv[0] not in ("edge", "local-mode"):
        print(__doc__, file=sys.stderr)
        return 2
    kind, folder, vectors_path, seed, count = argv[0], Path(argv[1]), argv[2], int(argv[3]), int(argv[4])
    vectors = numpy.load(vectors_path, mmap_mode="r")[:count]
    if kind == "edge":
        outcome = asyncio.run(write_edge(folder, vectors, seed))
    else:
        outcome = write_local_mode(folder, vectors, seed)
    print(json.dumps(outcome))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
