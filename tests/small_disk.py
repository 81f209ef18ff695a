"""A small real filesystem for the full-disk tests: a tmpfs mounted for the test, and ballast to fill it.

Mounting needs root: the pipeline runs as root (scripts/test), and a test that needs it fails
rather than skipping when it cannot mount.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


@contextlib.contextmanager
def small_filesystem(path: Path, size_mib: int, inodes: int | None = None) -> Iterator[Path]:
    """A tmpfs of `size_mib` MiB (and at most `inodes` files and folders) at `path`, unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.fail("mounting a small filesystem needs root (scripts/test runs as root)")
    path.mkdir(parents=True, exist_ok=True)
    options = f"size={size_mib}m" + (f",nr_inodes={inodes}" if inodes else "")
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)


def ballast(path: Path, size: int) -> Path:
    """A file of `size` allocated bytes at `path` (remove it to free the space)."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.posix_fallocate(descriptor, 0, size)
    finally:
        os.close(descriptor)
    return path


def fill(path: Path) -> Path:
    """A folder at `path` holding what fills its filesystem: a file written until no space is left,
    then empty files until no file can be made (remove the folder to free both).

    The files matter: on a full tmpfs, small writes to a new file can still succeed (seen on Linux
    6.18), so only a filesystem out of inodes refuses every new file (mount it with `inodes`)."""
    if os.statvfs(path.parent).f_favail > 100_000:
        pytest.fail(f"{path.parent} allows {os.statvfs(path.parent).f_favail} more files: mount it with `inodes`")
    path.mkdir()
    descriptor = os.open(path / "data", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for size in (1 << 20, 4096):  # megabytes, then the last pages
            with contextlib.suppress(OSError):
                while os.write(descriptor, b"\xa5" * size) == size:
                    pass
    finally:
        os.close(descriptor)
    with contextlib.suppress(OSError):
        for number in itertools.count():
            (path / str(number)).touch()
    return path
