"""A small real filesystem for the full-disk tests: a tmpfs mounted for the test, and ballast to fill it.

Mounting needs root: the pipeline runs as root (scripts/test), and a test that needs it fails
rather than skipping when it cannot mount.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


@contextlib.contextmanager
def small_filesystem(path: Path, size_mib: int) -> Iterator[Path]:
    """A tmpfs of `size_mib` MiB at `path`, unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.fail("mounting a small filesystem needs root (scripts/test runs as root)")
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mib}m", "tmpfs", str(path)], check=True)
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
    """Write a file at `path` until its filesystem has no space left; remove it to free the space."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for size in (1 << 20, 4096):  # megabytes, then the last pages
            with contextlib.suppress(OSError):
                while os.write(descriptor, b"\xa5" * size) == size:
                    pass
    finally:
        os.close(descriptor)
    return path
