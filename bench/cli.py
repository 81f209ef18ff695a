"""`python -m bench`: parse the options, run the chosen phases, write the JSON and print the report.

    python -m bench                       # every phase, full size (about an hour the first time)
    python -m bench --quick               # every phase, small (the test suite runs this)
    python -m bench --phases compare      # a comma list of: compare, worst-call, head-of-line,
                                          # bulk-store, durability, lifecycle, scale
    python -m bench --only ours           # leave the official server out
    python -m bench --profile             # py-spy profile of each server under 8-client finds

Exit status: 0 every phase finished with 0 errors; 1 a phase failed or some call did;
2 setup the benchmark cannot do (official venv, model cache, interpreter); 130/143 when
interrupted (servers are stopped either way).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import json
import logging
import os
import platform
import signal
import sys
import time
from pathlib import Path
from typing import Any

from . import provision, report
from .context import Context
from .driver import connector, load_client_sdk
from .errors import BenchError, SetupError
from .paths import REPO_PYTHON, RESULTS_DIR
from .phases import PHASES, load
from .procfs import load_average
from .progress import log
from .servers import MODERN, parse_assignments


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small versions of every phase (the test suite's run)")
    parser.add_argument("--phases", default=",".join(PHASES), help=f"comma list of: {', '.join(PHASES)} (default all)")
    parser.add_argument("--only", choices=["ours", "official"], help="one server only (compare and scale)")
    parser.add_argument("--json-out", default=str(RESULTS_DIR / "latest.json"))
    parser.add_argument("--md-out", default=None, help="also write the Markdown report here")
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument(
        "--client",
        choices=["sdk", "raw"],
        default="sdk",
        help="sdk: the mcp 2.3.0 Client (default); raw: a minimal httpx JSON-RPC client (legacy "
        "only) to cross-check how much the SDK client's CPU weighs",
    )
    parser.add_argument(
        "--ours-env",
        action="append",
        default=[],
        metavar="K=V",
        help="extra settings for our server only, e.g. EMBEDDING_THREADS=1 (repeatable)",
    )
    parser.add_argument("--ours-python", default=os.environ.get("BENCH_OURS_PYTHON", str(REPO_PYTHON)))
    parser.add_argument("--ready-timeout", type=float, default=120.0)
    parser.add_argument(
        "--prepare", action="store_true", help="only make the cached data the chosen phases use (corpus, folders)"
    )

    compare = parser.add_argument_group("compare")
    compare.add_argument("--stores", type=int, help="N stores per store phase (default 1000, quick 40)")
    compare.add_argument("--finds", type=int, help="M finds per find phase (default 1000, quick 40)")
    compare.add_argument("--many", type=int, help="docs in the single store-many call (default 1000, quick 100)")
    compare.add_argument("--noop", type=int, help="tools/list calls per no-op baseline phase (default 300, quick 40)")
    compare.add_argument("--clients", type=int, default=8, help="the high concurrency level (default 8)")
    compare.add_argument("--no-modern", action="store_true", help=f"skip the {MODERN} era run of ours")
    compare.add_argument("--order", default="official,ours", help="server order (default official,ours)")
    compare.add_argument("--profile", action="store_true", help="profile each server with py-spy under 8-client finds")
    compare.add_argument("--profile-finds", type=int, help="finds in the profiled phase (default 2000, quick 200)")
    compare.add_argument("--profile-rate", type=int, default=200, help="py-spy samples per second")

    scale = parser.add_argument_group("scale")
    scale.add_argument("--scale-sizes", help="points per collection, comma list (default 1000,10000,100000; quick 300)")
    scale.add_argument("--scale-finds", type=int, help="finds per measurement (default 300, quick 20)")
    scale.add_argument(
        "--scale-engines",
        default="edge,local-mode,official",
        help="which of edge, local-mode (ours on qdrant-client local mode), official",
    )
    scale.add_argument(
        "--scale-profile",
        action="store_true",
        help="py-spy profile of each engine under 8-client finds at the largest size",
    )

    calls = parser.add_argument_group("worst-call, head-of-line, bulk-store")
    calls.add_argument("--bulk-calls", type=int, help="store-many calls in bulk-store (default 10, quick 2)")
    calls.add_argument("--bulk-size", type=int, help="documents per bulk-store call (default 1000, quick 100)")
    return parser.parse_args(argv)


def selected_phases(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in PHASES]
    if unknown:
        raise SetupError(f"unknown phase(s) {', '.join(unknown)}: choose from {', '.join(PHASES)}")
    return [name for name in PHASES if name in names]  # always in the canonical order


async def run(options: argparse.Namespace) -> int:
    logging.getLogger("mcp").setLevel(logging.CRITICAL)  # SSE teardown noise on session close
    phases = selected_phases(options.phases)
    json_out = Path(options.json_out)
    out_dir = json_out.parent
    started = time.perf_counter()
    meta: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "quick": options.quick,
        "phases": phases,
        "cpus": os.cpu_count(),
        "loadavg_before": load_average(),
        "python": platform.python_version(),
        "argv": sys.argv,
        "client": options.client,
        "client_versions": {name: importlib.metadata.version(name) for name in ("mcp", "httpx")},
        "model": provision.MODEL,
        "seed": options.seed,
    }
    load_client_sdk()
    model_cache = provision.model_cache()
    meta["model_cache"] = str(model_cache)
    context = Context(
        quick=options.quick,
        seed=options.seed,
        out_dir=out_dir,
        model_cache=model_cache,
        ours_python=options.ours_python,
        ours_env=parse_assignments(options.ours_env),
        connect=connector(options.client),
        client_kind=options.client,
        with_official=options.only != "ours",
        options=options,
    )
    results: dict[str, dict[str, Any]] = {}
    full = {"meta": meta, "phases": results, "ok": False}
    for name in phases:
        phase = load(name)
        log(f"== phase {name}: {phase.SUMMARY}")
        phase_started = time.perf_counter()
        try:
            if options.prepare:
                prepare = getattr(phase, "prepare", None)
                results[name] = await prepare(context) if prepare else {"errors": 0, "fatal": None, "skipped": True}
            else:
                results[name] = await phase.run(context)
        except SetupError:
            raise
        except BenchError as exc:
            log(f"phase {name} FAILED: {exc}")
            results[name] = {"errors": 0, "fatal": str(exc)}
        results[name]["seconds"] = round(time.perf_counter() - phase_started, 1)
        results[name]["loadavg_after"] = load_average()
        _write(json_out, json.dumps(full, indent=2, default=str))  # a run that dies keeps what it measured
    meta["loadavg_after"] = load_average()
    meta["total_s"] = round(time.perf_counter() - started, 1)
    full["ok"] = all(not result.get("fatal") and result.get("errors", 0) == 0 for result in results.values())
    sections = {} if options.prepare else {name: load(name).markdown for name in results}
    text = report.document(full, sections)
    text += f"\n\nTotal bench time {meta['total_s']} s. JSON: `{json_out}`\n"
    _write(json_out, json.dumps(full, indent=2, default=str))
    if options.md_out:
        _write(Path(options.md_out), text)
    print(text, flush=True)
    return 0 if full["ok"] else 1


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


async def _cancellable(options: argparse.Namespace) -> int:
    """run(), cancelled on SIGTERM so that every server it started is stopped on the way out."""
    task = asyncio.current_task()
    if task is not None:
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        return await run(options)
    except asyncio.CancelledError:
        log("terminated")
        return 143


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    try:
        return asyncio.run(_cancellable(options))
    except SetupError as exc:
        log(f"FATAL: {exc}")
        return 2
    except KeyboardInterrupt:
        log("interrupted")
        return 130
