"""Index builds of the embedded engine: whether one may run now, and its steps.

A build copies the live shard (sparse: only the data its files hold), builds the HNSW index
on the copy in a child process (the engine holds the GIL: building in-process would freeze
the server), fsyncs the result and hands it to `generations.switch`. Searches and writes go
on meanwhile; writes are replayed onto the new generation when it takes over.

One build runs at a time across all collections: each takes a core and a copy's worth of
disk. A build that fails, or that would not fit on the disk, never stops serving: it is
logged with its reason, its copy removed, reported as a condition, and not tried again
before a back-off that doubles with each failure in a row, up to a cap.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import anyio
import anyio.to_thread

from . import StorageCondition, checkpoints, diskspace, files, generations, optimize
from .edge_requests import first_line
from .generations import EngineRunner, LiveCollection

log = logging.getLogger(__name__)

RETRY_S = 60.0
RETRY_CAP_S = 3600.0
# Free space a build leaves at least: the engine's next WAL segments (32 MiB each) and some slack.
SPACE_MARGIN = 64 << 20
# Peak extra space of a build, in live shards: the copy, and the optimized segments the child
# writes beside the copied ones before it removes those.
SPACE_FACTOR = 2


class BuildSkipped(Exception):
    """A build that did not start because it would not fit on the disk."""


class BuildFailed(Exception):
    """The child process did not build the index."""


@dataclass
class _Failure:
    count: int  # failures in a row
    reason: str
    retry_at: float  # time.monotonic()
    skipped: bool


def retry_delay(failures: int, first: float = RETRY_S) -> float:
    """Seconds before the next attempt after `failures` failed ones in a row."""
    return float(min(RETRY_CAP_S, first * 2 ** (failures - 1)))


class IndexBuilds:
    def __init__(self, run: EngineRunner, first_retry_s: float = RETRY_S) -> None:
        self._run = run
        self._first_retry_s = first_retry_s
        self._one_at_a_time = anyio.Lock()
        self._failures: dict[str, _Failure] = {}

    def conditions(self) -> list[StorageCondition]:
        found = []
        for name, failure in sorted(self._failures.items()):
            wait = max(0, round(failure.retry_at - time.monotonic()))
            what = "skipped" if failure.skipped else f"failed {failure.count} time(s) in a row"
            found.append(
                StorageCondition(
                    "index-build-skipped" if failure.skipped else "index-build-failed",
                    f"index build {what}: {failure.reason}; next attempt in {wait} s (searches stay "
                    "exact meanwhile: correct, slower on large collections)",
                    name,
                )
            )
        return found

    async def build(self, collection: LiveCollection, due: Callable[[], Awaitable[bool]]) -> float | None:
        """Build the collection's index once no other build runs, if `due()` says so then and no
        back-off is pending. Never raises (but cancellation); returns the seconds until the next
        attempt when this one failed, else None."""
        async with self._one_at_a_time:
            failure = self._failures.get(collection.name)
            if (failure is not None and time.monotonic() < failure.retry_at) or not await due():
                return None
            try:
                await self._build(collection)
            except Exception as exc:
                return self._failed(collection.name, exc)
            self._failures.pop(collection.name, None)
            return None

    def _failed(self, name: str, exc: Exception) -> float:
        count = self._failures[name].count + 1 if name in self._failures else 1
        delay = retry_delay(count, self._first_retry_s)
        reason = str(exc) if isinstance(exc, BuildSkipped | BuildFailed) else f"{type(exc).__name__}: {first_line(exc)}"
        skipped = isinstance(exc, BuildSkipped)
        self._failures[name] = _Failure(count, reason, time.monotonic() + delay, skipped)
        log.warning(
            "index build skipped" if skipped else "index build failed",
            extra={"collection": name, "error": reason, "retry_in_s": delay},
        )
        return delay

    async def _build(self, collection: LiveCollection) -> None:
        live = collection.shard_path
        needed = SPACE_FACTOR * await anyio.to_thread.run_sync(files.allocated_bytes, live) + SPACE_MARGIN
        free = await anyio.to_thread.run_sync(diskspace.free_bytes, collection.folder)
        if free < needed:
            raise BuildSkipped(f"not enough free disk space: it needs {needed >> 20} MiB, {free >> 20} MiB are free")
        building = generations.build_folder(collection)
        started = anyio.current_time()
        log.info("index build started", extra={"collection": collection.name, "path": str(building)})
        try:
            async with collection.write_lock:  # a consistent copy: no write between flush and copy
                await self._run(collection.shard.flush)
                await anyio.to_thread.run_sync(
                    files.copy_tree_sparse, live, building, lambda: checkpoints.reached("copying")
                )
                collection.replay = []
            if not await _optimize(building):
                return
            await anyio.to_thread.run_sync(files.fsync_tree, building)
            checkpoints.reached("built")
            await generations.switch(collection, building, self._run)
            log.info(
                "index built",
                extra={"collection": collection.name, "seconds": round(anyio.current_time() - started, 1)},
            )
        finally:
            collection.replay = None
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(_remove_quietly, building)


async def _optimize(shard: Path) -> bool:
    """Optimize `shard` in a child process; False when there was nothing to build.

    Started from the event loop's thread, which lives as long as the server: the child's
    parent-death signal fires when the thread that started it ends. Its own session keeps a
    Ctrl-C in a terminal from reaching it before the server has stopped it.
    """
    result = await anyio.run_process(
        [sys.executable, "-m", "qdrant_mcp_memory.backends.optimize", str(os.getpid()), str(shard)],
        check=False,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    if result.returncode == optimize.NOTHING_TO_DO:
        return False
    if result.returncode < 0:
        raise BuildFailed(f"the build process was killed by {_signal_name(-result.returncode)}")
    if result.returncode != 0:
        last = result.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
        raise BuildFailed(f"the build process exited with status {result.returncode}: {last[0][:300]}")
    return True


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _remove_quietly(path: Path) -> None:
    try:
        files.remove_tree(path)
    except OSError as exc:  # the next start removes it: no pointer names it
        log.warning("removing a build's copy failed", extra={"path": str(path), "error": str(exc)})
