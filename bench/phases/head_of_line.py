"""Head-of-line blocking: finds while two maximal store-many calls run at once.

The embedding scheduler gives queries their own lane and worker and cuts documents into
bounded runs, so a find should not wait behind bulk writes. Here two 2025-era sessions
each send one maximal qdrant-store-many (1 000 entries x 990 characters); once /readyz
reports both in flight, a third session sends finds one after another until both stores
have returned. Reported: find latency while any store ran and while both did, the find
baseline on the idle server just before, and how long each store-many took.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import httpx

from .. import servers
from .. import workload as w
from ..context import Context
from ..driver import LEGACY, CallOutcome, call, wait_ready
from ..errors import BenchError
from ..progress import log
from ..report import at_most, table, target_row, targets_table
from ..stats import latency_summary
from . import recording_failure

NAME = "head-of-line"
SUMMARY = "find p50/p99 while two maximal store-many calls (1000 x 990 chars each) run in other sessions"
ENTRIES, QUICK_ENTRIES = 1_000, 30
CHARS = 990
BASE_DOCUMENTS, QUICK_BASE_DOCUMENTS = 1_000, 100
BASELINE_FINDS = 30
TARGET_P99_MS = 250.0
CALL_LIMIT_S = 900.0
IN_FLIGHT_WAIT_S = 10.0


async def run(context: Context) -> dict[str, Any]:
    entries = QUICK_ENTRIES if context.quick else ENTRIES
    spec = context.ours()
    server = servers.start(spec, context.log_path("head-of-line"))
    result: dict[str, Any] = {"entries_per_store": entries, "chars_each": CHARS, "errors": 0, "fatal": None}
    with recording_failure(server, result):
        await wait_ready(server, context.options.ready_timeout)
        base = w.documents(context.seed, "hol-base", QUICK_BASE_DOCUMENTS if context.quick else BASE_DOCUMENTS)
        queries = w.queries(context.seed, "hol", BASELINE_FINDS + 20_000, set())
        async with context.connect(server.mcp_url, LEGACY, CALL_LIMIT_S) as finder:
            loaded = await call(finder, "qdrant-store-many", {"entries": base}, CALL_LIMIT_S)
            if not loaded.ok:
                raise BenchError(f"loading the base documents failed: {loaded.text}")
            baseline = [await call(finder, "qdrant-find", {"query": q}) for q in queries[:BASELINE_FINDS]]
            result["baseline"] = latency_summary([o.seconds for o in baseline])
            result["errors"] += sum(not o.ok for o in baseline)
            under = await _under_load(context, server, finder, entries, iter(queries[BASELINE_FINDS:]))
            result["errors"] += under.pop("errors")
            result.update(under)
        result["sigterm"] = server.stop(10.0)
    during = result.get("during_any") or {}
    p99 = during.get("p99_ms")
    result["targets"] = [
        target_row(
            "find p99 while two maximal store-many run (ms)",
            p99,
            "≤ 250 ms",
            at_most(p99, TARGET_P99_MS),
            "" if not context.quick else f"quick run: two store-many of {entries} entries",
        )
    ]
    return result


async def _under_load(context: Context, server: Any, finder: Any, entries: int, queries: Any) -> dict[str, Any]:
    stores: list[tuple[float, CallOutcome]] = []

    async def store(index: int) -> None:
        documents = w.sized_documents(context.seed, f"hol-{index}", entries, CHARS)
        async with context.connect(server.mcp_url, LEGACY, CALL_LIMIT_S) as client:
            started = time.perf_counter()
            stores.append((started, await call(client, "qdrant-store-many", {"entries": documents}, CALL_LIMIT_S)))

    tasks = [asyncio.create_task(store(index)) for index in (1, 2)]
    in_flight = await _wait_in_flight(server.base, 2, tasks)
    finds: list[tuple[bool, CallOutcome]] = []  # (both stores still running at the end, outcome)
    try:
        while not all(task.done() for task in tasks):
            outcome = await call(finder, "qdrant-find", {"query": next(queries)})
            finds.append((not any(task.done() for task in tasks), outcome))
    finally:
        await asyncio.gather(*tasks, return_exceptions=True)
    first_start = min((s for s, _ in stores), default=time.perf_counter())
    durations = [round(o.seconds, 2) for _, o in stores]
    log(f"head-of-line: {len(finds)} finds during the stores ({durations} s), in flight seen {in_flight}")
    return {
        "in_flight_seen": in_flight,
        "store_seconds": durations,
        "stores_ok": [o.ok for _, o in stores],
        "stores_span_s": round(max((s + o.seconds for s, o in stores), default=first_start) - first_start, 2),
        "during_any": latency_summary([o.seconds for _, o in finds]),
        "during_both": latency_summary([o.seconds for both, o in finds if both]),
        "errors": sum(not o.ok for _, o in finds) + sum(not o.ok for _, o in stores),
        "error_samples": [o.text for _, o in finds if not o.ok][:3] + [o.text for _, o in stores if not o.ok][:2],
    }


async def _wait_in_flight(base: str, wanted: int, tasks: list[asyncio.Task[None]]) -> int:
    """Poll /readyz until it counts `wanted` calls in flight (or the stores end, or 10 s pass); the most seen."""
    most = 0
    deadline = time.perf_counter() + IN_FLIGHT_WAIT_S
    async with httpx.AsyncClient(timeout=2.0) as http:
        while time.perf_counter() < deadline and not any(task.done() for task in tasks):
            with contextlib.suppress(httpx.HTTPError, ValueError):
                most = max(most, int((await http.get(base + "/readyz")).json().get("calls_in_flight", 0)))
            if most >= wanted:
                break
            await asyncio.sleep(0.02)
    return most


def markdown(result: dict[str, Any]) -> str:
    rows = []
    for label, key in (
        ("idle server (baseline)", "baseline"),
        ("while any store-many ran", "during_any"),
        ("while both store-many ran", "during_both"),
    ):
        s = result.get(key) or {}
        rows.append([label, s.get("n"), s.get("p50_ms"), s.get("p95_ms"), s.get("p99_ms"), s.get("max_ms")])
    stores = ", ".join(f"{s} s" for s in result.get("store_seconds", [])) or "—"
    return "\n".join(
        [
            f"Two sessions each send one qdrant-store-many of {result['entries_per_store']} x {result['chars_each']} "
            "characters (2025 era, in memory); a third sends finds one after another from when /readyz counts "
            f"both calls in flight (it saw {result.get('in_flight_seen', '—')}) until both have returned. "
            f"Store-many durations: {stores} (both done {result.get('stores_span_s', '—')} s after the first "
            "started).",
            "",
            table(["finds", "n", "p50 ms", "p95 ms", "p99 ms", "max ms"], rows),
            "",
            targets_table(result["targets"]),
        ]
    )
