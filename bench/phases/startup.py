"""Start-up: how soon a freshly spawned server answers, over stdio and over HTTP, cold and warm.

Clients such as Claude Desktop spawn a stdio server per conversation, so its start is paid
every time. Per transport, cache state and server (ours, the official 0.8.1), a number of
spawns, interleaved between the servers so that a change in the machine's load hits both,
each on a fresh copy of a folder of corpus points (ours: Qdrant Edge; official: qdrant-client
local mode, its only embedded engine), so that the first find really searches:

- stdio (`bench/stdioclient.py`, JSON lines on the pipes): spawn -> `initialize` answered,
  -> `tools/list`, -> the first `qdrant-find` answered, each sent right after the previous answer;
- streamable HTTP: spawn -> `/healthz` 200 (ours) or the port accepting (official, which has no
  health route), -> `initialize` answered (a minimal httpx client, `bench/rawclient.py`),
  -> `tools/list`, -> the first `qdrant-find`, and for ours -> `/readyz` 200, polled meanwhile;
- our server's own log: transport up, model loaded, ready; RSS of the tree after the first find.

Warm: one untimed spawn per server and transport first (bytecode written, files cached).
Cold: the page cache is dropped right before each spawn (`sync; echo 3 > /proc/sys/vm/drop_caches`,
as root or with passwordless sudo; skipped with a note otherwise), so the interpreter, both venvs,
the model and the folder come from disk again. Medians over the spawns are reported.
"""

from __future__ import annotations

import asyncio
import shutil
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

from .. import preload, procfs, servers
from .. import workload as w
from ..context import Context
from ..errors import BenchError
from ..progress import log
from ..rawclient import RawClient
from ..report import number, ratio
from ..serverlog import start_timeline
from ..serverproc import ServerProcess
from ..servers import ServerSpec
from ..stdioclient import StdioServer, first_answers
from .compare_report import targets_table

NAME = "startup"
SUMMARY = "spawn -> initialize / healthz / readyz / first find, stdio and HTTP, cold and warm page cache"
TRANSPORTS = ("stdio", "http")
POINTS, QUICK_POINTS = 1_000, 300
REPEATS, QUICK_REPEATS = 5, 2
COLD_REPEATS, QUICK_COLD_REPEATS = 3, 1
# server name -> the folder kind it serves (the official server has local mode only)
FOLDER_KIND: dict[str, preload.Kind] = {"ours": "edge", "official": "local-mode"}
POLL_S = 0.01
LIMIT_S = 300.0
# Targets, for a warm start.
TARGET_STDIO_INITIALIZE_S = 0.5
TARGET_STDIO_FIRST_FIND_S = 1.5
TARGET_HTTP_HEALTHZ_S = 0.5
# What the report shows per transport: (key, label), in the order the answers come.
METRICS = {
    "stdio": (
        ("initialize_s", "spawn → initialize answered"),
        ("tools_list_s", "spawn → tools/list answered"),
        ("first_find_s", "spawn → first find answered"),
    ),
    "http": (
        ("healthz_s", "spawn → /healthz 200 (official: port accepting)"),
        ("initialize_s", "spawn → initialize answered"),
        ("readyz_s", "spawn → /readyz 200"),
        ("first_find_s", "spawn → first find answered"),
    ),
}
TIMELINE = ("log_serving_s", "log_model_loaded_s", "log_ready_s")


async def run(context: Context) -> dict[str, Any]:
    options = context.options
    points = options.startup_points or (QUICK_POINTS if context.quick else POINTS)
    repeats = options.startup_repeats or (QUICK_REPEATS if context.quick else REPEATS)
    cold = options.startup_cold
    if cold is None:
        cold = QUICK_COLD_REPEATS if context.quick else COLD_REPEATS
    specs = _specs(context)
    folders = {spec.name: await _folder(context, spec, points) for spec in specs}
    queries = iter(w.queries(context.seed, "startup", len(specs) * len(TRANSPORTS) * (1 + repeats + cold), set()))
    runs: list[dict[str, Any]] = []
    result: dict[str, Any] = {"points": points, "repeats": repeats, "cold_repeats": cold, "runs": runs}
    cache_states = [("warm", repeats)]
    if cold:
        why_not = procfs.drop_page_cache()
        if why_not is None:
            cache_states.append(("cold", cold))
        else:
            result["cold_skipped"] = why_not
            log(f"startup: no cold starts ({why_not})")
    for transport in TRANSPORTS:
        for cache, count in cache_states:
            for index in range(-1 if cache == "warm" else 0, count):  # -1: the untimed priming spawn
                for spec in specs:
                    measured = await _measure(
                        context, spec, transport, folder=folders[spec.name], query=next(queries), cache=cache
                    )
                    measured["priming"] = index < 0
                    runs.append(measured)
    result["summary"] = summary(runs)
    result["targets"] = targets(result["summary"])
    result["errors"] = sum(1 for r in runs if r.get("fatal"))
    failed = [
        f"{r['server']} {r['transport']} {r['cache']}: {r['fatal'].splitlines()[0]}" for r in runs if r.get("fatal")
    ]
    result["fatal"] = "; ".join(failed) or None
    return result


