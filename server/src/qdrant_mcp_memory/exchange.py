"""`qdrant-mcp-memory export` and `import`: memories as JSON Lines, one point per line.

    qdrant-mcp-memory export [--collection NAME]... [--with-vectors] > memories.jsonl
    qdrant-mcp-memory import memories.jsonl [--collection NAME]

The storage is the one the server's settings name (QDRANT_URL, or QDRANT_LOCAL_PATH / the
default folder), so moving a folder to a server is an export with one set of settings and an
import with another. A line:

    {"collection": "notes", "id": "…", "document": "…", "metadata": {…} | null,
     "created_at": "…" | null, "updated_at": "…" | null, "expires_at": "…" | null,
     "other_payload": {…}, "vector": {"name": "fast-…", "model": "…", "values": [ … ]}}

Text and metadata are read and written under the configured payload keys (QDRANT_DOCUMENT_KEY,
QDRANT_METADATA_KEY). `other_payload` holds the payload keys this server does not know, as they are; `vector` is
there with --with-vectors (and only for points that have this server's vector). Import checks
every line before it writes anything (a bad one is named by its number and nothing is
written), writes each point under its id with its times (so importing a file again changes
nothing), and embeds again the points whose vector is absent or was made by another model.
Progress goes to stderr. Exit codes: 0 done; 1 a bad file, or storage or model unusable;
2 invalid settings or arguments.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import anyio

from . import times, validation
from .errors import ServiceError
from .settings import Settings
from .store import Memory, PayloadLayout, Record, Vector, export_records

PROG = "qdrant-mcp-memory"
# Points written per upsert (and embedded per call) on import.
IMPORT_BATCH = 256
# Bad lines named before import gives up reading (all are checked; a broken file may have thousands).
BAD_LINES_SHOWN = 10
FIELDS = frozenset(
    {"collection", "id", "document", "metadata", "created_at", "updated_at", "expires_at", "other_payload", "vector"}
)


class BadFile(Exception):
    """Lines of the file to import are not records; the message names each by its number."""


def main(command: str, argv: list[str]) -> int:
    """`export` or `import` with its arguments."""
    prog = f"{PROG} {command}"
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--env-file", type=Path, help="read settings from this file too (environment variables win)")
    if command == "export":
        parser.add_argument(
            "--collection", action="append", dest="collections", help="only this collection (repeatable)"
        )
        parser.add_argument("--with-vectors", action="store_true", help="write each point's vector too")
    else:
        parser.add_argument("file", help="a JSON Lines file that export wrote (- reads stdin)")
        parser.add_argument("--collection", help="import every line into this collection instead of its own")
    args = parser.parse_args(argv)
    from .cli import command_settings, expected_failure
    from .embeddings import EmbeddingModelError

    settings = command_settings(prog, args.env_file)
    if settings is None:
        return 2
    try:
        if command == "export":
            anyio.run(export, settings, args.collections, args.with_vectors, sys.stdout, _progress)
        else:
            records = read_records(args.file, args.collection, payload_layout(settings))
            anyio.run(import_records, settings, records, _progress)
    except (BadFile, ServiceError, EmbeddingModelError, OSError, BaseExceptionGroup) as exc:
        failure = expected_failure(exc, (BadFile, ServiceError, EmbeddingModelError, OSError))
        if failure is None:
            raise
        print(f"{prog}: {failure}", file=sys.stderr)
        return 1
    return 0


def payload_layout(settings: Settings) -> PayloadLayout:
    """The layout the server reads and writes (QDRANT_DOCUMENT_KEY, QDRANT_METADATA_KEY)."""
    return PayloadLayout(settings.document_key, settings.metadata_key)


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- export ---------------------------------------------------------------------------


async def export(
    settings: Settings,
    only: list[str] | None,
    with_vectors: bool,
    out: IO[str],
    report: Callable[[str], None],
) -> dict[str, int]:
    """Write every live point of the chosen collections (all by default) to `out`; returns the counts."""
    from .app import select_storage

    backend = select_storage(settings).backend
    payloads = payload_layout(settings)
    vector = Vector(settings.vector_name, settings.embedding_model, []) if with_vectors else None
    exported: dict[str, int] = {}
    async with backend.running():
        names = await backend.list_collections()
        missing = sorted(set(only or ()) - set(names))
        if missing:
            raise ServiceError(f"{backend.description} has no collection {', '.join(missing)}")
        for name in [name for name in names if name in only] if only else names:
            total, done = await backend.count(name), 0
            async for page in export_records(backend, payloads, name, vector):
                out.writelines(json.dumps(encode(record), ensure_ascii=False) + "\n" for record in page)
                done += len(page)
                report(f"{name}: {done}/{total} points")
            out.flush()
            exported[name] = done
    report("exported: " + (", ".join(f"{name} ({count} points)" for name, count in exported.items()) or "nothing"))
    return exported


def encode(record: Record) -> dict[str, Any]:
    memory = record.memory
    line: dict[str, Any] = {
        "collection": record.collection,
        "id": memory.id,
        "document": memory.document,
        "metadata": memory.metadata,
        "created_at": memory.created_at,
        "updated_at": memory.updated_at,
        "expires_at": memory.expires_at,
        "other_payload": record.other,
    }
    if record.vector is not None:
        line["vector"] = {"name": record.vector.name, "model": record.vector.model, "values": record.vector.values}
    return line


# -- import ---------------------------------------------------------------------------


def read_records(path: str, collection: str | None, payloads: PayloadLayout) -> list[Record]:
    """Every line of the file as a record, or BadFile naming the bad lines: nothing is written
    unless all of them are good."""
    if collection is not None:
        collection = _checked(validation.collection_name, collection, "--collection")
    if path == "-":
        return parse_lines(sys.stdin, collection, payloads)
    with open(path, encoding="utf-8") as lines:
        return parse_lines(lines, collection, payloads)


def parse_lines(lines: Iterable[str], collection: str | None, payloads: PayloadLayout) -> list[Record]:
    records: list[Record] = []
    bad: list[str] = []
    seen: dict[tuple[str, validation.PointId], int] = {}
    for number, line in _numbered(lines):
        try:
            record = decode(json.loads(line), collection, payloads)
        except (ValueError, RecursionError) as exc:
            bad.append(f"line {number}: {_reason(exc)}")
            continue
        key = (record.collection, record.memory.id)
        if key in seen:
            bad.append(f"line {number}: point {record.memory.id} of {record.collection!r} is on line {seen[key]} too")
            continue
        seen[key] = number
        records.append(record)
    if bad:
        more = f" (and {len(bad) - BAD_LINES_SHOWN} more)" if len(bad) > BAD_LINES_SHOWN else ""
        raise BadFile(f"nothing was imported: {'; '.join(bad[:BAD_LINES_SHOWN])}{more}")
    return records


def _numbered(lines: Iterable[str]) -> Iterator[tuple[int, str]]:
    """The non-blank lines with their numbers (from 1); a line that is not UTF-8 stops the read (OSError)."""
    try:
        for number, line in enumerate(lines, 1):
            if line.strip():
                yield number, line
    except UnicodeDecodeError as exc:
        raise OSError(f"the file is not UTF-8 text ({exc.reason} at byte {exc.start} of a line)") from None


def _reason(exc: BaseException) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"not JSON ({exc.msg} at column {exc.colno})"
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    return str(exc)


def decode(line: Any, collection: str | None, payloads: PayloadLayout) -> Record:
    """One line as a record; ValueError says what is wrong with it."""
    if not isinstance(line, dict):
        raise ValueError("not a JSON object")
    unknown = sorted(set(line) - FIELDS)
    if unknown:
        raise ValueError(f"unknown field(s) {', '.join(unknown)}; a line has {', '.join(sorted(FIELDS))}")
    if collection is None:
        if "collection" not in line:
            raise ValueError("no collection (or give --collection)")
        collection = _checked(validation.collection_name, _string(line["collection"], "collection"), "collection")
    if "id" not in line:
        raise ValueError("no id")
    point_id = _checked(validation.point_id, line["id"], "id")
    document = _string(line.get("document"), "document")
    if validation.lone_surrogate(document):
        raise ValueError("document contains a lone UTF-16 surrogate, which is not valid Unicode")
    metadata = _checked(validation.metadata, line.get("metadata"), "metadata") if line.get("metadata") else None
    other = line.get("other_payload") or {}
    if not isinstance(other, dict):
        raise ValueError("other_payload must be a JSON object")
    clash = sorted(key for key in other if key in payloads.own_keys)
    if clash:
        raise ValueError(f"other_payload holds {', '.join(clash)}, which are fields of their own")
    memory = Memory(
        point_id,
        document,
        metadata,
        **{key: _time(line.get(key), key) for key in payloads.time_keys},
    )
    return Record(collection, memory, other, _vector(line.get("vector")))


def _checked(check: Callable[[Any], Any], value: Any, what: str) -> Any:
    try:
        return check(value)
    except ValueError as exc:
        message = str(exc)
        raise ValueError(message if message.startswith(what.lstrip("-")) else f"{what}: {message}") from None


def _string(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a string")
    return value


def _time(value: Any, what: str) -> str | None:
    return None if value is None else times.format_time(times.parse_time(value, what=what))


def _vector(value: Any) -> Vector | None:
    if value is None:
        return None
    if not isinstance(value, dict) or set(value) != {"name", "model", "values"}:
        raise ValueError('vector must be {"name": ..., "model": ..., "values": [numbers]}')
    values = value["values"]
    if (
        not isinstance(values, list)
        or not values
        or not all(isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x) for x in values)
    ):
        raise ValueError("vector.values must be a non-empty list of finite numbers")
    return Vector(_string(value["name"], "vector.name"), _string(value["model"], "vector.model"), values)


async def import_records(settings: Settings, records: list[Record], report: Callable[[str], None]) -> dict[str, int]:
    """Write the records (validated already) collection by collection; returns the counts."""
    from .app import select_embeddings, select_storage, store_config
    from .scheduler import EmbeddingScheduler
    from .sparse import Bm25Encoder
    from .store import QdrantStore

    embeddings = select_embeddings(settings)
    scheduler = EmbeddingScheduler(embeddings.model, embeddings.document_workers, bounds=embeddings.bounds)
    backend = select_storage(settings).backend
    store = QdrantStore(backend, scheduler, store_config(settings), Bm25Encoder())
    grouped: dict[str, list[Record]] = {}
    for record in records:
        grouped.setdefault(record.collection, []).append(record)
    async with backend.running(), scheduler.running():
        for name in grouped:
            await store.check_importable(name)
        for name, group in grouped.items():
            for start in range(0, len(group), IMPORT_BATCH):
                await store.restore(name, group[start : start + IMPORT_BATCH])
                report(f"{name}: {min(start + IMPORT_BATCH, len(group))}/{len(group)} points")
    counts = {name: len(group) for name, group in grouped.items()}
    report("imported: " + (", ".join(f"{name} ({count} points)" for name, count in counts.items()) or "nothing"))
    return counts
