"""Free space for the embedded engine: a write that cannot be backed on disk is a signal, not an error.

Qdrant Edge writes through memory maps of sparse files (its 32 MiB WAL segments, vector chunks
and payload pages are made with ftruncate and filled page by page). When the filesystem has
no block left for a page the engine touches, the kernel kills the process with SIGBUS: no
exception, no log line. So the server refuses writes while the free space is below
`MIN_FREE_BYTES` (the watermark), keeps serving reads, and takes writes again as soon as
there is room. What the floor covers (measured with qdrant-edge 0.9.0):

- the largest write one call makes: a maximal qdrant-store-many (1 000 entries, 1 000 000
  characters, hybrid) puts 7.3 MiB on disk (3.9 MiB of WAL, vectors, payload, sparse
  vectors); four-byte characters can double that;
- the next WAL segment (32 MiB), on filesystems without sparse files, where the engine's
  ftruncate allocates it whole;
- what a restart takes before it can serve: small atomic writes (the shard's config) and the
  replay of the WAL's tail.

A start must write a little before it can serve (each collection's load rewrites its config
and replays the WAL's tail), so on a disk that something else filled to the last byte the
collections could not even be opened. The engine therefore keeps a reserve file of its own
(`RESERVE_BYTES`) in the data folder, gives it up when a start finds less than
`LOAD_MARGIN_BYTES` free, and makes it again once there is room: a restart on a full disk
serves what it has, read-only.

On tmpfs (and ramfs), even *reading* a hole of a shared mapping allocates a page, and loading
a shard reads every page of its vector files ("Cached" vector storage): a restart fills the
holes of each collection's last chunk, up to 33 MiB, and died with SIGBUS on a full tmpfs.
There, the holes count as used (`unpopulated_bytes`), so that a restart always finds them
room, and a shard whose holes do not fit is not loaded (`ensure_loadable`).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from ..errors import DiskFull, ServiceError

log = logging.getLogger(__name__)

MIB = 1 << 20
MIN_FREE_BYTES = 64 * MIB
# What loading a shard writes besides filling holes: its config (an atomic write) and the WAL's tail.
LOAD_MARGIN_BYTES = 4 * MIB
# The file given up to make room for a start on a full disk.
RESERVE = ".disk-reserve"
RESERVE_BYTES = 8 * MIB
# Filesystems whose shared mappings allocate a page on a read fault of a hole.
ALLOCATE_ON_READ = frozenset({"tmpfs", "ramfs"})
# The files a shard's load reads through in full (dense vectors kept "Cached", the default):
# measured on tmpfs, a load fills the holes of the dense vector chunks (32 MiB each) and of the
# deleted-flags files (1 MiB), not those of the payload or the sparse vectors' pages.
POPULATED_FILES = ("segments/*/vector_storage*/vectors/chunk_*.mmap", "segments/*/vector_storage*/deleted/flags_*.dat")


@dataclass(frozen=True)
class DiskSpace:
    """Free space on the filesystem holding the engine's data, as the watermark sees it."""

    path: Path  # the data folder
    free_bytes: int  # free for unprivileged writers, less what a restart will allocate (tmpfs)
    min_free_bytes: int  # writes are refused below this

    @property
    def writable(self) -> bool:
        return self.free_bytes >= self.min_free_bytes

    def refusal(self) -> str:
        return (
            f"the disk holding {self.path} has {mib(self.free_bytes)} free, less than the {mib(self.min_free_bytes)} "
            "the embedded engine keeps free so that a write never finds the disk full: writes are refused until "
            "space is freed there (searches go on, and writes resume by themselves)"
        )


def mib(count: int) -> str:
    return f"{max(count, 0) / MIB:.1f} MiB"


def free_bytes(path: Path) -> int:
    """Bytes an unprivileged process can still write on the filesystem holding `path` (root's
    reserve on ext4 excluded: the server may run as root, but must not count on it)."""
    stats = os.statvfs(path)
    return stats.f_bavail * stats.f_frsize


