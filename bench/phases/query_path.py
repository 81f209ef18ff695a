"""The query path without MCP: what one query's embedding costs with each ONNX Runtime option,
batched or not, from the query cache, and what the int8 model (EMBEDDING_QUANTIZED) gives up.

bench/queryprobe.py does the work in a child process with our server's interpreter (its
imports: the server package, onnxruntime). The int8 model is made once into a copy of the model
cache kept in $BENCH_CACHE, as a server with EMBEDDING_QUANTIZED=true makes it into its own.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

from .. import paths
from ..context import Context
from ..progress import log
from ..report import table

NAME = "query-path"
SUMMARY = "one query's embedding: ONNX Runtime options, batching, the query cache, the int8 model's speed and recall"


def int8_cache(model_cache: Path) -> Path:
    """A writable copy of the model cache for the int8 model (the original may be read-only)."""
    copy = paths.cache_dir() / "int8-model-cache"
    if not copy.is_dir():
        staging = copy.with_name(copy.name + ".making")
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(model_cache, staging, symlinks=True)
        staging.rename(copy)
    return copy


async def run(context: Context) -> dict[str, Any]:
    result: dict[str, Any] = {"errors": 0, "fatal": None}
    command = [
        context.ours_python,
        "-m",
        "bench.queryprobe",
        str(context.model_cache),
        str(int8_cache(context.model_cache)),
        str(context.seed),
        "1" if context.quick else "0",
    ]
    done = await asyncio.to_thread(
        subprocess.run, command, cwd=paths.REPO, capture_output=True, text=True, check=False, timeout=1800
    )
    if done.returncode != 0:
        result["fatal"] = f"queryprobe exited {done.returncode}: {done.stderr.strip()[-2000:]}"
        return result
    result["probe"] = json.loads(done.stdout)
    fp32 = result["probe"]["session_options"]["server's path, fp32 (tokenizer, run, pooling, list)"]
    int8 = result["probe"]["session_options"]["server's path, int8"]
    log(f"  CPU per query: fp32 {fp32['cpu_ms']} ms, int8 {int8['cpu_ms']} ms")
    return result


def markdown(result: dict[str, Any]) -> str:
    probe = result.get("probe")
    if not probe:
        return f"not measured: {result.get('fatal')}"
    speed = [[name, row["cpu_ms"], row["wall_ms"]] for name, row in probe["session_options"].items()]
    batching, cache = probe["batching"], probe["cache"]
    quality = probe["quality"]
    recall = quality["evaluation set"]["recall"]
    metrics = list(next(iter(recall.values())))
    agreement = quality["rank agreement"]
    return "\n".join(
        [
            f"One short query at a time (blocks of {probe['block']} calls {probe['pause_s'] * 1000:g} ms apart, the "
            f"variants in turns over {probe['rounds']} rounds, medians; CPU is the whole process's, spinning threads "
            f"included), onnxruntime {probe['onnxruntime']}, load average {probe['load_average']}.",
            "",
            table(["variant", "CPU/query (ms)", "wall/query (ms)"], speed),
            "",
            f"Batching, CPU per query: {batching['cpu_ms_per_query_batched']} ms in one run of 8, "
            f"{batching['cpu_ms_per_query_alone']} ms in runs of 1. Query cache: {cache['cpu_ms_per_hit']} ms per "
            f"hit, {cache['cpu_ms_per_miss']} ms per miss.",
            "",
            f"int8 against fp32 on bench/evalset.py ({quality['evaluation set']['notes']} notes, queries "
            f"{quality['evaluation set']['queries']}), plain dense search:",
            "",
            table(["documents, queries", *metrics], [[label, *row.values()] for label, row in recall.items()]),
            "",
            f"Rank agreement on {agreement['documents']} generated documents, {agreement['queries']} queries: "
            + ", ".join(f"{name} {value}" for name, value in agreement.items() if name not in ("documents", "queries")),
        ]
    )
