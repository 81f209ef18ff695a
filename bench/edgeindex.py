"""Waiting for our server's background index build to finish, and how finds fare meanwhile.

After bulk writes, Qdrant Edge builds its HNSW index in a child process once writes pause
for 2 s (OPTIMIZE_QUIET_S); `qdrant-collection-info` reports status "yellow" while a build
is being swapped in. The index has settled when the collection is green and no child
process runs, for SETTLED_S in a row: longer than the pause after which a build would start.
While a build is seen, each poll also sends one qdrant-find and times it: searches are served
during a build (tests/server/test_edge.py), and this is how long they take then.
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

from . import procfs
from .driver import LEGACY, call, sdk_client
from .errors import BenchError
from .serverproc import ServerProcess
from .stats import latency_summary

SETTLED_S = 3.0
POLL_S = 0.5
PROBE_QUERY = "a question asked while the index is built"


async def settle(server: ServerProcess, limit_s: float = 1800.0) -> dict[str, Any]:
    """Poll until settled; the last status and points count, the seconds waited, whether a build was seen,
    and the latency of the finds sent during the build (with how many failed)."""
    started = time.perf_counter()
    deadline = started + limit_s
    settled_since: float | None = None
    states: set[str] = set()
    saw_build = False
    info: dict[str, Any] = {}
    finds: list[float] = []
    finds_failed = 0
    async with sdk_client(server.mcp_url, LEGACY, 60) as client:
        while True:
            if time.perf_counter() > deadline:
                raise BenchError(f"the index did not settle within {limit_s} s (last: {info})")
            outcome = await call(client, "qdrant-collection-info", {}, 60)
            status = re.search(r"status (\w+)", outcome.text)
            points = re.search(r"(\d+) points", outcome.text)
            state = status.group(1) if outcome.ok and status else "unknown"
            building = len(procfs.process_tree(server.pid)) > 1
            if building or state == "yellow":
                saw_build = True
                found = await call(client, "qdrant-find", {"query": PROBE_QUERY}, 60)
                if found.ok:
                    finds.append(found.seconds)
                else:
                    finds_failed += 1
            states.add(state)
            info = {"status": state, "points": int(points.group(1)) if points else None}
            now = time.perf_counter()
            if state == "green" and not building:
                settled_since = settled_since or now
                if now - settled_since >= SETTLED_S:
                    break
            else:
                settled_since = None
            await asyncio.sleep(POLL_S)
    waited = max(0.0, time.perf_counter() - started - SETTLED_S)
    return {
        **info,
        "waited_s": round(waited, 1),
        "build_seen": saw_build,
        "states": sorted(states),
        "finds_during_build": {**latency_summary(finds), "failed": finds_failed},
    }
