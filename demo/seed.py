"""Seed a sample collection through the MCP endpoint and show a few tool calls.

Runs as the compose `demo` service (profile `demo`) in the server image, which already has
the `mcp` SDK client. The service's default command (traffic.py) seeds with this module and
then keeps gentle traffic flowing; to seed only:

    docker compose --profile demo run --rm demo /demo/seed.py

It speaks the real protocol (initialize -> tools/list -> tools/call), so it exercises
exactly what an MCP client such as an IDE agent would. Idempotent: the samples are stored
under ids derived from their text, so seeding twice keeps one copy of each.

Env: see client.py (DEMO_MCP_URL or DEMO_MCP_COMMAND, DEMO_TOKEN_FILE / DEMO_TOKEN,
DEMO_COLLECTION, DEMO_TIMEOUT).

Exit status: 0 when every call succeeded, 1 otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import Callable
from typing import Any

import client

SAMPLES: list[dict[str, Any]] = [
    {
        "information": "Qdrant is a vector database written in Rust; it stores points with payloads.",
        "metadata": {"topic": "qdrant", "kind": "fact"},
    },
    {
        "information": "The Model Context Protocol lets AI assistants call tools on servers over JSON-RPC.",
        "metadata": {"topic": "mcp", "kind": "fact"},
    },
    {
        "information": "Grafana shows the MCP server's request rate, errors and latency from Prometheus.",
        "metadata": {"topic": "observability", "kind": "howto"},
    },
    {
        "information": "Remember to water the office plants every Friday afternoon.",
        "metadata": {"topic": "chores", "kind": "reminder"},
    },
    {
        "information": "all-MiniLM-L6-v2 turns a sentence into a 384-dimensional embedding.",
        "metadata": {"topic": "embeddings", "kind": "fact"},
    },
]

QUERIES = ["which database stores vectors?", "what should I do on Fridays?"]


class ReadOnlyServer(RuntimeError):
    """The server registers no store tools (QDRANT_READ_ONLY=true): there is nothing to seed with."""


async def seed(demo: client.Client, say: Callable[[str], None] = print) -> None:
    """Store the samples, then show two finds and the collection's info; raises on any failure."""
    if not demo.writable:
        raise ReadOnlyServer("the server offers no store tools (QDRANT_READ_ONLY=true?): nothing to seed with")
    if "qdrant-store-many" in demo.schemas:
        result = await demo.call_ok("qdrant-store-many", {"entries": SAMPLES})
        say(f"demo: qdrant-store-many -> {client.text(result)[:200]}")
    else:
        for sample in SAMPLES:
            await demo.call_ok("qdrant-store", sample)
        say(f"demo: stored {len(SAMPLES)} memories with qdrant-store")

    for query in QUERIES:
        result = await demo.call_ok("qdrant-find", {"query": query, "limit": 2})
        say(f"demo: qdrant-find {query!r} ->\n{_indent(client.text(result))}")

    if "qdrant-collection-info" in demo.schemas:
        result = await demo.call_ok("qdrant-collection-info", {})
        say(f"demo: qdrant-collection-info ->\n{_indent(client.text(result))}")
    say(f"demo: done; collection {demo.collection_label} is seeded")


def introduce(demo: client.Client, say: Callable[[str], None] = print) -> None:
    say(f"demo: server {demo.server}")
    say(f"demo: {len(demo.tools)} tools: {', '.join(demo.tools)}")


async def run() -> int:
    print(f"demo: connecting to {client.describe()}", flush=True)
    async with client.connect() as demo:
        introduce(demo)
        await seed(demo)
    return 0


def _indent(text: str) -> str:
    with contextlib.suppress(ValueError):
        text = json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    return "\n".join("    " + line for line in text.splitlines()[:40])


def cause(exc: BaseException) -> BaseException:
    """The exception itself, out of the task groups the SDK raises it through."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def failure(exc: BaseException) -> str:
    """One readable line for an exception."""
    exc = cause(exc)
    return f"{type(exc).__name__}: {exc}"


def main() -> int:
    try:
        return asyncio.run(run())
    except Exception as exc:  # one readable line for `docker compose run`
        print(f"demo: FAILED: {failure(exc)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
