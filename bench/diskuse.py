"""A Qdrant Edge folder's size on disk before and after an index build, and after the next start.

    python -m bench.diskuse FOLDER COUNT      # prints one JSON line

Run in the interpreter of the server under test (the phase `disk-usage` runs it in ours).
Writes COUNT points (random 384-d unit vectors, the corpus' payloads) through the server
package's own `EdgeBackend` and closes it (a build the writes started is abandoned); opens it
again, which builds the index in a child process as a running server does, and closes it once
the collection's pointer names the new generation; opens it once more (the start that lets
the replaced generation go). After each step: `du -sB1` (allocated) and `du -sb` (apparent).
"Logical" is what the points hold: 4 bytes a dimension and the payload as JSON. Uses only
`EdgeBackend`, `EmbeddedConfig` and the pointer file, so an earlier release measures the same way.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .writers import BATCH, COLLECTION, DIMENSION, VECTOR_NAME, payload

BUILD_TIMEOUT_S = 3600


def du(folder: Path) -> dict[str, int]:
    def run(*flags: str) -> int:
        done = subprocess.run(["du", "-s", *flags, str(folder)], capture_output=True, text=True, check=True)
        return int(done.stdout.split()[0])

    return {"allocated": run("-B1"), "apparent": run("-b")}


def built(folder: Path) -> bool:
    """The pointer names a second generation and no build is under way."""
    (pointer,) = folder.glob("collections/*/collection.json")
    generation = int(json.loads(pointer.read_text())["generation"])
    return generation >= 2 and not list(folder.glob("collections/*/*.building"))


async def measure(folder: Path, count: int) -> dict[str, Any]:
    import numpy

    from qdrant_mcp_memory.backends import DenseVector, NewCollection, Point
    from qdrant_mcp_memory.backends.edge import EdgeBackend, EmbeddedConfig

    rng = numpy.random.default_rng(count)
    started = time.perf_counter()
    async with (backend := EdgeBackend(EmbeddedConfig(folder))).running():
        await backend.create_collection(COLLECTION, NewCollection(DenseVector(VECTOR_NAME, DIMENSION)))
        for low in range(0, count, BATCH):
            vectors = rng.standard_normal((min(BATCH, count - low), DIMENSION), dtype=numpy.float32)
            vectors /= numpy.linalg.norm(vectors, axis=1, keepdims=True)
            points = [
                Point(low + i, {VECTOR_NAME: row.tolist()}, payload(count, low + i)) for i, row in enumerate(vectors)
            ]
            await backend.upsert(COLLECTION, points)
    result: dict[str, Any] = {"points": count, "write_s": round(time.perf_counter() - started, 1)}
    result["logical"] = sum(DIMENSION * 4 + len(json.dumps(payload(count, i))) for i in range(count))
    result["before_build"] = du(folder)
    started = time.perf_counter()
    async with EdgeBackend(EmbeddedConfig(folder)).running():  # the build starts once writes pause
        while not await asyncio.to_thread(built, folder):
            if time.perf_counter() - started > BUILD_TIMEOUT_S:
                raise TimeoutError(f"no index build within {BUILD_TIMEOUT_S} s")
            await asyncio.sleep(0.2)
    result["build_s"] = round(time.perf_counter() - started, 1)
    result["after_build"] = du(folder)
    async with EdgeBackend(EmbeddedConfig(folder)).running():
        pass
    result["after_restart"] = du(folder)
    return result


def main(argv: list[str]) -> int:
    if len(argv) != 2 or not argv[1].isdigit():
        print(__doc__, file=sys.stderr)
        return 2
    print(json.dumps(asyncio.run(measure(Path(argv[0]), int(argv[1])))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