async def prepare(context: Context) -> dict[str, Any]:
    """The folders the spawns start from (the corpus embedded and written once, then cached)."""
    points = context.options.startup_points or (QUICK_POINTS if context.quick else POINTS)
    made = {spec.name: str(await _folder(context, spec, points)) for spec in _specs(context)}
    return {"prepared": made, "errors": 0, "fatal": None}


def _specs(context: Context) -> list[ServerSpec]:
    only = context.options.only
    names = [name for name in ("official", "ours") if only is None or name == only]
    return [context.official() if name == "official" else context.ours() for name in names]


async def _folder(context: Context, spec: ServerSpec, points: int) -> Path:
    kind = FOLDER_KIND[spec.name]
    folder, _ = await asyncio.to_thread(
        preload.engine_folder, kind, spec.python, context.seed, points, context.model_cache
    )
    return folder


async def _measure(
    context: Context, spec: ServerSpec, transport: str, *, folder: Path, query: str, cache: str
) -> dict[str, Any]:
    """One spawn on a fresh copy of `folder`: its timings, RSS after the first find, and the load then."""
    measured: dict[str, Any] = {"server": spec.name, "transport": transport, "cache": cache}
    scratch = Path(tempfile.mkdtemp(prefix="bench-startup-"))
    try:
        await asyncio.to_thread(preload.working_copy, folder, scratch / "data")
        storage = servers.local_path(scratch / "data")
        spec = context.official(storage) if spec.name == "official" else context.ours(storage)
        if cache == "cold":
            why_not = await asyncio.to_thread(procfs.drop_page_cache)
            if why_not:
                raise BenchError(why_not)
        measured["loadavg"] = procfs.load_average()
        logs = context.log_path(f"startup-{spec.name}-{transport}")
        measure = _stdio if transport == "stdio" else _http
        measured.update(await measure(spec, scratch, logs, query))
    except BenchError as exc:
        measured["fatal"] = str(exc)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    shown = {key: measured.get(key) for key, _ in METRICS[transport]}
    log(f"  startup {spec.name:8s} {transport:5s} {cache}: {shown} rss={measured.get('rss_mib')} MiB")
    return measured


async def _stdio(spec: ServerSpec, workdir: Path, log_path: Path, query: str) -> dict[str, Any]:
    async with StdioServer(spec.stdio_argv, spec.env(0), workdir, log_path) as server:
        times = await first_answers(server, query, LIMIT_S)
        times["rss_mib"] = round(procfs.tree_rss_kib(server.pid)[0] / 1024, 1)
        times["exit_code"] = await server.close()
        times.update(start_timeline(server.log(), server.started))
    times.pop("tools", None)
    return times


async def _http(spec: ServerSpec, workdir: Path, log_path: Path, query: str) -> dict[str, Any]:
    server = servers.start(spec, log_path)
    times: dict[str, Any] = {}
    readyz: asyncio.Task[float] | None = None
    try:
        async with httpx.AsyncClient(timeout=2.0) as http:
            up = _answers_200(http, server.base + "/healthz") if spec.ready_path else _accepts(server.port)
            times["healthz_s"] = await _until(up, server)
            if spec.ready_path:
                readyz = asyncio.create_task(_until(_answers_200(http, server.base + spec.ready_path), server))
            async with RawClient(server.mcp_url, read_timeout_seconds=LIMIT_S) as client:
                times["initialize_s"] = _since(server.started)
                await client.list_tools()
                times["tools_list_s"] = _since(server.started)
                found = await client.call_tool("qdrant-find", {"query": query})
                times["first_find_s"] = _since(server.started)
            if found.is_error:
                raise BenchError(f"the first qdrant-find failed: {found.content[0].text if found.content else ''}")
            if readyz is not None:
                times["readyz_s"] = await readyz
        times["rss_mib"] = round(procfs.tree_rss_kib(server.pid)[0] / 1024, 1)
        times.update(start_timeline(server.log(), server.started))
    except (httpx.HTTPError, RuntimeError) as exc:
        raise BenchError(f"{type(exc).__name__}: {exc}\n{server.log_tail()}") from exc
    finally:
        if readyz is not None:
            readyz.cancel()
        times["sigterm"] = server.stop(10.0)
        server.close()
    return times


