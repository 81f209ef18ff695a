"""`qdrant-mcp-memory purge-expired [--collection NAME]`: delete expired memories now.

The storage comes from the server's settings (QDRANT_URL, or QDRANT_LOCAL_PATH / the default
folder); no model is loaded. A running server does this on its own every QDRANT_PURGE_INTERVAL
seconds, and reads never return an expired memory anyway; an embedded folder a server has open
is refused (one process at a time), so run this while the server is stopped, or against a
Qdrant server. Exit codes: 0 done, 1 storage unreachable or refused, 2 invalid settings.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import anyio

from .errors import ServiceError
from .settings import Settings

PROG = "qdrant-mcp-memory purge-expired"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Delete expired memories from the storage the settings name (all collections with this "
        "server's vector, or one).",
    )
    parser.add_argument("--collection", help="only this collection")
    parser.add_argument("--env-file", type=Path, help="read settings from this file too (environment variables win)")
    args = parser.parse_args(argv)
    from .cli import command_settings, expected_failure

    settings = command_settings(PROG, args.env_file)
    if settings is None:
        return 2
    try:
        purged = anyio.run(purge, settings, args.collection)
    except (ServiceError, BaseExceptionGroup) as exc:
        failure = expected_failure(exc, (ServiceError,))
        if failure is None:
            raise
        print(f"{PROG}: {failure}", file=sys.stderr)
        return 1
    for name, count in purged.items():
        print(f"{name}: {count} expired memories deleted", flush=True)
    if not purged:
        print("no collection with this server's vector: nothing to do", flush=True)
    return 0


async def purge(settings: Settings, collection: str | None) -> dict[str, int]:
    from .app import select_storage
    from .store.lifecycle import Expiry

    backend = select_storage(settings).backend
    async with backend.running():
        return await Expiry(backend, settings.vector_name).purge(collection)
