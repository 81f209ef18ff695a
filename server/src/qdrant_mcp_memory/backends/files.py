"""File operations with the guarantees the embedded engine's folders rely on.

Every change that must survive a crash is written, fsynced, and made visible by a rename
whose folder is fsynced too: a power cut leaves the old state or the new one. Copies keep
sparse files sparse (the engine's WAL and memory-mapped files are mostly holes: a full copy
would allocate every hole).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

_CHUNK = 8 << 20


def fsync_path(path: Path) -> None:
    """Make a file's data, or a folder's entries, durable."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def write_json(path: Path, value: dict[str, Any]) -> None:
    """Replace `path` atomically and durably: a crash leaves the old file or the new one, never half of one."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as written:
            written.write(json.dumps(value, ensure_ascii=False))
            written.flush()
            os.fsync(written.fileno())
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_path(path.parent)


def rename(source: Path, target: Path) -> None:
    """Rename within one folder, durably (the folder's new entry is fsynced)."""
    source.rename(target)
    fsync_path(target.parent)


def remove_tree(path: Path, after_first: Callable[[], None] | None = None) -> None:
    """Remove a folder and everything in it (`after_first` runs once the first entry is gone)."""
    if not path.exists():
        return
    entries = sorted(path.iterdir())
    for index, entry in enumerate(entries):
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
        if index == 0 and after_first is not None:
            after_first()
    path.rmdir()


def fsync_tree(path: Path) -> None:
    """Make a folder durable: every file in it, then every folder after its entries.

    The engine's threads go on working in a live folder: its WAL prepares the next segment
    under a temporary name (`wal/tmp-open-N`) and renames it. A file gone since the folder was
    listed was renamed or removed by them; the folder's own fsync, which comes after its
    files', records that, and such a segment holds no acknowledged write yet."""
    for folder, _, names in os.walk(path, topdown=False):
        for name in names:
            try:
                fsync_path(Path(folder) / name)
            except FileNotFoundError:
                continue
        fsync_path(Path(folder))
    fsync_path(path.parent)


def copy_tree_sparse(source: Path, target: Path, after_first: Callable[[], None] | None = None) -> None:
    """Copy a folder's files with their holes (not fsynced: see fsync_tree).

    `target` must not exist. Only the data regions of each file are read and written
    (SEEK_DATA/SEEK_HOLE), so the copy allocates what the source allocates, not its
    apparent size. `after_first` runs once the first file is copied.
    """
    target.mkdir()
    copied = 0
    for folder, names, files in os.walk(source):
        relative = Path(folder).relative_to(source)
        for name in names:
            (target / relative / name).mkdir()
        for name in files:
            _copy_file_sparse(Path(folder) / name, target / relative / name)
            copied += 1
            if copied == 1 and after_first is not None:
                after_first()


def _copy_file_sparse(source: Path, target: Path) -> None:
    reader = os.open(source, os.O_RDONLY)
    try:
        writer = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            size = os.fstat(reader).st_size
            for start, end in _data_regions(reader, size):
                _copy_range(reader, writer, start, end)
            os.ftruncate(writer, size)  # a trailing hole
        finally:
            os.close(writer)
    finally:
        os.close(reader)


def _data_regions(descriptor: int, size: int) -> list[tuple[int, int]]:
    """The [start, end) ranges of a file that hold data; the whole file where holes cannot be found."""
    regions: list[tuple[int, int]] = []
    offset = 0
    while offset < size:
        try:
            start = os.lseek(descriptor, offset, os.SEEK_DATA)
        except OSError as exc:
            if exc.errno == errno.ENXIO:  # only a hole is left
                break
            return [(0, size)]  # a filesystem without SEEK_DATA: copy everything
        end = os.lseek(descriptor, start, os.SEEK_HOLE)
        regions.append((start, end))
        offset = end
    return regions


def _copy_range(reader: int, writer: int, start: int, end: int) -> None:
    offset = start
    in_kernel = hasattr(os, "copy_file_range")  # Linux: no trip through Python (a reflink where supported)
    while offset < end:
        length = min(_CHUNK, end - offset)
        if in_kernel:
            try:
                done = os.copy_file_range(reader, writer, length, offset, offset)
            except OSError as exc:
                if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL):
                    raise
                in_kernel = False  # a filesystem or kernel without it: copy through memory
                continue
        else:
            done = os.pwrite(writer, os.pread(reader, length, offset), offset)
        if done == 0:  # the file shrank under us: nothing more to copy
            return
        offset += done


def allocated_bytes(path: Path) -> int:
    """Bytes a folder's files take on disk (their allocated blocks, not their apparent size)."""
    total = 0
    for folder, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(folder, name)).st_blocks * 512
            except FileNotFoundError:
                continue
    return total
