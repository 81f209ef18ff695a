"""Helpers of the embedded engine's fault tests: folders with data in them, the build's named
steps (qdrant_mcp_memory.backends.checkpoints), small filesystems, and reading a folder back.

Data is written through the engine's own backend in-process (random unit vectors: building
an index needs ~8 000 points, which the real model would take minutes to embed here), in
the layout the server reads: the named vector `fast-all-minilm-l6-v2`, payload
{"document": ..., "metadata": {...}}.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import numpy
import pytest

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


@contextlib.contextmanager
def small_filesystem(path: Path, size_mib: int) -> Iterator[Path]:
    """A tmpfs of `size_mib` at `path` (root only: as root, permissions do not stop writes, a full disk does)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small filesystem needs root (CI runs as root)")
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mib}m", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)


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


@dataclass(frozen=True)
class FileCall:
    """One file-system call a traced process made: what, on which paths, and whether it may write."""

    call: str
    paths: tuple[str, ...]
    writes: bool = False


TRACED_CALLS = "openat,fsync,fdatasync,rename,renameat,renameat2,mkdir,mkdirat,unlink,unlinkat,rmdir"
_CALL = re.compile(r"^\d+\s+(?P<call>\w+)\((?P<args>.*)$")
# A path argument: a quoted name, after the folder descriptor it is relative to (`7</a/b>, "c"`).
_PATH_ARGUMENT = re.compile(r'(?:(?:\d+|AT_FDCWD)(?:<(?P<folder>[^>]*)>)?,\s*)?"(?P<name>(?:[^"\\]|\\.)*)"')
_DESCRIPTOR_PATH = re.compile(r"^(?:\d+|AT_FDCWD)<(?P<path>[^>]*)>")


def trace_files(argv: list[str], output: Path, timeout: float = 600) -> list[FileCall]:
    """Run `argv` under `strace -f` (its children too) and return its file-system calls in order.

    strace is a test dependency (scripts/strace installs it): a test that needs it fails without it.
    """
    strace = shutil.which("strace")
    if strace is None:
        pytest.fail("strace is missing: scripts/strace installs it (scripts/test runs it)")
    options = ["-f", "-y", "-qq", "-s", "4096", "--seccomp-bpf", "-o", str(output), "-e", f"trace={TRACED_CALLS}"]
    subprocess.run([strace, *options, *argv], check=True, timeout=timeout)
    calls = []
    for line in output.read_text().splitlines():
        found = _CALL.match(line)
        if found is None or " = -1 " in line:  # a resumed line, or a call that failed
            continue
        call, args = found["call"], found["args"]
        if call in ("fsync", "fdatasync"):
            descriptor = _DESCRIPTOR_PATH.match(args)
            calls.append(FileCall(call, (descriptor["path"],) if descriptor else ()))
        else:
            writes = call != "openat" or any(flag in args for flag in ("O_WRONLY", "O_RDWR", "O_CREAT"))
            paths = tuple(os.path.join(m["folder"] or "", m["name"]) for m in _PATH_ARGUMENT.finditer(args))
            calls.append(FileCall(call, paths, writes))
    return calls
