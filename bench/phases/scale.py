"""Scale: finds against 1 000, 10 000 and 100 000 points, and a restart on them, per engine.

Engines: our server on Qdrant Edge (a persistent QDRANT_LOCAL_PATH folder), our server on
a qdrant-client local-mode folder, and the official server (local mode is all it has
embedded). The points are the cached corpus (bench/corpus.py: real embeddings of generated
documents), written straight into the folders (bench/preload.py), so 100 000 points cost
no hour of embedding through MCP. Each measurement starts a server on a fresh copy of the
folder and takes: spawn -> /readyz 200 and spawn -> first successful find (the restart),
the index settling (ours: `qdrant-collection-info` reports status green and no index build
runs in a child, for a few seconds in a row), find p50/p99 from 1 client, find throughput
from 8 clients, and RSS. Every engine gets the same queries at a size.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from pathlib import Path
from typing import Any

from .. import edgeindex, preload, procfs, profiling, servers
from .. import workload as w
from ..context import Context
from ..driver import LEGACY, run_calls, wait_ready
from ..errors import BenchError
from ..progress import log
from ..report import at_most, number, ratio, table, target_row, targets_table
from ..serverlog import start_timeline
from . import recording_failure

NAME = "scale"
SUMMARY = "finds and restart at 1k/10k/100k points: ours on Edge, ours on local mode, official (local mode)"
SIZES = (1_000, 10_000, 100_000)
QUICK_SIZES = (300,)
FINDS, QUICK_FINDS = 300, 20
WARMUP_FINDS = 20
# (server, folder kind) per engine
ENGINES = {"edge": ("ours", "edge"), "local-mode": ("ours", "local-mode"), "official": ("official", "local-mode")}
SETTLE_LIMIT_S = 1800.0
READY_LIMIT_S = 900.0
PROFILE_FINDS = 400  # local mode does ~4 finds/s at 100 000 points under py-spy
# Targets at 100 000 points.
TARGET_P50_MS = 10.0
TARGET_P50_GROWTH = 1.5
TARGET_READY_S = 1.5
TARGET_RSS_MIB = 500.0


async def run(context: Context) -> dict[str, Any]:
    options = context.options
    sizes = _sizes(options.scale_sizes, context.quick)
    finds = options.scale_finds or (QUICK_FINDS if context.quick else FINDS)
    engines = _engines(context)
    runs: list[dict[str, Any]] = []
    for size in sizes:
        queries = w.queries(context.seed, f"scale-{size}", 1 + WARMUP_FINDS + 2 * finds, set())
        for engine in engines:
            profile = options.scale_profile and size == sizes[-1]
            runs.append(await _measure(context, engine, size, queries=queries, finds=finds, profile=profile))
    return {
        "sizes": list(sizes),
        "engines": engines,
        "finds": finds,
        "runs": runs,
        "targets": targets(runs, sizes),
        "errors": sum(r.get("errors", 0) for r in runs),
        "fatal": "; ".join(f"{r['engine']}@{r['points']}: {r['fatal']}" for r in runs if r.get("fatal")) or None,
    }


async def prepare(context: Context) -> dict[str, Any]:
    """Make the cached corpus and every engine folder the run would use, without measuring anything."""
    sizes = _sizes(context.options.scale_sizes, context.quick)
    made = {}
    for size in sizes:
        for engine in _engines(context):
            server_name, kind = ENGINES[engine]
            python = (
                str(context.official_venv() / "bin" / "python") if server_name == "official" else context.ours_python
            )
            _, details = await asyncio.to_thread(
                preload.engine_folder, kind, python, context.seed, size, context.model_cache
            )
            made[f"{engine}@{size}"] = details
    return {"prepared": made, "errors": 0, "fatal": None}


def _engines(context: Context) -> list[str]:
    engines = [name.strip() for name in context.options.scale_engines.split(",") if name.strip()]
    unknown = [name for name in engines if name not in ENGINES]
    if unknown:
        raise BenchError(f"unknown --scale-engines {', '.join(unknown)}: choose from {', '.join(ENGINES)}")
    only = context.options.only
    return [name for name in engines if only is None or (name == "official") == (only == "official")]


def _sizes(text: str | None, quick: bool) -> tuple[int, ...]:
    if not text:
        return QUICK_SIZES if quick else SIZES
    return tuple(sorted(int(part) for part in text.split(",") if part.strip()))


async def _measure(
    context: Context, engine: str, size: int, *, queries: list[str], finds: int, profile: bool
) -> dict[str, Any]:
    server_name, kind = ENGINES[engine]
    measured: dict[str, Any] = {"engine": engine, "server": server_name, "points": size, "errors": 0}
    venv = context.official_venv() if server_name == "official" else None
    python = str(venv / "bin" / "python") if venv else context.ours_python
    source, made = await asyncio.to_thread(preload.engine_folder, kind, python, context.seed, size, context.model_cache)
    measured["folder"] = {k: made.get(k) for k in ("engine", "bytes", "write_s", "index_s", "indexed_vectors")}
    scratch = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    data = scratch / "data"
    measured["copy_s"] = await asyncio.to_thread(preload.working_copy, source, data)
    storage = servers.local_path(data)
    spec = context.official(storage) if venv is not None else context.ours(storage)
    server = servers.start(spec, context.log_path(f"scale-{engine}-{size}"), label=f"{engine}@{size}")
    log(f"scale: {engine} with {size} points ...")
    with recording_failure(server, measured):
        # local mode reads every point into memory before it answers: minutes at 100 000 on a busy machine
        limit = max(context.options.ready_timeout, READY_LIMIT_S)
        startup = await wait_ready(server, limit, first_find=queries[0])
        startup.pop("tools", None)
        startup.update(start_timeline(server.log(), server.started))
        startup["rss_ready_mib"] = round(procfs.tree_rss_kib(server.pid)[0] / 1024, 1)
        measured["startup"] = startup
        no_index = {"note": "local mode: no index"}
        measured["index"] = await edgeindex.settle(server, SETTLE_LIMIT_S) if server_name == "ours" else no_index
        measured.update(await _finds(context, server, queries[1:], finds))
        measured["errors"] = sum(phase["errors"] for phase in measured["phases"])
        if profile:
            more = w.queries(context.seed, f"scale-profile-{engine}", min(4 * finds, PROFILE_FINDS), set(queries))
            measured["profile"] = await profiling.profile(
                server,
                w.find_calls(more),
                clients=8,
                out_dir=context.out_dir,
                rate=context.options.profile_rate,
                connect=context.connect,
                phase=f"find_c8_profiled_{engine}",
            )
        rss, hwm = procfs.tree_rss_kib(server.pid)
        # file-backed pages are the engine's memory-mapped files (page cache the kernel can take back)
        kinds = procfs.status_kib(server.pid, "RssAnon", "RssFile", "RssShmem")
        measured["rss_kinds_mib"] = {key: round(value / 1024, 1) for key, value in kinds.items()}
        measured.update(rss_mib=round(rss / 1024, 1), hwm_mib=round(hwm / 1024, 1), sigterm=server.stop(10.0))
        log(f"  {server.name}: startup {startup}, index {measured['index']}, rss {measured['rss_mib']} MiB")
    shutil.rmtree(scratch, ignore_errors=True)
    if measured.get("fatal"):
        log(f"  {engine}@{size} FAILED: {measured['fatal']}")
    return measured


async def _finds(context: Context, server: Any, queries: list[str], finds: int) -> dict[str, Any]:
    """Warm-up, then `finds` finds from 1 client and the rest from 8; whether an index build ran meanwhile."""
    sampler = procfs.MemorySampler(server.pid, interval=0.1).start()
    phases = []
    try:
        for label, clients, chosen in (
            ("warmup", 1, queries[:WARMUP_FINDS]),
            ("find_c1", 1, queries[WARMUP_FINDS : WARMUP_FINDS + finds]),
            ("find_c8", 8, queries[WARMUP_FINDS + finds :]),
        ):
            phase = await run_calls(server, LEGACY, label, clients, w.find_calls(chosen), connect=context.connect)
            phases.append(phase)
            log(
                f"  {server.name} {label}: p50={phase.get('p50_ms')} ms p99={phase.get('p99_ms')} ms "
                f"thr={phase.get('throughput')}/s err={phase['errors']} empty={phase.get('empty_results')} "
                f"other={phase.get('other_cpu_util')}"
            )
    finally:
        peaks = sampler.stop()
    return {"phases": phases, "index_build_during_finds": peaks.max_processes > 1}


def _run(runs: list[dict[str, Any]], engine: str, size: int) -> dict[str, Any] | None:
    return next((r for r in runs if r["engine"] == engine and r["points"] == size and not r.get("fatal")), None)


def _phase(measured: dict[str, Any] | None, name: str) -> dict[str, Any]:
    return next((p for p in (measured or {}).get("phases", []) if p["phase"] == name), {})


def targets(runs: list[dict[str, Any]], sizes: tuple[int, ...]) -> list[dict[str, Any]]:
    """Per engine, at the largest size measured (the targets are set for 100 000 points)."""
    largest, smallest = sizes[-1], sizes[0]
    note = "" if largest == SIZES[-1] else f"measured at {largest} points; the target is for {SIZES[-1]}"
    rows = []
    for engine in ENGINES:
        big, small = _run(runs, engine, largest), _run(runs, engine, smallest)
        if big is None:
            continue
        p50 = _phase(big, "find_c1").get("p50_ms")
        rows.append(
            target_row(f"{engine}: find p50 @1 at {largest} points (ms)", p50, "≤ 10 ms", at_most(p50, 10), note)
        )
        if small is not None and largest != smallest:
            growth = ratio(p50, _phase(small, "find_c1").get("p50_ms"))
            metric = f"{engine}: find p50 @1, {largest} / {smallest} points"
            rows.append(target_row(metric, growth, "≤ 1.5x", at_most(growth, TARGET_P50_GROWTH), note))
        startup = big.get("startup", {})
        if big["server"] == "ours":
            readyz = startup.get("readyz_s")
            metric = f"{engine}: restart, spawn → /readyz 200 (s)"
            rows.append(target_row(metric, readyz, "≤ 1.5 s", at_most(readyz, TARGET_READY_S), note))
        first = startup.get("first_find_s")
        metric = f"{engine}: restart, spawn → first successful find (s)"
        rows.append(target_row(metric, first, "≤ 1.5 s", at_most(first, TARGET_READY_S), note))
        rss = big.get("rss_mib")
        metric = f"{engine}: RSS after the finds, with children (MiB)"
        rows.append(target_row(metric, rss, "≤ 500 MB", at_most(rss, TARGET_RSS_MIB), note))
    return rows


def _rss_text(measured: dict[str, Any]) -> str:
    kinds = measured.get("rss_kinds_mib") or {}
    split = f" ({number(kinds['RssAnon'], 0)} + {number(kinds['RssFile'], 0)})" if "RssAnon" in kinds else ""
    return number(measured.get("rss_mib"), 1) + split


def markdown(result: dict[str, Any]) -> str:
    header = [
        "engine",
        "points",
        "first tools/list s",
        "/readyz s",
        "first find s",
        "server log: serving / model / ready s",
        "index",
        "find p50 @1 ms",
        "p99 @1 ms",
        "finds/s @8",
        "p50 @8 ms",
        "server CPU ms/find @8",
        "RSS ready MiB",
        "RSS after MiB (anon + file)",
        "other load",
    ]
    rows = []
    for r in result["runs"]:
        if r.get("fatal"):
            rows.append([r["engine"], r["points"], "FAILED: " + r["fatal"].splitlines()[0][:80], *[None] * 12])
            continue
        start, c1, c8 = r.get("startup", {}), _phase(r, "find_c1"), _phase(r, "find_c8")
        index = r.get("index", {})
        index_text = (
            f"{index['status']}, waited {index['waited_s']} s" + (", build seen" if index.get("build_seen") else "")
            if "status" in index
            else "—"
        )
        if r.get("index_build_during_finds"):
            index_text += "; **a build ran during the finds**"
        rows.append(
            [
                r["engine"],
                r["points"],
                start.get("ready_s"),
                start.get("readyz_s"),
                start.get("first_find_s"),
                " / ".join(number(start.get(k)) for k in ("log_serving_s", "log_model_loaded_s", "log_ready_s"))
                if "log_ready_s" in start
                else "—",
                index_text,
                c1.get("p50_ms"),
                c1.get("p99_ms"),
                c8.get("throughput"),
                c8.get("p50_ms"),
                c8.get("server_cpu_ms_per_op"),
                start.get("rss_ready_mib"),
                _rss_text(r),
                number(c1.get("other_cpu_util")) + " / " + number(c8.get("other_cpu_util")),
            ]
        )
    parts = [
        f"Sizes {', '.join(str(s) for s in result['sizes'])}; {result['finds']} finds @1 and {result['finds']} @8 "
        f"per measurement after {WARMUP_FINDS} warm-up finds; the same queries for every engine at a size. Points "
        "written straight into the folders (cached corpus of real embeddings), each server started on a fresh "
        "copy. *index*: ours waits until `qdrant-collection-info` says green with no index-build child for "
        f"{edgeindex.SETTLED_S:g} s in a row (the Edge folders come with their HNSW index built by the server's own "
        "builder, so this normally passes at once). *other load*: cores used by everything else during @1 / @8.",
        "",
        table(header, rows, "l" + "r" * 5 + "l" + "r" * 8),
        "",
        "Targets (at 100 000 points):",
        "",
        targets_table(result["targets"]),
    ]
    for r in result["runs"]:
        if r.get("profile"):
            parts += ["", profiling.markdown(f"{r['engine']} at {r['points']} points", r["profile"])]
    return "\n".join(parts)
