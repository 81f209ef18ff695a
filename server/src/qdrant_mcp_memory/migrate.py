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
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import anyio

from .backends import Backend, FieldType, NewCollection
from .backends.edge import EdgeBackend, EmbeddedConfig
from .backends.remote import RemoteBackend, RemoteConfig
from .backends.root import folder_kind
from .errors import ServiceError
from .settings import default_local_path

PAGE = 256
# Payload index types as engines report them -> as this server creates them.
INDEX_KINDS: dict[str, FieldType] = {"keyword": "keyword", "integer": "integer", "float": "float", "bool": "boolean"}


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
    parser.add_argument("--collection", action="append", dest="collections", help="copy only these (repeatable)")
    args = parser.parse_args(argv)
    if args.source is not None and not args.target:
        parser.error("--from needs --to")
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    try:
        if args.in_place is not None:
            path = Path(args.in_place or os.environ.get("QDRANT_LOCAL_PATH") or default_local_path())
            migrate_in_place(path, args.collections, _print)
        else:
            anyio.run(migrate, args.source, args.target, _api_key(args.api_key_file), args.collections, _print)
    except (MigrationError, ServiceError, BaseExceptionGroup) as exc:
        expected = _expected(exc)
        if expected is None:
            raise
        print(f"qdrant-mcp-memory migrate: {expected}", file=sys.stderr)
        return 1
    return 0


def _expected(exc: BaseException) -> BaseException | None:
    """The failure meant for the user, also when the engines' task groups wrapped it."""
    if isinstance(exc, MigrationError | ServiceError):
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


def migrate_in_place(path: Path, only: list[str] | None, report: Callable[[str], None]) -> list[Copied]:
    if folder_kind(path) != "local-mode":
        raise MigrationError(f"{path} is not a qdrant-client local-mode folder; nothing to migrate in place")
    building = path.with_name(path.name + ".migrating")
    if building.exists():
        raise MigrationError(f"{building} exists (an earlier migration did not finish): remove it and run again")
    copied = anyio.run(migrate, str(path), str(building), None, only, report)
    kept = path.with_name(f"{path.name}.local-mode-{time.strftime('%Y%m%d-%H%M%S')}")
    path.rename(kept)
    building.rename(path)
    report(f"done: {path} now holds the embedded engine; the local-mode original is kept at {kept}")
    return copied


@asynccontextmanager
async def _opened(*engines: Backend) -> AsyncIterator[None]:
    async with AsyncExitStack() as stack:
        for engine in engines:
            await stack.enter_async_context(engine.running())
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
        if page.next_offset is None:
            break
        offset = page.next_offset
    written = await target.count(name)
    if written != total:
        raise MigrationError(f"collection {name!r}: {total} points in the source but {written} in the target")
    return Copied(name, written)
