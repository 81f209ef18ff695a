"""Worst legal call: the memory one maximal qdrant-store-many takes, with default settings.

A store-many takes at most 1 000 entries and 1 000 000 characters in all (validation.py).
Two shapes reach the bound: 1 000 entries of 990 characters, and 15 entries of 65 536 (the
largest text). Each runs alone in a fresh server (in-memory Qdrant Edge, every setting at its
default) so VmHWM, the kernel's own peak RSS of the server process, belongs to that call;
the whole tree's RSS is also sampled every 20 ms, and read again once it settles after the call.
"""

from __future__ import annotations

from typing import Any

from .. import procfs, servers
from .. import workload as w
from ..context import Context
from ..driver import LEGACY, call, wait_ready
from ..progress import log
from ..report import at_most, table, target_row, targets_table
from . import recording_failure

NAME = "worst-call"
SUMMARY = "peak RSS of one maximal store-many (1000 x 990 chars; 15 x 65 536 chars), and RSS after it settles"
# (entries, characters each): just under the 1 000 000-character bound of a call
CASES = ((1_000, 990), (15, 65_536))
QUICK_CASES = ((50, 990), (2, 65_536))
TARGET_PEAK_MIB = 600.0
CALL_LIMIT_S = 900.0


async def run(context: Context) -> dict[str, Any]:
    cases = []
    for count, chars in QUICK_CASES if context.quick else CASES:
        cases.append(await _measure(context, count, chars))
    rows = []
    for case in cases:
        if case.get("fatal"):
            continue
        peak = case["peak_hwm_mib"]
        note = "" if not context.quick else "quick run: a smaller call than the maximal one"
        rows.append(target_row(f"{case['label']}: peak RSS (VmHWM, MiB)", peak, "≤ 600 MiB", at_most(peak, 600), note))
    return {
        "cases": cases,
        "targets": rows,
        "errors": sum(case.get("errors", 0) for case in cases),
        "fatal": "; ".join(f"{c['label']}: {c['fatal']}" for c in cases if c.get("fatal")) or None,
    }


async def _measure(context: Context, count: int, chars: int) -> dict[str, Any]:
    label = f"{count} x {chars} chars"
    measured: dict[str, Any] = {"label": label, "entries": count, "chars_each": chars, "chars": count * chars}
    spec = context.ours()
    server = servers.start(spec, context.log_path(f"worst-call-{count}x{chars}"))
    with recording_failure(server, measured):
        measured["startup"] = await wait_ready(server, context.options.ready_timeout)
        measured["startup"].pop("tools", None)
        ready = procfs.status_kib(server.pid, "VmRSS", "VmHWM")
        measured["rss_ready_mib"] = round(ready["VmRSS"] / 1024, 1)
        measured["hwm_ready_mib"] = round(ready["VmHWM"] / 1024, 1)
        entries = w.sized_documents(context.seed, f"worst-{count}x{chars}", count, chars)
        async with context.connect(server.mcp_url, LEGACY, CALL_LIMIT_S) as client:
            sampler = procfs.MemorySampler(server.pid, interval=0.02).start()
            try:
                outcome = await call(client, "qdrant-store-many", {"entries": entries}, CALL_LIMIT_S)
            finally:
                peaks = sampler.stop()
        measured.update(
            seconds=round(outcome.seconds, 2),
            ok=outcome.ok,
            errors=0 if outcome.ok else 1,
            answer=outcome.text[:200],
            peak_hwm_mib=round(peaks.main_hwm / 1024, 1),
            peak_tree_rss_mib=round(peaks.tree_rss_peak / 1024, 1),
            max_processes=peaks.max_processes,
            samples=peaks.samples,
        )
        settled = await _settled(server.pid)
        measured["rss_settled_mib"] = round(settled / 1024, 1)
        measured["sigterm"] = server.stop(10.0)
        log(
            f"worst-call {label}: {measured['seconds']} s ok={outcome.ok} peak VmHWM {measured['peak_hwm_mib']} MiB, "
            f"tree peak {measured['peak_tree_rss_mib']} MiB, settled {measured['rss_settled_mib']} MiB"
        )
    return measured


async def _settled(pid: int) -> int:
    import asyncio

    return await asyncio.to_thread(procfs.wait_rss_settled, pid)


def markdown(result: dict[str, Any]) -> str:
    header = [
        "call",
        "characters",
        "duration s",
        "RSS ready MiB",
        "peak VmHWM MiB",
        "peak tree RSS MiB",
        "RSS settled MiB",
        "processes",
        "answer",
    ]
    rows = [
        [
            c["label"],
            c["chars"],
            c.get("seconds"),
            c.get("rss_ready_mib"),
            c.get("peak_hwm_mib"),
            c.get("peak_tree_rss_mib"),
            c.get("rss_settled_mib"),
            c.get("max_processes"),
            "FAILED: " + c["fatal"].splitlines()[0][:80]
            if c.get("fatal")
            else ("ok" if c.get("ok") else c.get("answer")),
        ]
        for c in result["cases"]
    ]
    return "\n".join(
        [
            "One qdrant-store-many per fresh server (in memory, default settings). *peak VmHWM*: the server "
            "process's own peak RSS (/proc VmHWM, never missed); *peak tree RSS*: the largest sum over the server "
            "and its children among samples every 20 ms; *settled*: once RSS moved < 1 MiB for 2 s after the call.",
            "",
            table(header, rows, "lrrrrrrrl"),
            "",
            targets_table(result["targets"]),
        ]
    )
