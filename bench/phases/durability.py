"""What durable acknowledgement costs: stores with QDRANT_EMBEDDED_FSYNC=always and =interval against
no sync per write (the embedded engine before issue 15, and what `:memory:` still does), one run.

Each mode gets a fresh server on a new folder inside one scratch folder, so all three write
to the same filesystem (the baseline's `:memory:` folder is put there with TMPDIR). Per mode:
single qdrant-store calls from 1 client (store p50/p95), as many from 8 clients (concurrent
writes share syncs: group commit), then qdrant-store-many calls one after another (docs/s).
The modes run one after another, so "other load" (other people's work on the machine) is
reported with each number.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from .. import servers
from .. import workload as w
from ..context import Context
from ..driver import LEGACY, run_calls, wait_ready
from ..progress import log
from ..report import number, table
from . import recording_failure

NAME = "durability"
SUMMARY = "store p50 and store-many docs/s with QDRANT_EMBEDDED_FSYNC=always / interval vs no sync per write"
STORES, QUICK_STORES = 300, 20
MANY_CALLS, QUICK_MANY_CALLS = 3, 1
MANY_SIZE, QUICK_MANY_SIZE = 1_000, 50
CALL_LIMIT_S = 900.0
# label -> the storage settings (`{folder}`: the mode's folder inside the scratch folder)
MODES = {
    "no sync per write (before)": {"QDRANT_URL": ":memory:", "TMPDIR": "{folder}"},
    "interval (1000 ms)": {"QDRANT_LOCAL_PATH": "{folder}", "QDRANT_EMBEDDED_FSYNC": "interval"},
    "always (default)": {"QDRANT_LOCAL_PATH": "{folder}", "QDRANT_EMBEDDED_FSYNC": "always"},
}


def _counts(context: Context) -> tuple[int, int, int]:
    """Single stores per client count, store-many calls, documents per store-many."""
    if context.quick:
        return QUICK_STORES, QUICK_MANY_CALLS, QUICK_MANY_SIZE
    return STORES, MANY_CALLS, MANY_SIZE


async def run(context: Context) -> dict[str, Any]:
    stores, many_calls, many_size = _counts(context)
    scratch = Path(tempfile.mkdtemp(prefix="bench-durability-"))
    result: dict[str, Any] = {
        "stores": stores,
        "many_calls": many_calls,
        "many_size": many_size,
        "scratch": str(scratch),
        "modes": {},
        "errors": 0,
        "fatal": None,
    }
    try:
        for index, (label, storage) in enumerate(MODES.items()):
            folder = scratch / f"mode-{index}"
            folder.mkdir()
            measured = await _measure(context, label, storage, folder)
            result["modes"][label] = measured
            result["errors"] += measured["errors"]
            if measured["fatal"]:
                result["fatal"] = f"{label}: {measured['fatal']}"
                break
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return result


async def _measure(context: Context, label: str, storage: dict[str, str], folder: Path) -> dict[str, Any]:
    stores, many_calls, many_size = _counts(context)
    spec = context.ours({key: value.format(folder=folder) for key, value in storage.items()})
    server = servers.start(spec, context.log_path(f"durability-{folder.name}"))
    measured: dict[str, Any] = {"settings": storage, "errors": 0, "fatal": None}
    with recording_failure(server, measured):
        await wait_ready(server, context.options.ready_timeout)
        seed, limit = context.seed, CALL_LIMIT_S
        warm = await run_calls(server, LEGACY, "warmup", 1, w.store_calls(w.documents(seed, "dur-warm", 5)))
        single = w.store_calls(w.documents(seed, f"dur-c1-{label}", stores))
        concurrent = w.store_calls(w.documents(seed, f"dur-c8-{label}", stores))
        many = [
            ("qdrant-store-many", {"entries": w.documents(seed, f"dur-many-{label}-{i}", many_size)})
            for i in range(many_calls)
        ]
        phases = {
            "store_c1": await run_calls(server, LEGACY, "store_c1", 1, single, connect=context.connect),
            "store_c8": await run_calls(server, LEGACY, "store_c8", 8, concurrent, connect=context.connect),
            "store_many": await run_calls(
                server,
                LEGACY,
                "store_many",
                1,
                many,
                connect=context.connect,
                call_timeout=limit,
                phase_timeout=limit * many_calls,
                per_call=many_size,
            ),
        }
        measured["phases"] = phases
        measured["errors"] = warm["errors"] + sum(phase["errors"] for phase in phases.values())
        measured["sigterm"] = server.stop(30.0)
        log(
            f"durability {label}: store p50 {phases['store_c1'].get('p50_ms')} ms, "
            f"@8 {phases['store_c8'].get('throughput')} stores/s, store-many {phases['store_many'].get('throughput')} "
            "docs/s"
        )
    return measured


def markdown(result: dict[str, Any]) -> str:
    rows = []
    for label, measured in result["modes"].items():
        phases = measured.get("phases") or {}
        c1, c8, many = (phases.get(name) or {} for name in ("store_c1", "store_c8", "store_many"))
        rows.append(
            [
                label,
                c1.get("p50_ms"),
                c1.get("p95_ms"),
                c8.get("throughput"),
                c8.get("p50_ms"),
                many.get("throughput"),
                f"{number(c1.get('other_cpu_util'))} / {number(many.get('other_cpu_util'))}",
            ]
        )
    return "\n".join(
        [
            f"One fresh server per mode, all writing to the same filesystem: {result['stores']} qdrant-store calls "
            f"from 1 client, {result['stores']} from 8 clients, then {result['many_calls']} qdrant-store-many of "
            f"{result['many_size']} documents (12-40 words) one after another. `always` acknowledges a write once "
            "its WAL record is fsynced (concurrent writes share a sync); `interval` fsyncs the WAL every 1000 ms "
            "and acknowledges at once; the baseline never syncs a write (the engine flushes when writes pause).",
            "",
            table(
                [
                    "mode",
                    "store p50 ms @1",
                    "store p95 ms @1",
                    "stores/s @8",
                    "store p50 ms @8",
                    "store-many docs/s",
                    "other load (cores) @1 / many",
                ],
                rows,
                "lrrrrrr",
            ),
        ]
    )