Check = Callable[[], Awaitable[bool]]


async def _until(check: Check, server: ServerProcess) -> float:
    """Poll `check` every POLL_S until it holds; the seconds from the spawn to then."""
    while not await check():
        if not server.alive():
            raise BenchError(f"{server.name} exited with {server.process.returncode}:\n{server.log_tail()}")
        if time.perf_counter() - server.started > LIMIT_S:
            raise BenchError(f"{server.name} did not answer within {LIMIT_S} s:\n{server.log_tail()}")
        await asyncio.sleep(POLL_S)
    return _since(server.started)


def _answers_200(http: httpx.AsyncClient, url: str) -> Check:
    async def check() -> bool:
        try:
            return (await http.get(url)).status_code == 200
        except httpx.HTTPError:
            return False

    return check


def _accepts(port: int) -> Check:
    async def check() -> bool:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            return False
        writer.close()
        return True

    return check


def _since(started: float) -> float:
    return round(time.perf_counter() - started, 3)


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per server, transport and cache state: the median, min and max of each timing over the timed spawns."""
    grouped: dict[str, dict[str, list[float]]] = {}
    for measured in runs:
        if measured.get("priming") or measured.get("fatal"):
            continue
        key = f"{measured['server']}/{measured['transport']}/{measured['cache']}"
        values = grouped.setdefault(key, {})
        for name, value in measured.items():
            if name.endswith(("_s", "_mib")) and isinstance(value, int | float):
                values.setdefault(name, []).append(float(value))
    return {
        key: {
            name: {"median": round(statistics.median(v), 3), "min": min(v), "max": max(v), "n": len(v)}
            for name, v in values.items()
        }
        for key, values in grouped.items()
    }


def median(summarized: dict[str, Any], server: str, transport: str, cache: str, metric: str) -> float | None:
    found = summarized.get(f"{server}/{transport}/{cache}", {}).get(metric)
    return None if found is None else float(found["median"])


def targets(summarized: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows of official, ours, ours/official and the target (targets are for a warm start)."""
    limits = {
        ("stdio", "initialize_s"): TARGET_STDIO_INITIALIZE_S,
        ("stdio", "first_find_s"): TARGET_STDIO_FIRST_FIND_S,
        ("http", "healthz_s"): TARGET_HTTP_HEALTHZ_S,
    }
    rows = []
    for cache in ("warm", "cold"):
        for transport in TRANSPORTS:
            for metric, label in (*METRICS[transport], ("rss_mib", "RSS after the first find (MiB)")):
                official = median(summarized, "official", transport, cache, metric)
                ours = median(summarized, "ours", transport, cache, metric)
                if official is None and ours is None:
                    continue
                limit = limits.get((transport, metric)) if cache == "warm" else None
                rows.append(
                    {
                        "metric": f"{transport}, {cache}: {label}" + (" (s)" if metric.endswith("_s") else ""),
                        "official": official,
                        "ours": ours,
                        "ratio": ratio(ours, official),
                        "target": f"≤ {limit:g} s" if limit else "",
                        "met": None if limit is None or ours is None else ours <= limit,
                        "note": "",
                    }
                )
    return rows


def markdown(result: dict[str, Any]) -> str:
    cold = (
        f"cold: {result['cold_repeats']} spawns each right after dropping the page cache"
        if not result.get("cold_skipped")
        else f"no cold starts ({result['cold_skipped']})"
    )
    parts = [
        f"Each server spawned on a fresh copy of a {result['points']}-point folder (ours: Qdrant Edge; official: "
        f"local mode). Warm: {result['repeats']} timed spawns after an untimed one; {cold}. Spawns alternate "
        "between the servers. Medians in seconds; load average at each spawn in the JSON.",
        "",
        targets_table(result["targets"]),
        "",
        "#### Our server's own log, medians from the spawn (s)",
        "",
        "| transport | cache | serving | model loaded | ready (engine open too) |",
        "|---|---|---:|---:|---:|",
    ]
    summarized = result["summary"]
    for transport in TRANSPORTS:
        for cache in ("warm", "cold"):
            values = [median(summarized, "ours", transport, cache, key) for key in TIMELINE]
            if any(value is not None for value in values):
                parts.append(f"| {transport} | {cache} | " + " | ".join(number(v, 3) for v in values) + " |")
    loads = [r["loadavg"][0] for r in result["runs"] if r.get("loadavg")]
    if loads:
        parts += [
            "",
            f"Load average (1 min) at the spawns: median {number(statistics.median(loads))}, "
            f"min {number(min(loads))}, max {number(max(loads))}.",
        ]
    return "\n".join(parts)
