"""The crash-safety protocol of the embedded engine: a collection's folder and its generations.

    <collection folder>/
        collection.json         the pointer: {"name": <exact name>, "generation": N, "previous": P}
        gen-N/                  the live shard
        gen-P/                  the generation gen-N replaced: kept until gen-N has loaded at a later start
        gen-N+1.<id>.building/  a copy of gen-N that one index build optimizes (a folder unique to it)
        gen-G.unloadable-<t>/   a generation that failed to load, set aside (reported, never deleted)

The pointer decides which generation holds the data. It changes first (written, fsynced,
its folder fsynced); only then does the server switch to the new generation. A failure
before that leaves the old generation live and the new one removed. A new generation is
fsynced before the pointer names it, and the one it replaces stays until the new one has
loaded at a later start: if the newest then fails to load, the previous one is served.
At start, once the live generation has loaded, anything the pointer does not name goes:
builds of earlier processes (dead by then: their children die with them) and replaced
generations. Every step that can be killed is named in `checkpoints`.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import anyio
import anyio.to_thread

from ..errors import QdrantUnavailable
from . import checkpoints, diskspace, files
from .edge_requests import first_line

if TYPE_CHECKING:
    import qdrant_edge as qe

log = logging.getLogger(__name__)
T = TypeVar("T")
POINTER = "collection.json"
SET_ASIDE = ".unloadable-"


class EngineRunner(Protocol):
    """Runs one engine call in the engine's thread (failures become ServiceErrors)."""

    def __call__(self, call: Callable[..., T], *args: Any) -> Awaitable[T]: ...


