"""The embedded engine's root folder (QDRANT_LOCAL_PATH): what it holds, who has it open, its collections.

    qdrant-mcp-memory.json          marks the folder as this engine's ({"format": ..., "version": 1})
    .lock                           held while a server has the folder open (one process at a time)
    .disk-reserve                   8 MiB given up to open the collections on a full disk (diskspace.py)
    collections/<slug>-<hash>/      one folder a collection (its generations: generations.py)

A collection's folder name derives from a hash of its exact name, so `..`, separators, NUL
or names that differ only in case can never reach or collide on the filesystem. A collection
that cannot be loaded is reported and left as it is; the others are served.

`:memory:` runs in a temporary folder made when the engine opens (not before: a server that
fails to start leaves none) and removed when it closes; a folder left by a process that is
gone (killed) is removed by the next `:memory:` start.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ..errors import ServiceError
from . import files, generations
from .generations import LiveCollection, Unloadable

log = logging.getLogger(__name__)

FORMAT = "qdrant-mcp-memory/edge"
FORMAT_VERSION = 1
MARKER = "qdrant-mcp-memory.json"
LOCK = ".lock"
# What a crash while a new folder was being set up leaves (the marker's temporary file as this
# release and earlier ones name it): such a folder is still a new one.
_SETUP_LEFTOVERS = frozenset({LOCK, MARKER + ".tmp", "qdrant-mcp-memory.tmp"})
TEMPORARY_PREFIX = "qdrant-mcp-memory-"
_TEMPORARY_NAME = re.compile(re.escape(TEMPORARY_PREFIX) + r"(\d+)-\w+")

FolderKind = Literal["missing", "empty", "edge", "local-mode", "other"]


def folder_kind(path: Path) -> FolderKind:
    """What a QDRANT_LOCAL_PATH holds: nothing yet, this engine's layout, qdrant-client local mode, or else."""
    if not path.exists():
        return "missing"
    if not path.is_dir():
        return "other"
    names = {child.name for child in path.iterdir()}
    if names <= _SETUP_LEFTOVERS:
        return "empty"
    if MARKER in names:
        return "edge"
    if "meta.json" in names or "collection" in names:
        return "local-mode"
    return "other"


def collection_folder(name: str) -> str:
    """A folder name for a collection: readable, bounded, and unique to the exact name."""
    slug = re.sub(r"[^a-z0-9_-]+", "_", name.lower()).strip("_")[:40] or "collection"
    return f"{slug}-{hashlib.sha256(name.encode('utf-8')).hexdigest()[:16]}"


@dataclass
class OpenRoot:
    """A root folder this process holds (its lock) and what loading its collections found."""

    path: Path
    lock: int
    collections: dict[str, LiveCollection] = field(default_factory=dict)
    # Collection folders that could not be loaded: left untouched, reported.
    unloadable: dict[Path, Unloadable] = field(default_factory=dict)

    def close(self) -> None:
        os.close(self.lock)


def open_root(path: Path, before_loading: Callable[[], None]) -> OpenRoot:
    """Take the folder (one process at a time), check or write its marker, then (after
    `before_loading`: making room on a full disk) load every collection."""
    kind = folder_kind(path)
    if kind == "local-mode":
        raise ServiceError(f"{path} holds qdrant-client local-mode data; run `qdrant-mcp-memory migrate` to move it")
    if kind == "other":
        raise ServiceError(
            f"{path} is not empty and not an embedded Qdrant folder: point QDRANT_LOCAL_PATH at an empty or new folder"
        )
    path.mkdir(parents=True, exist_ok=True)
    root = OpenRoot(path, _lock(path))
    try:
        marker = path / MARKER
        if kind in ("missing", "empty"):
            files.write_json(marker, {"format": FORMAT, "version": FORMAT_VERSION})
        else:
            found = json.loads(marker.read_text())
            if found.get("format") != FORMAT or found.get("version") != FORMAT_VERSION:
                raise ServiceError(f"{marker} describes {found}, which this release cannot open")
        (path / "collections").mkdir(exist_ok=True)
        before_loading()
        for folder in sorted((path / "collections").iterdir()):
            _load(root, folder)
    except BaseException:
        _close_collections(root)
        root.close()
        raise
    return root


def close_root(root: OpenRoot) -> None:
    """Flush and close every collection, then let the folder go."""
    _close_collections(root)
    root.close()


def make_temporary(parent: Path) -> Path:
    """A new temporary root under `parent`, after removing those of processes that are gone."""
    for folder in parent.glob(TEMPORARY_PREFIX + "*"):
        match = _TEMPORARY_NAME.fullmatch(folder.name)
        if match and folder.is_dir() and not _alive(int(match.group(1))) and _unused(folder):
            with contextlib.suppress(OSError):  # another start may be removing it too
                files.remove_tree(folder)
                log.info("removed the temporary folder of a process that is gone", extra={"path": str(folder)})
    return Path(tempfile.mkdtemp(prefix=f"{TEMPORARY_PREFIX}{os.getpid()}-", dir=parent))


def _load(root: OpenRoot, folder: Path) -> None:
    try:
        collection = generations.load(folder)
    except Unloadable as exc:
        root.unloadable[folder] = exc
    except ServiceError:  # the disk cannot hold a load: the start stops with the reason
        raise
    except Exception as exc:  # whatever it is, the other collections are served
        root.unloadable[folder] = Unloadable(folder.name, f"{type(exc).__name__}: {exc}")
    else:
        if collection is not None:
            root.collections[collection.name] = collection
        return
    problem = root.unloadable[folder]
    log.error(
        "a collection cannot be loaded: it is not served, the others are",
        extra={"collection": problem.name, "path": str(folder), "error": problem.reason},
    )


def _close_collections(root: OpenRoot) -> None:
    for collection in root.collections.values():
        try:
            collection.shard.flush()
            collection.shard.close()
        except Exception as exc:  # closing must go on for the others
            log.warning("closing a collection failed", extra={"collection": collection.name, "error": str(exc)})
    root.collections.clear()


def _lock(path: Path) -> int:
    descriptor = os.open(path / LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(descriptor)
        raise ServiceError(
            f"{path} is in use by another qdrant-mcp-memory process: stop it, or give this one its own "
            "QDRANT_LOCAL_PATH"
        ) from None
    return descriptor


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's
        return True
    return True


def _unused(folder: Path) -> bool:
    """No process holds the folder's lock (a check that also holds across PID namespaces)."""
    try:
        descriptor = os.open(folder / LOCK, os.O_RDWR)
    except FileNotFoundError:
        return True
    except OSError:
        return False
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    finally:
        os.close(descriptor)
    return True
