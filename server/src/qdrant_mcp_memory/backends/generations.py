"""The crash-safety protocol of the embedded engine: a collection's folder and its generations.

    <collection folder>/
        collection.json         {"name": <the exact name>, "generation": N}: the pointer to the live shard
        gen-N/                  the live shard
        gen-N+1.building/       a copy of gen-N being optimized by a child process

An index build copies the live shard, optimizes the copy in a child process (the engine
holds the GIL, so building in-process would freeze the server), replays the writes made
meanwhile onto it, and makes it the live generation. This module owns every step that
touches the folder; `edge.py` (the engine adapter) decides when a build runs and calls it.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import anyio
import anyio.to_thread

from . import diskspace, optimize

if TYPE_CHECKING:
    import qdrant_edge as qe

log = logging.getLogger(__name__)
T = TypeVar("T")
POINTER = "collection.json"


class EngineRunner(Protocol):
    """Runs one engine call in the engine's thread (failures become ServiceErrors)."""

    def __call__(self, call: Callable[..., T], *args: Any) -> Awaitable[T]: ...


@dataclass(eq=False)
class LiveCollection:
    name: str
    folder: Path
    generation: int
    shard: qe.EdgeShard
    write_lock: anyio.Lock = field(default_factory=anyio.Lock)
    writes: int = 0  # a counter: maintenance waits until it stops moving
    maintaining: bool = False
    # While an index is built on a copy, the writes to replay onto it afterwards.
    replay: list[qe.UpdateOperation] | None = None

    @property
    def shard_path(self) -> Path:
        return self.folder / f"gen-{self.generation}"


def load(folder: Path) -> LiveCollection | None:
    """Open the generation the pointer names; None for a folder without a pointer."""
    import qdrant_edge as qe

    pointer = folder / POINTER
    if not pointer.is_file():
        return None
    meta = json.loads(pointer.read_text())
    generation = int(meta["generation"])
    for stale in folder.iterdir():  # builds that did not finish, and generations already replaced
        if stale.is_dir() and stale.name != f"gen-{generation}":
            shutil.rmtree(stale, ignore_errors=True)
    diskspace.ensure_loadable(folder / f"gen-{generation}")  # a load that cannot fit would die of SIGBUS
    shard = qe.EdgeShard.load(str(folder / f"gen-{generation}"))
    return LiveCollection(meta["name"], folder, generation, shard)


def create(folder: Path, name: str, config: qe.EdgeConfig) -> LiveCollection:
    """A new collection at generation 1 (a creation that did not finish is started over)."""
    import qdrant_edge as qe

    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    shard = qe.EdgeShard.create(str(folder / "gen-1"), config)
    write_json(folder / POINTER, {"name": name, "generation": 1})
    return LiveCollection(name, folder, 1, shard)


async def rebuild_index(collection: LiveCollection, run: EngineRunner) -> None:
    """Build the HNSW index on a copy in a child process, then make the copy the live generation."""
    building = collection.folder / f"gen-{collection.generation + 1}.building"
    async with collection.write_lock:
        await run(collection.shard.flush)
        await anyio.to_thread.run_sync(_copy_shard, collection.shard_path, building)
        collection.replay = []
    started = anyio.current_time()
    try:
        result = await anyio.run_process(
            [sys.executable, "-m", "qdrant_mcp_memory.backends.optimize", str(building)], check=False
        )
        if result.returncode == optimize.NOTHING_TO_DO:
            return
        if result.returncode != 0:
            detail = result.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
            log.warning("index build failed", extra={"collection": collection.name, "error": detail[0]})
            return
        await _swap(collection, building, run)
        log.info(
            "index built",
            extra={"collection": collection.name, "seconds": round(anyio.current_time() - started, 1)},
        )
    finally:
        collection.replay = None
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(lambda: shutil.rmtree(building, ignore_errors=True))


async def _swap(collection: LiveCollection, building: Path, run: EngineRunner) -> None:
    import qdrant_edge as qe

    async with collection.write_lock:
        replay = collection.replay or []
        target = collection.folder / f"gen-{collection.generation + 1}"

        def load_built() -> qe.EdgeShard:
            building.rename(target)
            shard = qe.EdgeShard.load(str(target))
            for operation in replay:
                shard.update(operation)
            return shard

        shard = await run(load_built)
        old, old_path = collection.shard, collection.shard_path
        collection.shard, collection.generation = shard, collection.generation + 1
        await run(
            write_json,
            collection.folder / POINTER,
            {"name": collection.name, "generation": collection.generation},
        )
        await run(old.close)
    await anyio.to_thread.run_sync(lambda: shutil.rmtree(old_path, ignore_errors=True))


def _copy_shard(source: Path, target: Path) -> None:
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target)


def write_json(path: Path, value: dict[str, Any]) -> None:
    """Atomically: a crash leaves the old file or the new one, never half of one."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(value, ensure_ascii=False))
    with open(tmp, "rb") as written:
        os.fsync(written.fileno())
    tmp.replace(path)
