"""Bulk store to disk: store-many calls into a persistent Qdrant Edge folder, and where the time goes.

One session sends `--bulk-calls` qdrant-store-many calls of `--bulk-size` generated
documents each, one after another, into a new QDRANT_LOCAL_PATH folder. The server exports
its metrics to Prometheus for the run (OTEL_METRICS_EXPORTER=prometheus), and the scrapes
before and after split the tool time: embedding (`qdrant_mcp_embedding_duration_seconds`,
queueing included), the engine's upserts (`db_client_operation_duration_seconds`,
operation upsert) and the rest (validation, JSON, building points). After the last call,
the background HNSW index build the writes started is waited for and timed.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from .. import edgeindex, preload, procfs, promtext, servers
from .. import workload as w
from ..context import Context
from ..driver import LEGACY, run_calls, wait_ready
from ..progress import log
from ..report import number, ratio, table
from . import recording_failure

NAME = "bulk-store"
SUMMARY = "store-many into a persistent Edge folder: docs/s, and the share of embedding vs the engine"
CALLS, QUICK_CALLS = 10, 2
SIZE, QUICK_SIZE = 1_000, 100
TOOL = "qdrant-store-many"


async def run(context: Context) -> dict[str, Any]:
    options = context.options
    calls = options.bulk_calls or (QUICK_CALLS if context.quick else CALLS)
    size = options.bulk_size or (QUICK_SIZE if context.quick else SIZE)
    scratch = Path(tempfile.mkdtemp(prefix="bench-bulk-"))
    folder = scratch / "edge"
    metrics_port = servers.free_port()
    spec = context.ours(servers.local_path(folder), metrics_port=metrics_port)
    server = servers.start(spec, context.log_path("bulk-store"))
    metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
    result: dict[str, Any] = {"calls": calls, "size": size, "errors": 0, "fatal": None, "targets": []}
    with recording_failure(server, result):
        await wait_ready(server, context.options.ready_timeout)
        before = promtext.scrape(metrics_url)
        batches = [
            ("qdrant-store-many", {"entries": w.documents(context.seed, f"bulk-{i}", size)}) for i in range(calls)
        ]
        sampler = procfs.MemorySampler(server.pid, interval=0.1).start()
        try:
            phase = await run_calls(
                server,
                LEGACY,
                "bulk_store",
                1,
                batches,
                connect=context.connect,
                call_timeout=900,
                phase_timeout=calls * 900,
                per_call=size,
            )
        finally:
            peaks = sampler.stop()
        after = promtext.scrape(metrics_url)
        result["phase"] = phase
        result["errors"] = phase["errors"]
        result["split"] = split(before, after, phase["wall_s"])
        result["index_build_during_stores"] = peaks.max_processes > 1
        result["peak_tree_rss_mib"] = round(peaks.tree_rss_peak / 1024, 1)
        result["index_after"] = await edgeindex.settle(server)
        result["disk_bytes"] = preload.folder_bytes(folder)
        result["sigterm"] = server.stop(30.0)
        log(
            f"bulk-store: {phase['throughput']} docs/s over {calls} x {size}; split {result['split']}; "
            f"index after {result['index_after']}"
        )
    shutil.rmtree(scratch, ignore_errors=True)
    return result


def split(before: list[promtext.Sample], after: list[promtext.Sample], wall_s: float) -> dict[str, Any]:
    """Seconds of tool time, embedding and engine upserts between two scrapes, and their shares of the tool time."""

    def delta(name: str, **labels: str) -> float:
        return promtext.total(after, name, **labels) - promtext.total(before, name, **labels)

    tool = delta("mcp_server_operation_duration_seconds_sum", gen_ai_tool_name=TOOL)
    embedding = delta("qdrant_mcp_embedding_duration_seconds_sum")
    upsert = delta("db_client_operation_duration_seconds_sum", db_operation_name="upsert")
    engine = delta("db_client_operation_duration_seconds_sum")
    return {
        "wall_s": wall_s,
        "tool_s": round(tool, 3),
        "embedding_s": round(embedding, 3),
        "upsert_s": round(upsert, 3),
        "engine_s": round(engine, 3),
        "other_s": round(tool - embedding - engine, 3),
        "embedding_share": _share(embedding, tool),
        "engine_share": _share(engine, tool),
        "upsert_share": _share(upsert, tool),
        "embedding_runs": int(delta("qdrant_mcp_embedding_batch_size_count")),
        "embedded_texts": int(delta("qdrant_mcp_embedding_batch_size_sum")),
    }


def _during_build(index: dict[str, Any]) -> str:
    finds = index.get("finds_during_build") or {}
    if not finds.get("n") and not finds.get("failed"):
        return "no build seen"
    return f"{finds['n']} / {number(finds['p50_ms'])} / {number(finds['max_ms'])} / {finds['failed']}"


def _share(part: float, whole: float) -> float | None:
    value = ratio(part, whole)
    return None if value is None else round(value, 3)


def markdown(result: dict[str, Any]) -> str:
    phase, cut, index = result.get("phase") or {}, result.get("split") or {}, result.get("index_after") or {}
    rows = [
        ["documents stored", phase.get("n")],
        ["wall time (s)", phase.get("wall_s")],
        ["**throughput (docs/s)**", phase.get("throughput")],
        [
            "store-many call p50 / max (s)",
            f"{number((phase.get('p50_ms') or 0) / 1000)} / {number((phase.get('max_ms') or 0) / 1000)}",
        ],
        ["server CPU per document (ms)", phase.get("server_cpu_ms_per_op")],
        [
            "server CPU (cores) / other load (cores)",
            f"{number(phase.get('server_cpu_util'))} / {number(phase.get('other_cpu_util'))}",
        ],
        ["tool time, from the server's metrics (s)", cut.get("tool_s")],
        [
            "embedding (s, share of tool time)",
            f"{number(cut.get('embedding_s'))} ({_percent(cut.get('embedding_share'))})",
        ],
        ["engine: upserts (s, share)", f"{number(cut.get('upsert_s'))} ({_percent(cut.get('upsert_share'))})"],
        ["engine: all operations (s, share)", f"{number(cut.get('engine_s'))} ({_percent(cut.get('engine_share'))})"],
        ["other: validation, JSON, points (s)", cut.get("other_s")],
        ["ONNX runs / texts embedded", f"{cut.get('embedding_runs')} / {cut.get('embedded_texts')}"],
        ["index build ran during the stores", result.get("index_build_during_stores")],
        ["index build after the last store (s until green with no build child)", index.get("waited_s")],
        ["qdrant-find during that build: n / p50 / max (ms) / failed", _during_build(index)],
        ["peak RSS of the tree (MiB)", result.get("peak_tree_rss_mib")],
        ["folder on disk (MiB)", round(result["disk_bytes"] / 2**20, 1) if result.get("disk_bytes") else None],
    ]
    return "\n".join(
        [
            f"{result['calls']} qdrant-store-many calls of {result['size']} documents (12-40 words) from one session, "
            "one after another, into a new persistent Qdrant Edge folder (QDRANT_LOCAL_PATH); split from the "
            "server's own Prometheus metrics (embedding time includes waiting for a worker).",
            "",
            table(["", "value"], rows, "lr"),
        ]
    )


def _percent(share: float | None) -> str:
    return "—" if share is None else f"{100 * share:.0f} %"
