"""`qdrant-mcp-memory migrate`: copy collections between engines, verify them, delete nothing.

    qdrant-mcp-memory migrate --in-place [PATH]        local-mode folder -> embedded engine, same path
    qdrant-mcp-memory migrate --from PATH --to NEW     local-mode or embedded folder -> embedded folder
    qdrant-mcp-memory migrate --from PATH --to URL     embedded (or local-mode) folder -> a Qdrant server

A folder is recognised by its layout (qdrant-client local mode, as the official server and
earlier releases wrote it; or this server's embedded engine); a URL is a Qdrant server
(API key from QDRANT_API_KEY or --api-key-file). Points are copied with their vectors and
payloads unchanged, page by page, with progress; then each collection's point count is
compared with the source's. The source is never modified: `--in-place` writes the new
folder beside it, verifies it, and only then renames the source to `<path>.local-mode-<time>`
and the new folder to `<path>`, so the server's configuration stays the same.

`--in-place` survives being killed at any point. Its journal `<path>.migrating.json`, written
before the copy starts and removed last, names the folder the source will be kept as and
whether the copy `<path>.migrating` was verified (and flushed to disk). While the journal or
the copy exists the server refuses to start, naming the command that finishes the job, which
is the same command run again: an unverified copy is made again from the untouched source; a
verified one is switched in, each rename taking up where the interrupted run stopped. It
moves every collection: the folder is replaced as a whole, so collections left out would
vanish from the server (they would survive only in the kept original).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import anyio

from .backends import Backend, FieldType, NewCollection
from .backends.edge import EdgeBackend, EmbeddedConfig
from .backends.files import write_json
from .backends.remote import RemoteBackend, RemoteConfig
from .backends.root import folder_kind
from .errors import ServiceError
from .settings import default_local_path

PAGE = 256
# Payload index types as engines report them -> as this server creates them.
INDEX_KINDS: dict[str, FieldType] = {"keyword": "keyword", "integer": "integer", "float": "float", "bool": "boolean"}
# A test hook, inert unless set: the fault suite names a step (see _pause_at) to kill the command there.
PAUSE_AT_ENV = "QDRANT_MCP_MEMORY_MIGRATE_PAUSE_AT"


class MigrationError(Exception):
    """The migration cannot start or did not verify; the message says what to do."""


@dataclass(frozen=True)
class Copied:
    collection: str
    points: int


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="qdrant-mcp-memory migrate",
        description="Copy collections between qdrant-client local-mode folders, the embedded engine and Qdrant "
        "servers. Verifies point counts; never deletes or changes the source.",
    )
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument(
        "--in-place",
        nargs="?",
        const="",
        metavar="PATH",
        help="turn a local-mode folder into an embedded one at the same path (default: QDRANT_LOCAL_PATH or "
        f"{default_local_path()}); the original is kept as PATH.local-mode-<time>",
    )
    where.add_argument("--from", dest="source", help="a folder, or a Qdrant server URL")
    parser.add_argument("--to", dest="target", help="a folder (new or empty) or a Qdrant server URL")
    parser.add_argument("--api-key-file", type=Path, help="Qdrant API key for a URL (else QDRANT_API_KEY)")
    parser.add_argument(
        "--collection", action="append", dest="collections", help="with --from: copy only these (repeatable)"
    )
    args = parser.parse_args(argv)
    if args.source is not None and not args.target:
        parser.error("--from needs --to")
    if args.in_place is not None and args.collections:
        parser.error(
            "--in-place moves every collection (the folder is replaced as a whole); to move only some, use "
            "--from PATH --to NEW --collection NAME"
        )
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    try:
        if args.in_place is not None:
            path = Path(args.in_place or os.environ.get("QDRANT_LOCAL_PATH") or default_local_path())
            migrate_in_place(path, _print)
        else:
            anyio.run(migrate, args.source, args.target, _api_key(args.api_key_file), args.collections, _print)
    except (MigrationError, ServiceError, OSError, BaseExceptionGroup) as exc:
        expected = _expected(exc)
        if expected is None:
            raise
        print(f"qdrant-mcp-memory migrate: {expected}", file=sys.stderr)
        return 1
    return 0


def _expected(exc: BaseException) -> BaseException | None:
    """The failure meant for the user (a filesystem's too: a full disk, a permission), also when the
    engines' task groups wrapped it. An interrupted --in-place resumes when run again."""
    if isinstance(exc, MigrationError | ServiceError | OSError):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        return next((found for inner in exc.exceptions if (found := _expected(inner)) is not None), None)
    return None


def _print(message: str) -> None:
    print(message, flush=True)


def _api_key(path: Path | None) -> str | None:
    if path is not None:
        return path.read_text(encoding="utf-8").strip() or None
    return os.environ.get("QDRANT_API_KEY") or None


def open_engine(where: str, api_key: str | None, *, target: bool) -> Backend:
    """The engine a folder or URL holds (a target folder may be new)."""
    if where.startswith(("http://", "https://")):
        return RemoteBackend(RemoteConfig(url=where.rstrip("/"), api_key=api_key))
    path = Path(where).expanduser()
    kind = folder_kind(path)
    if kind == "local-mode":
        if target:
            raise MigrationError(f"{path} is a qdrant-client local-mode folder: migrate into a new folder or a URL")
        return RemoteBackend(RemoteConfig(path=str(path)))
    if kind == "edge" or (target and kind in ("missing", "empty")):
        return EdgeBackend(EmbeddedConfig(path))
    if kind in ("missing", "empty"):
        raise MigrationError(f"{path} holds no collections to migrate")
    raise MigrationError(f"{path} is neither a local-mode nor an embedded Qdrant folder")


async def migrate(
    source: str, target: str, api_key: str | None, only: list[str] | None, report: Callable[[str], None]
) -> list[Copied]:
    source_engine = open_engine(source, api_key, target=False)
    target_engine = open_engine(target, api_key, target=True)
    async with _opened(source_engine, target_engine):
        return await copy_collections(source_engine, target_engine, only, report)


@dataclass(frozen=True)
class InPlace:
    """The folders of an in-place migration of `path`: the copy it builds and its journal, beside it."""

    path: Path

    @property
    def building(self) -> Path:
        return self.path.with_name(self.path.name + ".migrating")

    @property
    def journal(self) -> Path:
        return self.path.with_name(self.path.name + ".migrating.json")

    @property
    def finish_command(self) -> str:
        return f"qdrant-mcp-memory migrate --in-place {shlex.quote(str(self.path))}"

    def read_journal(self) -> dict[str, object] | None:
        try:
            found = json.loads(self.journal.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise MigrationError(f"{self.journal} cannot be read ({exc}): the migration cannot resume") from None
        if not isinstance(found, dict) or not isinstance(found.get("kept"), str):
            raise MigrationError(f"{self.journal} is not a journal this release wrote: the migration cannot resume")
        return found

    def write_journal(self, kept: str, verified: bool) -> None:
        write_json(self.journal, {"kept": kept, "verified": verified})
        _sync_folder(self.path.parent)


def interrupted_migration(path: Path) -> str | None:
    """Why the server must not open `path`: an in-place migration of it was interrupted (what to run,
    exactly), or None. Opening it would serve the wrong data: an empty new store where the source
    was renamed away, or a source whose copy is about to replace it."""
    folders = InPlace(path.absolute())
    left = [found for found in (folders.journal, folders.building) if found.exists()]
    if not left:
        return None
    return (
        f"an in-place migration of {folders.path} did not finish (left from it: {', '.join(map(str, left))}): "
        f"run `{folders.finish_command}` to finish it"
    )


def migrate_in_place(path: Path, report: Callable[[str], None]) -> list[Copied]:
    """Migrate the local-mode folder at `path` into the embedded engine at the same path, or finish
    an interrupted run of this (see the module's docstring)."""
    folders = InPlace(path.absolute())
    journal = folders.read_journal()
    # Without a journal (this command's first version kept none, and renamed only after verifying),
    # a copy beside a source already renamed away is a verified one.
    verified = bool(journal["verified"]) if journal else folders.building.exists() and not folders.path.exists()
    kept = str(journal["kept"]) if journal else f"{folders.path.name}.local-mode-{time.strftime('%Y%m%d-%H%M%S')}"
    if verified:
        report(f"finishing the interrupted migration of {folders.path}: its copy was verified")
        copied: list[Copied] = []
    else:
        copied = _copy_beside(folders, kept, report)
    _switch(folders, folders.path.with_name(kept), report)
    return copied


def _copy_beside(folders: InPlace, kept: str, report: Callable[[str], None]) -> list[Copied]:
    """Copy the source into `building`, verify it, flush it to disk, then mark it verified in the journal."""
    if folder_kind(folders.path) != "local-mode":
        raise MigrationError(f"{folders.path} is not a qdrant-client local-mode folder; nothing to migrate in place")
    if folders.building.exists():
        report(f"removing {folders.building}, the unfinished copy of an interrupted run, to copy again")
        shutil.rmtree(folders.building)
    folders.write_journal(kept, verified=False)
    try:
        copied = anyio.run(migrate, str(folders.path), str(folders.building), None, None, report)
        _sync_tree(folders.building)
    except BaseException:
        # Failed rather than killed: the source is untouched, so leave nothing that stops the server.
        shutil.rmtree(folders.building, ignore_errors=True)
        folders.journal.unlink(missing_ok=True)
        raise
    folders.write_journal(kept, verified=True)
    _pause_at("verified")
    return copied


def _switch(folders: InPlace, kept: Path, report: Callable[[str], None]) -> None:
    """Source to `kept`, copy to `path`, journal removed: each step skipped when an interrupted run did it."""
    path, building = folders.path, folders.building
    if building.exists():
        kind = folder_kind(path)
        if kind == "local-mode":
            path.rename(kept)
            _sync_folder(path.parent)
            _pause_at("source-kept")
        elif kind != "missing":
            raise MigrationError(
                f"{path} holds data again while {building} holds its verified copy (the local-mode original is "
                f"{kept}): nothing was changed; move one of them aside"
            )
        building.rename(path)
        _sync_folder(path.parent)
        _pause_at("switched")
    elif folder_kind(path) != "edge":
        raise MigrationError(f"{building} is gone and {path} is not an embedded folder: nothing was changed")
    folders.journal.unlink(missing_ok=True)
    _sync_folder(path.parent)
    report(f"done: {path} now holds the embedded engine; the local-mode original is kept at {kept}")


def _sync_tree(root: Path) -> None:
    """Flush every file and folder under `root` to disk: the journal must not call a copy verified that a
    power cut could still take away."""
    for folder, _, files in os.walk(root):
        for name in files:
            descriptor = os.open(os.path.join(folder, name), os.O_RDONLY)
            try:
                os.fsync(descriptor)
            finally:
                os.close(descriptor)
        _sync_folder(Path(folder))


def _sync_folder(folder: Path) -> None:
    """Make the renames and new entries in `folder` durable."""
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _pause_at(step: str) -> None:
    """The fault suite's hook: when PAUSE_AT_ENV names `step`, say so and wait here to be killed."""
    if os.environ.get(PAUSE_AT_ENV) == step:
        print(f"paused at {step}", flush=True)
        while True:
            time.sleep(3600)


@asynccontextmanager
async def _opened(*engines: Backend) -> AsyncIterator[None]:
    async with AsyncExitStack() as stack:
        for engine in engines:
            try:
                await stack.enter_async_context(engine.running())
            except RuntimeError as exc:  # qdrant-client's local mode: the folder is open in another process
                raise MigrationError(f"{engine.description} cannot be opened: {exc}") from None
        yield


async def copy_collections(
    source: Backend, target: Backend, only: list[str] | None, report: Callable[[str], None]
) -> list[Copied]:
    names = await source.list_collections()
    if only:
        missing = sorted(set(only) - set(names))
        if missing:
            raise MigrationError(f"{source.description} has no collection {', '.join(missing)}")
        names = [name for name in names if name in only]
    clashes = sorted(set(names) & set(await target.list_collections()))
    if clashes:
        raise MigrationError(f"{target.description} already has {', '.join(clashes)}: nothing was copied")
    report(f"copying {len(names)} collection(s) from {source.description} to {target.description}")
    copied = [await _copy(source, target, name, report) for name in names]
    report(
        "verified: " + ", ".join(f"{c.collection} ({c.points} points)" for c in copied) if copied else "nothing to copy"
    )
    return copied


async def _copy(source: Backend, target: Backend, name: str, report: Callable[[str], None]) -> Copied:
    schema = await source.describe(name)
    if schema is None:
        raise MigrationError(f"collection {name!r} disappeared from {source.description}")
    if len(schema.dense) != 1 or not schema.dense[0].name or schema.dense[0].distance.lower() != "cosine":
        raise MigrationError(
            f"collection {name!r} does not have the layout this server writes (one named cosine vector); "
            "copy it with Qdrant's own tools"
        )
    sparse = schema.sparse[0] if schema.sparse else None
    await target.create_collection(name, NewCollection(schema.dense[0], sparse))
    for key, kind in schema.indexed_fields.items():
        if kind in INDEX_KINDS:
            await target.create_index(name, key, INDEX_KINDS[kind])
    total = await source.count(name)
    done, offset = 0, None
    while True:
        page = await source.scroll(name, offset, PAGE)
        if page.points:
            await target.upsert(name, page.points)
            done += len(page.points)
            report(f"  {name}: {done}/{total} points")
            _pause_at("copying")
        if page.next_offset is None:
            break
        offset = page.next_offset
    written = await target.count(name)
    if written != total:
        raise MigrationError(f"collection {name!r}: {total} points in the source but {written} in the target")
    return Copied(name, written)
