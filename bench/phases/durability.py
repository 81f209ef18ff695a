"""What durable acknowledgement costs: stores with QDRANT_EMBEDDED_FSYNC=always and =interval against
no sync per write (the embedded engine before issue 15, and what `:memory:` still does), one run.

Three servers, one per mode, each on a new folder inside one scratch folder, so all three
write to the same filesystem (the baseline's `:memory:` folder is put there with TMPDIR).
They run side by side and are measured in turns: each round gives every mode, in a rotating
order, single qdrant-store calls from 1 client (store p50), as many from 8 clients (concurrent
writes share syncs: group commit) and one qdrant-store-many (docs/s). Other work on the
machine then weighs on every mode alike; the report gives the median over the rounds.
"""

from __future__ import annotations

import contextlib
import shutil
import statistics
import tempfile
from pathlib import Path
from typing import Any

from .. import servers
from .. import workload as w
from ..context import Context
from ..driver import LEGACY, run_calls, wait_ready
from ..progress import log
from ..report import table
from ..serverproc import ServerProcess
from . import recording_failure

NAME = "durability"
SUMMARY = "store p50 and store-many docs/s with QDRANT_EMBEDDED_FSYNC=always / interval vs no sync per write"
ROUNDS, QUICK_ROUNDS = 5, 1
STORES, QUICK_STORES = 60, 20  # per round and mode, from 1 client and again from 8
MANY_SIZE, QUICK_MANY_SIZE = 1_000, 50  # documents of the round's store-many
CALL_LIMIT_S = 900.0
# label -> the storage settings (`{folder}`: the mode's folder inside the scratch folder)
MODES = {
    "no sync per write (before)": {"QDRANT_URL": ":memory:", "TMPDIR": "{folder}"},
    "interval (1000 ms)": {"QDRANT_LOCAL_PATH": "{folder}", "QDRANT_EMBEDDED_FSYNC": "interval"},
    "always (default)": {"QDRANT_LOCAL_PATH": "{folder}", "QDRANT_EMBEDDED_FSYNC": "always"},
}
MEASURES = {  # what the report shows, from each round's phases
    "store_p50_ms": ("store_c1", "p50_ms"),
    "store_p95_ms": ("store_c1", "p95_ms"),
    "stores_per_s_c8": ("store_c8", "throughput"),
    "store_p50_ms_c8": ("store_c8", "p50_ms"),
    "many_docs_per_s": ("store_many", "throughput"),
    "other_load": ("store_c1", "other_cpu_util"),
}


async def run(context: Context) -> dict[str, Any]:
    quick = context.quick
    rounds, stores, many = (QUICK_ROUNDS, QUICK_STORES, QUICK_MANY_SIZE) if quick else (ROUNDS, STORES, MANY_SIZE)
    result: dict[str, Any] = {"rounds": rounds, "stores": stores, "many_size": many, "modes": {}}
    result.update(errors=0, fatal=None)
    scratch = Path(tempfile.mkdtemp(prefix="bench-durability-"))
    started: dict[str, ServerProcess] = {}
    with contextlib.ExitStack() as closing:
        closing.callback(shutil.rmtree, scratch, ignore_errors=True)
        for index, (label, storage) in enumerate(MODES.items()):
            folder = scratch / f"mode-{index}"
            folder.mkdir()
            spec = context.ours({key: value.format(folder=folder) for key, value in storage.items()})
            started[label] = servers.start(spec, context.log_path(f"durability-{index}"))
            closing.enter_context(recording_failure(started[label], result))
            result["modes"][label] = {"settings": storage, "rounds": []}
        for server in started.values():
            await wait_ready(server, context.options.ready_timeout)
        labels = list(MODES)
        for turn in range(rounds):
            for label in labels[turn % len(labels) :] + labels[: turn % len(labels)]:
                measured = await _round(context, started[label], f"{label}-{turn}", stores, many)
                result["modes"][label]["rounds"].append(measured)
                result["errors"] += sum(phase["errors"] for phase in measured.values())
        for label, mode in result["modes"].items():
            mode["median"] = {
                name: _median([r[phase].get(key) for r in mode["rounds"]]) for name, (phase, key) in MEASURES.items()
            }
            mode["sigterm"] = started[label].stop(30.0)
            log(f"durability {label}: {mode['median']}")
    return result


async def _round(context: Context, server: ServerProcess, label: str, stores: int, many: int) -> dict[str, Any]:
    seed, connect = context.seed, context.connect
    single = w.store_calls(w.documents(seed, f"dur-c1-{label}", stores))
    concurrent = w.store_calls(w.documents(seed, f"dur-c8-{label}", stores))
    bulk = [("qdrant-store-many", {"entries": w.documents(seed, f"dur-many-{label}", many)})]
    return {
        "store_c1": await run_calls(server, LEGACY, "store_c1", 1, single, connect=connect),
        "store_c8": await run_calls(server, LEGACY, "store_c8", 8, concurrent, connect=connect),
        "store_many": await run_calls(
            server, LEGACY, "store_many", 1, bulk, connect=connect, call_timeout=CALL_LIMIT_S, per_call=many
        ),
    }


def _median(values: list[Any]) -> float | None:
    numbers = [value for value in values if value is not None]
    return round(statistics.median(numbers), 2) if numbers else None


def markdown(result: dict[str, Any]) -> str:
    rows = []
    for label, mode in result["modes"].items():
        median = mode.get("median") or {}
        rows.append([label, *(median.get(name) for name in MEASURES)])
    return "\n".join(
        [
            f"Three servers side by side, all writing to the same filesystem, measured in turns over "
            f"{result['rounds']} round(s) (rotating order); per round and mode: {result['stores']} qdrant-store calls "
            f"from 1 client, {result['stores']} from 8 clients, one qdrant-store-many of {result['many_size']} "
            "documents (12-40 words). Medians over the rounds. `always` acknowledges a write once its WAL record is "
            "fsynced (concurrent writes share a sync); `interval` fsyncs the WAL every 1000 ms and acknowledges at "
            "once; the baseline never syncs a write (the engine flushes when writes pause).",
            "",
            table(
                [
                    "mode",
                    "store p50 ms @1",
                    "store p95 ms @1",
                    "stores/s @8",
                    "store p50 ms @8",
                    "store-many docs/s",
                    "other load (cores)",
                ],
                rows,
                "lrrrrrr",
            ),
        ]
    )
