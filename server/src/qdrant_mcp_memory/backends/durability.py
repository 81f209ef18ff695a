"""Durable acknowledgement for the embedded engine: group commit on the write-ahead log.

Qdrant Edge's `update()` appends the operation to the shard's write-ahead log (`<shard>/wal/`,
32 MiB segments written through a memory map), applies it, and returns with no sync call at
all (traced: no fsync, fdatasync or msync). The record is then in the page cache: it survives
a crash of the process (the next load replays it) but not a power cut, a kernel panic or a
killed VM. `flush()` makes it durable, but also writes out every segment: about ten msync and
fsync calls, 60-110 ms on this machine's virtual disk, holding the GIL (the whole server
stops meanwhile). A write is as durable as its WAL record, so this module fsyncs the log's
files and folder instead: 15-20 ms, in a thread of its own, without the GIL, while the engine
goes on applying writes.

- `always` (the default): a write is acknowledged once an fsync of the log that started after
  the write was applied has finished. Writes applied while one fsync runs wait for the next,
  which covers them all (group commit): concurrent writes share one sync, so throughput holds.
- `interval`: a write is acknowledged at once, and the log is fsynced at most `interval_s`
  after it: a power cut loses at most that much of what was acknowledged.

The segments themselves are still flushed by the engine when writes pause (edge.py); the log
holds everything since, and the next load replays it.
"""

from __future__ import annotations

import fcntl
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import anyio
import anyio.to_thread
from anyio.abc import TaskGroup

from ..errors import QdrantUnavailable

log = logging.getLogger(__name__)

FsyncMode = Literal["always", "interval"]
# `interval`'s default: a power cut loses at most the last second of acknowledged writes (Redis'
# `appendfsync everysec`); one log sync a second costs a disk well under 2 % of its time.
DEFAULT_INTERVAL_S = 1.0


def fsync(path: Path, *, data_only: bool = False) -> None:
    """fsync a file or folder (`data_only`: fdatasync where there is one, which skips a journal
    commit for a mere mtime change). On macOS F_FULLFSYNC, since its fsync leaves the data in the
    drive's cache; filesystems that do not support it (SMB, some external drives) get fsync, as
    SQLite does."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        if hasattr(fcntl, "F_FULLFSYNC"):
            try:
                fcntl.fcntl(descriptor, fcntl.F_FULLFSYNC)
                return
            except OSError:
                pass
        (os.fdatasync if data_only and hasattr(os, "fdatasync") else os.fsync)(descriptor)
    finally:
        os.close(descriptor)


def sync_log(wal: Path, known: frozenset[str]) -> frozenset[str]:
    """Make everything written to a shard's WAL durable: its segment files, then the folder unless
    its files are those of `known` (the paths synced last time, returned for the next call).
    `first-index` is left out: the engine writes it atomically with fsyncs of its own."""
    paths = set()
    for entry in os.scandir(wal):
        if entry.is_file(follow_symlinks=False) and entry.name != "first-index":
            try:
                fsync(Path(entry.path), data_only=True)
            except FileNotFoundError:  # a segment the engine dropped meanwhile (its records are in the segments)
                continue
            paths.add(entry.path)
    found = frozenset(paths)
    if found != known:  # segments made, renamed or dropped (or a new generation): their names must last too
        fsync(wal)
    return found


@dataclass(eq=False)
class SyncRound:
    """One sync of the log, and the writes that wait for it."""

    done: anyio.Event = field(default_factory=anyio.Event)
    writes: int = 0
    error: OSError | None = None

    async def durable(self) -> None:
        """Return once this sync has made its writes durable; raise if it failed."""
        await self.done.wait()
        if self.error is not None:
            raise QdrantUnavailable(
                f"the write was applied but could not be made durable ({self.error.strerror or self.error}): "
                "check the disk holding the data folder"
            )


class WalSync:
    """Acknowledges one shard's writes by its mode: call `written()` after each write the engine
    applied, and before answering await the round it returns (None: nothing to wait for)."""

    def __init__(self, wal: Callable[[], Path], mode: FsyncMode, interval_s: float, tasks: TaskGroup) -> None:
        self._wal = wal  # the live generation's log (an index build switches generations)
        self.mode = mode
        self.interval_s = interval_s
        self._tasks = tasks
        self._next = SyncRound()  # the sync that will cover the writes applied from now on
        self._syncing = False
        self._synced_files: frozenset[str] = frozenset()  # the log's files when its folder was last synced

    def written(self) -> SyncRound | None:
        """Note a write the engine has applied (call it before any other await): the sync to wait
        for (`always`), or None (`interval`: the sync is scheduled, the answer does not wait)."""
        self._next.writes += 1
        if not self._syncing:
            self._syncing = True
            self._tasks.start_soon(self._sync_rounds)
        return self._next if self.mode == "always" else None

    async def _sync_rounds(self) -> None:
        try:
            while self._next.writes:
                if self.mode == "interval":
                    await anyio.sleep(self.interval_s)
                await self._round()
        finally:
            with anyio.CancelScope(shield=True):  # stopping: what waits for a sync still gets it
                while self._next.writes:
                    await self._round()
            self._syncing = False

    async def _round(self) -> None:
        current, self._next = self._next, SyncRound()  # writes applied from here on wait for the next round
        try:
            self._synced_files = await anyio.to_thread.run_sync(sync_log, self._wal(), self._synced_files)
        except OSError as exc:
            current.error = exc
            log.error("the write-ahead log could not be synced", extra={"error": str(exc)})
        finally:
            current.done.set()