class Unloadable(Exception):
    """A collection on disk that cannot be served: neither its generation nor the previous one loads."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"collection {name!r} cannot be loaded: {reason}")
        self.name = name
        self.reason = reason


@dataclass(eq=False)
class LiveCollection:
    name: str
    folder: Path
    generation: int
    shard: qe.EdgeShard
    previous: int | None = None  # the generation this one replaced, kept until a later start loads this one
    fell_back: str | None = None  # why an older generation is served, when the newest failed to load
    write_lock: anyio.Lock = field(default_factory=anyio.Lock)
    writes: int = 0  # a counter: maintenance waits until it stops moving
    maintaining: bool = False
    # While an index is built on a copy, the writes to replay onto it afterwards.
    replay: list[qe.UpdateOperation] | None = None

    @property
    def shard_path(self) -> Path:
        return self.folder / f"gen-{self.generation}"


def load(folder: Path) -> LiveCollection | None:
    """Open the generation the pointer names (the previous one if it fails) and clear out the rest.

    None for a folder without a pointer (a creation that did not finish: nothing in it was
    acknowledged). Raises Unloadable, removing nothing, when no generation loads.
    """
    pointer = _read_pointer(folder)
    if pointer is None:
        return None
    name, generation, previous = pointer
    _ensure_loadable(folder, generation)
    try:
        shard = _open(folder, generation)
    except Exception as exc:
        if previous is None:
            raise Unloadable(name, f"generation {generation} failed to load: {first_line(exc)}") from None
        collection = _fall_back(folder, name, generation, previous, first_line(exc))
    else:
        collection = LiveCollection(name, folder, generation, shard)
        if previous is not None:  # gen-N has loaded at a later start: its predecessor can go
            try:
                _write_pointer(folder, name, generation)
            except OSError as exc:
                collection.previous = previous
                log.warning("keeping the previous generation: the pointer cannot be written", extra=_error(exc))
    keep = {POINTER, collection.shard_path.name}
    if collection.previous is not None:
        keep.add(f"gen-{collection.previous}")
    for entry in sorted(folder.iterdir()):
        if entry.name not in keep and SET_ASIDE not in entry.name:
            _remove(entry)
    return collection


def create(folder: Path, name: str, config: qe.EdgeConfig) -> LiveCollection:
    """A new collection at generation 1 (a creation that did not finish is started over)."""
    import qdrant_edge as qe

    if (folder / POINTER).exists():  # a collection this server could not load: never overwritten
        raise QdrantUnavailable(f"collection {name!r} exists on disk but could not be loaded; see /readyz")
    if folder.exists():
        files.remove_tree(folder)
    folder.mkdir(parents=True)
    files.fsync_path(folder.parent)
    shard = qe.EdgeShard.create(str(folder / "gen-1"), config)
    collection = LiveCollection(name, folder, 1, shard)
    shard.flush()
    files.fsync_tree(collection.shard_path)
    _write_pointer(folder, name, 1)
    return collection


def build_folder(collection: LiveCollection) -> Path:
    """Where one build copies the live shard: a name no other build, now or after a restart, uses."""
    token = f"{os.getpid()}-{secrets.token_hex(4)}"
    return collection.folder / f"gen-{collection.generation + 1}.{token}.building"


async def switch(collection: LiveCollection, built: Path, run: EngineRunner) -> None:
    """Make `built` (an optimized copy of the live shard) the live generation, with the writes made
    since the copy; on any failure the old generation stays live and the new one is removed."""
    import qdrant_edge as qe

    async with collection.write_lock:
        old, replaced, stale = collection.shard, collection.generation, collection.previous
        generation = replaced + 1
        target = collection.folder / f"gen-{generation}"
        replay = collection.replay or []
        opened: list[qe.EdgeShard] = []

        def open_built() -> qe.EdgeShard:
            if target.exists():  # left by a switch that failed: no pointer names it
                files.remove_tree(target)
            files.rename(built, target)
            diskspace.ensure_loadable(target)
            shard = qe.EdgeShard.load(str(target))
            opened.append(shard)
            for operation in replay:
                shard.update(operation)
            shard.flush()
            return shard

        with anyio.CancelScope(shield=True):  # from the pointer write on, the switch must complete
            try:
                shard = await run(open_built)
                checkpoints.reached("replayed")
                await anyio.to_thread.run_sync(_write_pointer, collection.folder, collection.name, generation, replaced)
            except BaseException:
                # The old generation stays live. Had the pointer's rename gone through and only
                # its folder's fsync failed, the next start finds no gen-N+1 and falls back to it.
                await anyio.to_thread.run_sync(_discard, opened, target)
                raise
            checkpoints.reached("pointer-written")
            collection.shard, collection.generation, collection.previous = shard, generation, replaced
            checkpoints.reached("switched")
            try:
                await run(old.close)
            except Exception as exc:  # the switch is done; the old shard's files go at the next start
                log.warning("closing the replaced generation failed", extra=_error(exc, collection=collection.name))
    if stale is not None:  # two builds since the last start: the older replaced generation is not needed
        await anyio.to_thread.run_sync(_remove, collection.folder / f"gen-{stale}")


def _read_pointer(folder: Path) -> tuple[str, int, int | None] | None:
    path = folder / POINTER
    if not path.is_file():
        return None
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
        previous = meta.get("previous")
        return str(meta["name"]), int(meta["generation"]), None if previous is None else int(previous)
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise Unloadable(folder.name, f"{path} cannot be read: {first_line(exc)}") from None


def _write_pointer(folder: Path, name: str, generation: int, previous: int | None = None) -> None:
    meta: dict[str, Any] = {"name": name, "generation": generation}
    if previous is not None:
        meta["previous"] = previous
    files.write_json(folder / POINTER, meta)


def _open(folder: Path, generation: int) -> qe.EdgeShard:
    import qdrant_edge as qe

    return qe.EdgeShard.load(str(folder / f"gen-{generation}"))


def _ensure_loadable(folder: Path, generation: int) -> None:
    """A load that cannot fit on the disk (tmpfs) would die of SIGBUS: that is the disk's state, not
    a damaged generation, so it stops the start (diskspace.ensure_loadable) instead of a fall-back."""
    path = folder / f"gen-{generation}"
    if path.is_dir():
        diskspace.ensure_loadable(path)


def _fall_back(folder: Path, name: str, newest: int, previous: int, reason: str) -> LiveCollection:
    """Serve the previous generation; the newest is set aside (renamed, kept) for inspection. The
    pointer must say so before any write reaches it, or a later start would serve the newest again."""
    _ensure_loadable(folder, previous)
    try:
        shard = _open(folder, previous)
    except Exception as exc:
        raise Unloadable(
            name,
            f"generation {newest} failed to load ({reason}), and so did the previous one, {previous} "
            f"({first_line(exc)})",
        ) from None
    failed, aside = folder / f"gen-{newest}", folder / f"gen-{newest}{SET_ASIDE}{int(time.time())}"
    note = (
        f"generation {newest} failed to load ({reason}); serving the previous generation, {previous}: writes "
        "acknowledged after its last index build may be missing"
    )
    try:
        if failed.exists():
            files.rename(failed, aside)
            note += f". The failed generation is kept at {aside}"
        _write_pointer(folder, name, previous)
    except OSError as exc:
        shard.close()
        raise Unloadable(name, f"{note}, but the switch cannot be recorded: {first_line(exc)}") from None
    log.error("collection fell back to its previous generation", extra={"collection": name, "error": note})
    return LiveCollection(name, folder, previous, shard, fell_back=note)


def _discard(opened: list[qe.EdgeShard], target: Path) -> None:
    for shard in opened:
        try:
            shard.close()
        except Exception as exc:
            log.warning("closing an abandoned generation failed", extra=_error(exc))
    try:
        files.remove_tree(target)
    except OSError as exc:  # it is removed at the next start: no pointer names it
        log.warning("removing an abandoned generation failed", extra=_error(exc, path=str(target)))


def _remove(path: Path) -> None:
    try:
        if path.is_dir():
            files.remove_tree(path, after_first=lambda: checkpoints.reached("cleaning"))
        else:
            path.unlink(missing_ok=True)
    except OSError as exc:  # the next start tries again
        log.warning("removing a stale folder failed", extra=_error(exc, path=str(path)))


def _error(exc: BaseException, **context: str) -> dict[str, str]:
    return {**context, "error": first_line(exc)}
