"""The query path in one process, without MCP: what embedding one query costs, and what the int8
model gives up. Run in our server's interpreter (it imports the server package):

    python -m bench.queryprobe MODEL_CACHE INT8_CACHE SEED QUICK   # prints one JSON object

- `session_options`: CPU and wall time per short query through ONNX Runtime sessions made
  with each option (intra-op threads, spinning, graph optimisation, arena, execution mode),
  beside the server's own path (FastEmbedModel, fp32 and int8: tokenizer, run, pooling, list).
  Blocks of calls with a pause between calls (as queries arrive one at a time), the variants
  interleaved over rounds, medians. CPU is the process's (every ONNX thread, spinning included).
- `batching`: CPU per query when 8 queries share one run, against 8 runs of one.
- `cache`: CPU per answer from the query cache (a hit), against the model (a miss).
- `quality`: the int8 model against fp32 on bench/evalset.py (recall@1/@5 with documents and
  queries from one model, and int8 queries against fp32 documents: what the vector name
  prevents), and rank agreement on generated documents (top-5 overlap, top-1 agreement).
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from .evalset import Embed, dense_recall, dense_sets, unit
from .workload import corpus_text, queries

MODEL = "sentence-transformers/all-MiniLM-L6-v2"
PAUSE_S = 0.002  # between calls in a block: the gap between one client's finds
BLOCK = 20
SETTLE_S = 0.2


def session(path: Path, threads: int = 1, **options: Any) -> ort.InferenceSession:
    """A CPU session as fastembed makes it (all graph optimisations, `threads` intra and inter),
    changed by `options`."""
    so = ort.SessionOptions()
    so.graph_optimization_level = options.pop("optimization", ort.GraphOptimizationLevel.ORT_ENABLE_ALL)
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = options.pop("inter", threads)
    so.enable_cpu_mem_arena = options.pop("arena", True)
    if "mode" in options:
        so.execution_mode = options.pop("mode")
    if "spinning" in options:
        so.add_session_config_entry("session.intra_op.allow_spinning", "1" if options.pop("spinning") else "0")
    return ort.InferenceSession(str(path), sess_options=so, providers=["CPUExecutionProvider"])


def timed(calls: dict[str, Callable[[int], object]], rounds: int) -> dict[str, dict[str, float]]:
    """Per variant: median CPU and wall ms per call over `rounds` blocks, the variants interleaved."""
    cpu: dict[str, list[float]] = {name: [] for name in calls}
    wall: dict[str, list[float]] = {name: [] for name in calls}
    for call in calls.values():
        for i in range(5):
            call(i)  # first runs: allocations, caches
    for turn in range(rounds):
        names = list(calls)
        names = names[turn % len(names) :] + names[: turn % len(names)]
        for name in names:
            # The previous variant's ONNX threads spin on after its last run and would be counted
            # as this variant's CPU (the process's): let them go idle first.
            time.sleep(SETTLE_S)
            busy = 0.0
            start_cpu = time.process_time()
            for i in range(BLOCK):
                started = time.perf_counter()
                calls[name](turn * BLOCK + i)
                busy += time.perf_counter() - started
                time.sleep(PAUSE_S)
            cpu[name].append((time.process_time() - start_cpu) * 1000 / BLOCK)
            wall[name].append(busy * 1000 / BLOCK)
    return {
        name: {"cpu_ms": round(statistics.median(cpu[name]), 3), "wall_ms": round(statistics.median(wall[name]), 3)}
        for name in calls
    }


def session_options(fp32: Any, int8: Any, texts: list[str], rounds: int) -> dict[str, dict[str, float]]:
    inner = fp32.fastembed
    tokenizer, folder = inner.tokenizer, inner._model_dir
    feeds = []
    for text in texts:
        encoded = tokenizer.encode_batch([text])
        ids = np.array([e.ids for e in encoded], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encoded], dtype=np.int64)
        feeds.append({"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)})
    file = folder / inner.model_description.model_file
    level = ort.GraphOptimizationLevel
    sessions = {
        "ONNX run, 1 thread (fastembed's options)": session(file),
        "ONNX run, 1 thread, graph optimisation basic": session(file, optimization=level.ORT_ENABLE_BASIC),
        "ONNX run, 1 thread, graph optimisation off": session(file, optimization=level.ORT_DISABLE_ALL),
        "ONNX run, 1 thread, no memory arena": session(file, arena=False),
        "ONNX run, 2 threads, spinning": session(file, threads=2, spinning=True),
        "ONNX run, 2 threads, no spinning": session(file, threads=2, spinning=False),
        "ONNX run, 2 threads, parallel execution mode": session(file, threads=2, mode=ort.ExecutionMode.ORT_PARALLEL),
        "ONNX run, int8, 1 thread": session(int8.fastembed._model_dir / inner.model_description.model_file),
    }

    def run(handle: ort.InferenceSession) -> Callable[[int], object]:
        return lambda i: handle.run(None, feeds[i % len(feeds)])

    calls: dict[str, Callable[[int], object]] = {
        "server's path, fp32 (tokenizer, run, pooling, list)": lambda i: fp32.embed("query", [texts[i % len(texts)]]),
        "server's path, int8": lambda i: int8.embed("query", [texts[i % len(texts)]]),
        **{name: run(handle) for name, handle in sessions.items()},
    }
    return timed(calls, rounds)


def batching(model: Any, texts: list[str], rounds: int) -> dict[str, float]:
    eight = [texts[i : i + 8] for i in range(0, len(texts) - 7, 8)]
    calls: dict[str, Callable[[int], object]] = {
        "one run of 8": lambda i: model.embed("query", eight[i % len(eight)]),
        "8 runs of 1": lambda i: [model.embed("query", [text]) for text in eight[i % len(eight)]],
    }
    measured = timed(calls, rounds)
    return {
        "cpu_ms_per_query_batched": round(measured["one run of 8"]["cpu_ms"] / 8, 3),
        "cpu_ms_per_query_alone": round(measured["8 runs of 1"]["cpu_ms"] / 8, 3),
    }


def cache_hit(model: Any, texts: list[str]) -> dict[str, float]:
    from qdrant_mcp_memory.querycache import QueryCache

    class Direct:  # the model as the cache's Embedder, without the scheduler's threads
        model_name = MODEL
        dimension = 384

        async def embed_query(self, text: str) -> list[float]:
            return model.embed("query", [text])[0]

        async def embed_documents(self, batch: list[str]) -> list[list[float]]:
            return model.embed("document", batch)

    cache = QueryCache(Direct(), len(texts))

    async def measure() -> tuple[float, float]:
        start = time.process_time()
        for text in texts:
            await cache.embed_query(text)
        missed = time.process_time() - start
        start = time.process_time()
        for _ in range(20):
            for text in texts:
                await cache.embed_query(text)
        return missed / len(texts), (time.process_time() - start) / (20 * len(texts))

    miss, hit = asyncio.run(measure())
    return {"cpu_ms_per_miss": round(miss * 1000, 3), "cpu_ms_per_hit": round(hit * 1000, 4)}


def normalized(model: Any, kind: str, texts: list[str]) -> np.ndarray:
    return unit([v for start in range(0, len(texts), 32) for v in model.embed(kind, texts[start : start + 32])])


def quality(fp32: Any, int8: Any, seed: int, documents: int, asked: int) -> dict[str, Any]:
    def embedder(model: Any, kind: str) -> Embed:
        return lambda texts: model.embed(kind, texts)

    notes, sets = dense_sets()
    recall = {
        label: dense_recall(embedder(documents_by, "document"), embedder(queries_by, "query"))
        for label, documents_by, queries_by in (
            ("fp32 documents, fp32 queries", fp32, fp32),
            ("int8 documents, int8 queries", int8, int8),
            ("fp32 documents, int8 queries (mixed)", fp32, int8),
        )
    }
    # Rank agreement on generated documents: int8's top 5 against fp32's, per query.
    texts = [corpus_text(seed, i) for i in range(documents)]
    asked_texts = queries(seed, "queryprobe", asked, set())
    corpus = {"fp32": normalized(fp32, "document", texts), "int8": normalized(int8, "document", texts)}
    query = {"fp32": normalized(fp32, "query", asked_texts), "int8": normalized(int8, "query", asked_texts)}
    top = {name: np.argsort(-(query[name] @ corpus[name].T), axis=1)[:, :5] for name in corpus}
    mixed = np.argsort(-(query["int8"] @ corpus["fp32"].T), axis=1)[:, :5]

    def overlap(found: np.ndarray) -> float:
        return round(float(np.mean([len(set(a) & set(b)) / 5 for a, b in zip(found, top["fp32"], strict=True)])), 3)

    def agreement(found: np.ndarray, expected: np.ndarray) -> float:
        return round(float(np.mean(found[:, 0] == expected[:, 0])), 3)

    cosines = np.sum(query["fp32"] * query["int8"], axis=1)
    return {
        "evaluation set": {"notes": len(notes), "queries": {k: len(v) for k, v in sets.items()}, "recall": recall},
        "rank agreement": {
            "documents": documents,
            "queries": asked,
            "top-5 overlap with fp32, int8 collection": overlap(top["int8"]),
            "top-1 agreement with fp32, int8 collection": agreement(top["int8"], top["fp32"]),
            "top-5 overlap with fp32, int8 queries on fp32 documents": overlap(mixed),
            "query vector cosine int8 vs fp32 (mean, min)": [
                round(float(v), 4) for v in (cosines.mean(), cosines.min())
            ],
        },
    }


class Loaded:
    """FastEmbedModel, loaded, with its blocking call and fastembed's inner model at hand."""

    def __init__(self, cache: Path, quantized: bool) -> None:
        from qdrant_mcp_memory.embeddings.fastembed import FastEmbedModel

        self.model = FastEmbedModel(MODEL, cache, quantized=quantized)
        self.model.load_blocking()
        self.fastembed = self.model._model.model  # type: ignore[union-attr]
        self.embed = self.model.embed_blocking


def main(model_cache: str, int8_cache: str, seed: str, quick: str) -> int:
    small = quick == "1"
    fp32, int8 = Loaded(Path(model_cache), False), Loaded(Path(int8_cache), True)
    texts = queries(int(seed), "queryprobe-speed", 64, set())
    rounds = 3 if small else 15
    started = time.monotonic()
    result = {
        "session_options": session_options(fp32, int8, texts, rounds),
        "batching": batching(fp32, texts, rounds),
        "cache": cache_hit(fp32, texts),
        "quality": quality(fp32, int8, int(seed), 300 if small else 2000, 50 if small else 300),
        "rounds": rounds,
        "block": BLOCK,
        "pause_s": PAUSE_S,
        "onnxruntime": ort.__version__,
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
    result["seconds"] = round(time.monotonic() - started, 1)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(*sys.argv[1:5]))
