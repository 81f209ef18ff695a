"""Helpers of the embedded engine's fault tests: folders with data in them, the build's named
steps (qdrant_mcp_memory.backends.checkpoints), and reading a folder back.

Data is written through the engine's own backend in-process (random unit vectors: building
an index needs ~8 000 points, which the real model would take minutes to embed here), in
the layout the server reads: the named vector `fast-all-minilm-l6-v2`, payload
{"document": ..., "metadata": {...}}.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import anyio
import numpy

from qdrant_mcp_memory.backends import DenseVector, NewCollection, Point, PointId
from qdrant_mcp_memory.backends.checkpoints import STEPS_ENV
from qdrant_mcp_memory.backends.edge import OPTIMIZE_AT_UNINDEXED, EdgeBackend, EmbeddedConfig

VECTOR = "fast-all-minilm-l6-v2"
DIMENSION = 384
# Enough unindexed points for an index build to start once writes pause.
BUILD_SIZE = OPTIMIZE_AT_UNINDEXED + 500


def seed_payload(index: int) -> dict[str, Any]:
    return {"document": f"seeded point {index}", "metadata": {"i": index}}


def seeded_points(start: int, count: int, seed: int = 0) -> list[Point]:
    vectors = numpy.random.default_rng(seed + start).standard_normal((count, DIMENSION), dtype=numpy.float32)
    vectors /= numpy.linalg.norm(vectors, axis=1, keepdims=True)
    return [Point(start + i, {VECTOR: row.tolist()}, seed_payload(start + i)) for i, row in enumerate(vectors)]


async def seed(backend: EdgeBackend, collection: str, count: int = BUILD_SIZE, start: int = 0) -> None:
    """Create `collection` if needed and write points start..start+count-1 (ids = their index)."""
    await backend.create_collection(collection, NewCollection(DenseVector(VECTOR, DIMENSION)))
    for low in range(start, start + count, 1_000):
        await backend.upsert(collection, seeded_points(low, min(1_000, start + count - low)))


async def seed_closed(folder: Path, collection: str, count: int = BUILD_SIZE, start: int = 0) -> None:
    """Write points into a closed folder, and close it (a build the writes started is abandoned)."""
    async with (backend := EdgeBackend(EmbeddedConfig(folder))).running():
        await seed(backend, collection, count, start)


def seed_folder(folder: Path, collection: str, count: int = BUILD_SIZE, start: int = 0) -> None:
    """`seed_closed`, outside an event loop."""
    anyio.run(seed_closed, folder, collection, count, start)


async def all_points(backend: EdgeBackend, collection: str) -> dict[PointId, dict[str, Any]]:
    """Every point's payload, by id."""
    found: dict[PointId, dict[str, Any]] = {}
    offset: PointId | None = None
    while True:
        page = await backend.scroll(collection, offset, 1_000)
        found.update({point.id: point.payload for point in page.points})
        if page.next_offset is None:
            return found
        offset = page.next_offset


async def reopened(folder: Path, collection: str) -> dict[PointId, dict[str, Any]]:
    """What a restart finds: the folder opened again by the engine, every point read back."""
    async with (backend := EdgeBackend(EmbeddedConfig(folder))).running():
        return await all_points(backend, collection)


def read_folder(folder: Path, collection: str) -> dict[PointId, dict[str, Any]]:
    """`reopened`, outside an event loop."""
    return anyio.run(reopened, folder, collection)


def generations(folder: Path) -> list[str]:
    """The entries of every collection folder except the pointer (generations, builds, set-asides)."""
    return sorted(p.name for p in (folder / "collections").glob("*/*") if p.name != "collection.json")


class Steps:
    """The named steps of an index build, seen from a test: where a process has got to, and holds."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    @property
    def env(self) -> dict[str, str]:
        return {STEPS_ENV: str(self.folder)}

    def hold(self, *steps: str) -> None:
        for step in steps:
            (self.folder / f"{step}.hold").touch()

    def release(self, step: str) -> None:
        (self.folder / f"{step}.hold").unlink(missing_ok=True)

    def reached(self, step: str) -> int | None:
        """The id of the process that reached `step`, or None if none has yet."""
        try:
            return int((self.folder / f"{step}.reached").read_text())
        except (FileNotFoundError, ValueError):
            return None

    def wait(self, step: str, timeout: float = 240) -> int:
        deadline = time.monotonic() + timeout
        while (pid := self.reached(step)) is None:
            if time.monotonic() > deadline:
                raise AssertionError(f"no process reached step {step!r} within {timeout} s")
            time.sleep(0.02)
        return pid

    def clear(self) -> None:
        for path in self.folder.iterdir():
            path.unlink()


def process_gone(pid: int, timeout: float = 10) -> bool:
    """Whether `pid` ends (or is a zombie) within `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.05)
    return False