def filesystem_type(path: Path) -> str | None:
    """The type of the filesystem holding `path` (`ext4`, `tmpfs`, ...), from /proc/self/mountinfo;
    None where there is no such file (macOS)."""
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return None
    target = os.path.realpath(path)
    best, found = -1, None
    for line in lines:
        fields, _, rest = line.partition(" - ")
        mount_point = _unescape(fields.split()[4])
        inside = target == mount_point or target.startswith(mount_point.rstrip("/") + "/")
        if inside and len(mount_point) >= best:  # the innermost mount wins (the last one, if stacked)
            best, found = len(mount_point), rest.split()[0]
    return found


def _unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash as octal escapes (\\040 ...)."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def unpopulated_bytes(shards: Iterable[Path]) -> int:
    """Bytes that loading these shards will allocate on a filesystem in ALLOCATE_ON_READ: the holes
    of the files the load reads in full."""
    total = 0
    for shard in shards:
        for chunk in (found for pattern in POPULATED_FILES for found in shard.glob(pattern)):
            try:
                stats = chunk.stat()
            except FileNotFoundError:  # a generation replaced meanwhile
                continue
            total += max(stats.st_size - stats.st_blocks * 512, 0)
    return total


class Watermark:
    """Whether the engine may write: free space on the data folder's disk against MIN_FREE_BYTES;
    and the reserve a start gives up on a full disk (`reserve=False`: a folder no restart opens)."""

    def __init__(
        self, path: Path, shards: Callable[[], Iterable[Path]], *, reserve: bool = True, min_free: int = MIN_FREE_BYTES
    ) -> None:
        self.path = path
        self.min_free = min_free
        self._shards = shards  # the live shards' folders, whose holes a restart fills on tmpfs
        self._allocates_on_read: bool | None = None
        self._reserve = path / RESERVE if reserve else None
        self._reserve_held = False

    def make_room_to_load(self) -> None:
        """Before the collections are opened: give up the reserve when the disk is too full to open them."""
        if self._reserve is None or not self._reserve.exists() or free_bytes(self.path) >= LOAD_MARGIN_BYTES:
            return
        self._reserve.unlink()
        log.warning(
            "the disk holding the data folder is full: gave up the reserve to open the collections; writes are "
            "refused until space is freed there",
            extra={"path": str(self.path), "free": mib(free_bytes(self.path))},
        )

    def _keep_reserve(self, free: int) -> None:
        """Make the reserve when it is missing and the disk has room for it above the floor."""
        if self._reserve is None or self._reserve_held:
            return
        if not self._reserve.exists():
            if free < self.min_free + RESERVE_BYTES:
                return
            try:
                allocate(self._reserve, RESERVE_BYTES)
            except OSError as exc:  # e.g. no fallocate on this filesystem: writes go on without a reserve
                log.warning("no disk reserve can be made in the data folder", extra={"error": str(exc)})
        self._reserve_held = True

    def read(self) -> DiskSpace:
        if self._allocates_on_read is None:  # the folder exists once the engine is open
            self._allocates_on_read = filesystem_type(self.path) in ALLOCATE_ON_READ
        free = free_bytes(self.path)
        if self._allocates_on_read:
            free -= unpopulated_bytes(self._shards())
        return DiskSpace(self.path, free, self.min_free)

    def check(self) -> None:
        """Raise DiskFull, naming the disk and its free space, when a write must be refused; with
        room, make the reserve first if it is missing."""
        space = self.read()
        if not space.writable:
            raise DiskFull(space.refusal())
        self._keep_reserve(space.free_bytes)


def allocate(path: Path, size: int) -> None:
    """A file of `size` allocated bytes (not a sparse one), written whole or not at all."""
    partial = path.with_name(path.name + ".tmp")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.posix_fallocate(descriptor, 0, size)
        os.fsync(descriptor)
    except OSError:
        partial.unlink(missing_ok=True)
        raise
    finally:
        os.close(descriptor)
    partial.replace(path)


def ensure_loadable(shard: Path) -> None:
    """Refuse to load a shard whose load would fill holes the disk has no room for (tmpfs): the
    engine would die of SIGBUS while loading it."""
    if filesystem_type(shard) not in ALLOCATE_ON_READ:
        return
    needed = unpopulated_bytes([shard]) + LOAD_MARGIN_BYTES
    free = free_bytes(shard)
    if free < needed:
        raise ServiceError(
            f"cannot load {shard}: loading it allocates {mib(needed)} on its tmpfs, which has {mib(free)} free; "
            "free space there (or make the tmpfs larger) and start again"
        )
