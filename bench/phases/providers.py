"""Embedding providers: our server with fastembed in its own process vs the openai provider talking
to a real OpenAI-compatible server on loopback, same model, same workload.

The service is Infinity (bench/embedding_server.py) serving all-MiniLM-L6-v2 on the CPU, the
model fastembed runs in-process. One server per provider, in memory: warm-up, finds from one
client, then one store-many. Reported per provider: find latency, store-many documents per
second, and the CPU each process spends per find: our server's (the model's work leaves it
with the openai provider) and the embedding service's. Both share this machine's cores, so
the service's CPU is part of the cost, not free.
"""

from __future__ import annotations

from typing import Any

from .. import embedding_server, procfs, servers
from .. import workload as w
from ..context import Context
from ..driver import LEGACY, run_calls, wait_ready
from ..progress import log
from ..report import ratio, table, target_row, targets_table
from ..serverproc import ServerProcess
from . import recording_failure

NAME = "providers"
SUMMARY = "fastembed in-process vs the openai provider with Infinity on loopback: find p50, store-many docs/s, CPU/find"
FINDS, QUICK_FINDS = 1_000, 40
MANY, QUICK_MANY = 1_000, 100
WARMUP = 5
CORPUS = 200  # documents stored (unmeasured) before the finds
# "The server's own cost per find should drop well below today's": at most half.
CPU_SHARE_TARGET = 0.5


async def run(context: Context) -> dict[str, Any]:
    options = context.options
    finds = options.finds or (QUICK_FINDS if context.quick else FINDS)
    many = options.many or (QUICK_MANY if context.quick else MANY)
    service = embedding_server.spawn_infinity(context.out_dir / "infinity")
    result: dict[str, Any] = {"finds": finds, "many": many, "servers": {}, "errors": 0, "fatal": None}
    try:
        providers = {
            "fastembed": {},
            "openai": {
                "EMBEDDING_PROVIDER": "openai",
                "EMBEDDING_URL": embedding_server.api_url(service),
                "EMBEDDING_MODEL": embedding_server.MODEL,
            },
        }
        for name, settings in providers.items():
            server = servers.start(context.ours(settings=settings), context.log_path(f"providers-{name}"))
            measured: dict[str, Any] = {"settings": settings}
            result["servers"][name] = measured
            with recording_failure(server, measured):
                await _measure(context, server, service, measured, finds=finds, many=many)
            if measured.get("fatal"):
                result["fatal"] = f"{name}: {measured['fatal']}"
    finally:
        service.close()
    result["errors"] = sum(s.get("errors", 0) for s in result["servers"].values())
    result["targets"] = targets(result["servers"])
    return result


async def _measure(
    context: Context, server: ServerProcess, service: ServerProcess, measured: dict[str, Any], *, finds: int, many: int
) -> None:
    measured["startup"] = await wait_ready(server, context.options.ready_timeout)
    seed = context.seed
    warm = w.store_calls(w.documents(seed, "providers-warmup", WARMUP))
    warm += w.find_calls(w.queries(seed, "providers-warmup", WARMUP, set()))
    corpus = [("qdrant-store-many", {"entries": w.documents(seed, "providers-corpus", CORPUS)})]
    for label, calls in (("warmup", warm), ("corpus", corpus)):
        await run_calls(server, LEGACY, label, 1, calls, connect=context.connect, call_timeout=300)
    before = procfs.tree_cpu_s(service.pid)
    queries = w.queries(seed, "providers-find", finds, set())
    find = await run_calls(server, LEGACY, "find_c1", 1, w.find_calls(queries), connect=context.connect)
    find["service_cpu_ms_per_op"] = round((procfs.tree_cpu_s(service.pid) - before) * 1000 / finds, 3)
    calls = [("qdrant-store-many", {"entries": w.documents(seed, "store_many", many)})]
    before = procfs.tree_cpu_s(service.pid)
    limits = {"call_timeout": 900, "phase_timeout": 900}
    bulk = await run_calls(server, LEGACY, "store_many", 1, calls, connect=context.connect, per_call=many, **limits)
    bulk["service_cpu_ms_per_op"] = round((procfs.tree_cpu_s(service.pid) - before) * 1000 / many, 3)
    measured["phases"] = {"find_c1": find, "store_many": bulk}
    measured["errors"] = find["errors"] + bulk["errors"]
    measured["rss_mb"] = round(procfs.tree_rss_kib(server.pid)[0] / 1024, 1)
    measured["sigterm"] = server.stop(10.0)
    log(
        f"  {server.name}: find p50 {find.get('p50_ms')} ms, server CPU/find {find.get('server_cpu_ms_per_op')} ms, "
        f"service CPU/find {find['service_cpu_ms_per_op']} ms; store-many {bulk.get('throughput')} docs/s"
    )


def targets(measured: dict[str, Any]) -> list[dict[str, Any]]:
    def cpu(name: str) -> Any:
        return ((measured.get(name) or {}).get("phases") or {}).get("find_c1", {}).get("server_cpu_ms_per_op")

    share = ratio(cpu("openai"), cpu("fastembed"))
    met = None if share is None else share <= CPU_SHARE_TARGET
    return [
        target_row("our server's CPU per find, openai / fastembed", share, f"≤ {CPU_SHARE_TARGET} (well below)", met)
    ]


def markdown(result: dict[str, Any]) -> str:
    rows = []
    for name, measured in result["servers"].items():
        phases = measured.get("phases") or {}
        find, bulk = phases.get("find_c1") or {}, phases.get("store_many") or {}
        rows.append(
            [
                name,
                find.get("p50_ms"),
                find.get("p95_ms"),
                find.get("server_cpu_ms_per_op"),
                find.get("service_cpu_ms_per_op") if name == "openai" else "—",
                bulk.get("throughput"),
                bulk.get("server_cpu_ms_per_op"),
                bulk.get("service_cpu_ms_per_op") if name == "openai" else "—",
                measured.get("rss_mb"),
            ]
        )
    header = [
        "provider",
        "find p50 @1 (ms)",
        "find p95 (ms)",
        "server CPU/find (ms)",
        "service CPU/find (ms)",
        "store-many (docs/s)",
        "server CPU/doc (ms)",
        "service CPU/doc (ms)",
        "server RSS (MB)",
    ]
    return "\n".join(
        [
            f"Our server in memory, {result['finds']} finds from one client, then one qdrant-store-many of "
            f"{result['many']} documents; `openai` talks to Infinity {embedding_server.MODEL} (torch, CPU) on "
            "loopback, which shares this machine's cores. Service CPU is Infinity's process tree over the same calls "
            "(the openai row only; fastembed's model runs inside the server).",
            "",
            table(header, rows),
            "",
            targets_table(result.get("targets") or []),
        ]
    )
