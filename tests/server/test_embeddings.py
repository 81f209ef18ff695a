"""Embeddings with the real all-MiniLM-L6-v2: the vectors, and the scheduler's guarantees."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import pytest
from store_engines import MODEL, LoadedModel

from qdrant_mcp_memory.embeddings import Kind, token_estimate
from qdrant_mcp_memory.errors import ServerBusy
from qdrant_mcp_memory.scheduler import RUN_TEXTS, RUN_TOKENS, EmbeddingScheduler, parse_cpu_max
from support import REPO

pytestmark = pytest.mark.anyio
# Texts and vectors computed by sentence-transformers itself (copied from ../shared/offline-models, so
# the suite runs where that folder is not: GitHub, the test image).
GOLDEN = REPO / "tests" / "data" / "minilm_golden.json"


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


class RecordingModel(LoadedModel):
    """The real model; remembers every run it was given (kind, texts) and when it finished."""

    def __init__(self, loaded: LoadedModel) -> None:
        super().__init__(loaded.model, loaded.dimension)
        self.runs: list[tuple[Kind, list[str], float]] = []

    async def embed(self, kind: Kind, texts: Sequence[str]) -> list[list[float]]:
        vectors = await self.model.embed(kind, texts)
        self.runs.append((kind, list(texts), time.monotonic()))
        return vectors


@asynccontextmanager
async def recording_scheduler(
    model: LoadedModel, **options: int
) -> AsyncIterator[tuple[EmbeddingScheduler, RecordingModel]]:
    recording = RecordingModel(model)
    scheduler = EmbeddingScheduler(recording, **options)
    async with scheduler.running():
        yield scheduler, recording


async def test_vectors_match_sentence_transformers(scheduler: EmbeddingScheduler) -> None:
    golden = json.loads(GOLDEN.read_text())
    vectors = await scheduler.embed_documents(golden["texts"])
    for got, want in zip(vectors, golden["vectors"], strict=True):
        assert cosine(got, want) > 0.9999
    assert scheduler.dimension == 384


async def test_concurrent_queries_share_runs_without_changing_results(model: LoadedModel) -> None:
    queries = [f"query number {i} about {topic}" for i, topic in enumerate(["towers", "plants", "bread", "money"] * 4)]
    alone = model.embed_blocking("query", queries)
    together: dict[int, list[float]] = {}
    async with recording_scheduler(model, document_workers=1) as (scheduler, recording):

        async def one(i: int) -> None:
            together[i] = await scheduler.embed_query(queries[i])

        async with anyio.create_task_group() as tasks:
            for i in range(len(queries)):
                tasks.start_soon(one, i)
    assert len(recording.runs) < len(queries), "concurrent queries should share ONNX runs"
    for i, vector in enumerate(alone):
        assert cosine(vector, together[i]) > 0.99999


async def test_large_calls_run_in_bounded_pieces_with_the_same_results(model: LoadedModel) -> None:
    # Long and short texts mixed: every run stays within RUN_TEXTS texts and RUN_TOKENS padded pieces.
    documents = [f"document {i} " + "about a rather long topic with many words " * (i % 40) for i in range(300)]
    alone = [model.embed_blocking("document", [text])[0] for text in documents[:20]]
    async with recording_scheduler(model, document_workers=2) as (scheduler, recording):
        vectors = await scheduler.embed_documents(documents)
    for run_kind, texts, _ in recording.runs:
        assert run_kind == "document" and len(texts) <= RUN_TEXTS
        assert len(texts) * max(token_estimate(t) for t in texts) <= RUN_TOKENS
    assert len(vectors) == len(documents)
    for expected, got in zip(alone, vectors, strict=False):
        assert cosine(expected, got) > 0.99999


async def test_a_query_does_not_wait_behind_bulk_writes(model: LoadedModel) -> None:
    documents = [f"bulk document {i} " + "with a good number of words in it " * 20 for i in range(400)]
    async with recording_scheduler(model, document_workers=1) as (scheduler, recording):
        bulk_done = anyio.Event()

        async def bulk() -> None:
            await scheduler.embed_documents(documents)
            bulk_done.set()

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(bulk)
            await anyio.sleep(0.2)  # the bulk call is running
            await scheduler.embed_query("a question asked meanwhile")
            assert not bulk_done.is_set(), "the query was answered only after the bulk call"
    query_run = next(i for i, (kind, _, _) in enumerate(recording.runs) if kind == "query")
    assert query_run < len(recording.runs) - 1


async def test_a_full_lane_refuses_at_once_and_keeps_serving(model: LoadedModel) -> None:
    async with recording_scheduler(model, document_workers=1, document_capacity=100) as (scheduler, _):
        filler_done = anyio.Event()

        async def filler() -> None:
            await scheduler.embed_documents([f"filler {i} " * 40 for i in range(100)])
            filler_done.set()

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(filler)
            await anyio.sleep(0.05)
            with pytest.raises(ServerBusy, match=r"busy.*retry"):
                await scheduler.embed_documents([f"overflow {i}" for i in range(60)])
            # At once: refused while the filler's texts still wait, not once the lane has room again.
            assert scheduler.queued_texts > 0 and not filler_done.is_set(), "refused only after the lane drained"
        assert len(await scheduler.embed_documents(["after the rush"])) == 1


async def test_an_abandoned_call_leaves_the_others_intact(model: LoadedModel) -> None:
    documents = [f"document {i} about cancellation" for i in range(120)]
    alone = model.embed_blocking("document", documents)
    async with recording_scheduler(model, document_workers=1) as (scheduler, _):
        results: list[list[float]] = []

        async def kept() -> None:
            results.extend(await scheduler.embed_documents(documents))

        async def abandoned() -> None:
            with anyio.move_on_after(0.01):
                await scheduler.embed_documents([f"abandoned {i}" for i in range(200)])

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(abandoned)
            tasks.start_soon(kept)
        assert scheduler.queued_texts == 0
    assert len(results) == len(documents)
    for expected, got in zip(alone, results, strict=True):
        assert cosine(expected, got) > 0.99999


@pytest.mark.parametrize(
    ("text", "cpus"), [("max 100000", None), ("150000 100000", 1.5), ("100000 100000\n", 1.0), ("garbage", None)]
)
def test_the_cgroup_cpu_quota_is_read(text: str, cpus: float | None) -> None:
    assert parse_cpu_max(text) == cpus


# Three document runs as large as the scheduler makes (32 texts of ~256 tokens), in a process of
# their own; what the process holds then above its size after the model's load.
_LARGE_RUNS = """
import sys
from pathlib import Path
from qdrant_mcp_memory.embeddings.fastembed import FastEmbedModel

def rss_mb():
    return int(next(line for line in open("/proc/self/status") if line.startswith("VmRSS")).split()[1]) // 1024

model = FastEmbedModel(sys.argv[1], Path(sys.argv[2]))
model.load_blocking()
loaded = rss_mb()
for run in range(3):
    model.embed_blocking("document", [f"text {run} {i} " + "many words in a long note " * 50 for i in range(32)])
print(rss_mb() - loaded)
"""


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc; the C heap is returned with glibc's malloc_trim")
def test_large_runs_hand_their_memory_back(offline_model: Path) -> None:
    """ONNX Runtime's arena kept each large run's buffers (RSS +250-480 MB after three of these
    runs); the provider asks it to shrink after them and returns the C heap's free pages."""
    proc = subprocess.run(
        [sys.executable, "-c", _LARGE_RUNS, MODEL, str(offline_model)],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    grown_mb = int(proc.stdout.split()[-1])
    assert grown_mb < 100, f"RSS grew {grown_mb} MB over three large runs"
