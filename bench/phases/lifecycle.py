"""What the lifecycle tools cost: find with recency, diversity and collection_names against a plain
find, and qdrant-list and qdrant-get, on one server.

Two collections of the same size are loaded with one qdrant-store-many each (in memory, Qdrant
Edge). One session then makes the calls one after another, the variants interleaved round by
round (plain find, find with recency "7d", with diversity 0.5, with both, across both collections,
a first qdrant-list page, the next page from its cursor, qdrant-get of 10 ids), so a load that comes
and goes on the machine weighs on every variant alike. Reported: p50/p95/p99 per variant and its
p50 as a multiple of the plain find's.
"""

from __future__ import annotations

from typing import Any

from .. import servers
from .. import workload as w
from ..context import Context
from ..driver import LEGACY, CallOutcome, call, wait_ready
from ..errors import BenchError
from ..report import number, table
from ..stats import latency_summary
from . import recording_failure

NAME = "lifecycle"
SUMMARY = "find p50 with recency / diversity / collection_names against a plain find; list and get p50"
DOCUMENTS, QUICK_DOCUMENTS = 1_000, 100
ROUNDS, QUICK_ROUNDS = 200, 10
COLLECTIONS = ("bench-a", "bench-b")
CALL_LIMIT_S = 600.0
GET_IDS = 10
PAGE = 20


async def run(context: Context) -> dict[str, Any]:
    documents = QUICK_DOCUMENTS if context.quick else DOCUMENTS
    rounds = QUICK_ROUNDS if context.quick else ROUNDS
    # Without COLLECTION_NAME (empty counts as unset): collection_names is offered only then.
    spec = context.ours(settings={"COLLECTION_NAME": ""})
    server = servers.start(spec, context.log_path("lifecycle"))
    result: dict[str, Any] = {"documents": documents, "rounds": rounds, "errors": 0, "fatal": None}
    with recording_failure(server, result):
        await wait_ready(server, context.options.ready_timeout)
        async with context.connect(server.mcp_url, LEGACY, CALL_LIMIT_S) as client:
            ids: list[Any] = []
            for collection in COLLECTIONS:
                entries = w.documents(context.seed, f"lifecycle-{collection}", documents)
                loaded = await call(
                    client, "qdrant-store-many", {"entries": entries, "collection_name": collection}, CALL_LIMIT_S
                )
                if not loaded.ok:
                    raise BenchError(f"loading {collection} failed: {loaded.text}")
                ids = ids or _ids(loaded)
            queries = iter(w.queries(context.seed, "lifecycle", rounds * 5 + 10, set()))
            for query in (next(queries) for _ in range(5)):  # warm-up
                await call(client, "qdrant-find", {"query": query, "collection_name": COLLECTIONS[0]})
            outcomes: dict[str, list[CallOutcome]] = {label: [] for label in VARIANTS}
            for round_index in range(rounds):
                cursor = None
                for label in VARIANTS:
                    tool, arguments = _call(label, next(queries) if label.startswith("find") else "", ids, round_index)
                    if label == "list next page":
                        arguments["cursor"] = cursor
                    outcome = await call(client, tool, arguments)
                    outcomes[label].append(outcome)
                    if label == "list first page" and outcome.ok:
                        cursor = _cursor(outcome)
        result["variants"] = {label: latency_summary([o.seconds for o in found]) for label, found in outcomes.items()}
        result["errors"] = sum(not o.ok for found in outcomes.values() for o in found)
        result["error_samples"] = [o.text for found in outcomes.values() for o in found if not o.ok][:3]
        result["sigterm"] = server.stop(10.0)
    return result


VARIANTS = (
    "find",
    "find recency 7d",
    "find diversity 0.5",
    "find recency + diversity",
    "find collection_names (2)",
    "list first page",
    "list next page",
    "get 10 ids",
)


def _call(label: str, query: str, ids: list[Any], round_index: int) -> tuple[str, dict[str, Any]]:
    one = {"collection_name": COLLECTIONS[0]}
    if label == "find":
        return "qdrant-find", {"query": query, **one}
    if label == "find recency 7d":
        return "qdrant-find", {"query": query, "recency": "7d", **one}
    if label == "find diversity 0.5":
        return "qdrant-find", {"query": query, "diversity": 0.5, **one}
    if label == "find recency + diversity":
        return "qdrant-find", {"query": query, "recency": "7d", "diversity": 0.5, **one}
    if label == "find collection_names (2)":
        return "qdrant-find", {"query": query, "collection_names": list(COLLECTIONS)}
    if label.startswith("list"):
        return "qdrant-list", {"limit": PAGE, **one}
    start = (round_index * GET_IDS) % max(1, len(ids) - GET_IDS)
    return "qdrant-get", {"ids": ids[start : start + GET_IDS], **one}


def _ids(outcome: CallOutcome) -> list[Any]:
    structured = outcome.structured or {}
    return list(structured.get("ids", []))


def _cursor(outcome: CallOutcome) -> str | None:
    return (outcome.structured or {}).get("next_cursor")


def markdown(result: dict[str, Any]) -> str:
    variants = result.get("variants") or {}
    plain = (variants.get("find") or {}).get("p50_ms")
    rows = []
    for label, summary in variants.items():
        p50 = summary.get("p50_ms")
        times = number(p50 / plain, 2) + " x" if isinstance(p50, float) and plain else "—"
        rows.append([label, summary.get("n"), p50, summary.get("p95_ms"), summary.get("p99_ms"), times])
    return "\n".join(
        [
            f"One session, {result['rounds']} rounds of every call in turn, on two in-memory collections of "
            f"{result['documents']} documents each (Qdrant Edge). Recency and diversity re-rank the "
            "nearest 50 candidates; collection_names searches both collections with one query embedding.",
            "",
            table(["call", "n", "p50 ms", "p95 ms", "p99 ms", "p50 vs plain find"], rows),
        ]
    )
