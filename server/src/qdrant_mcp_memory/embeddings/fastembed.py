"""The default provider: a fastembed model run in this process (ONNX, offline, no key).

The model is loaded once and shared. Each run is single-threaded: ONNX Runtime's
multi-threaded runs spin between parallel sections, which on a small machine burns the
core the event loop needs. Parallelism comes from several runs at once (see scheduler.py),
each in a worker thread. With `quantized`, the model's int8 variant runs instead (quantize.py).

Memory: ONNX Runtime's arena keeps the largest run's buffers for good (a store-many of long
texts left the process 120 MB above idle, and each such run can grow it further), so a run
larger than a query's asks it to hand back what it grew by, and the C heap's free pages (the
model file's parse among them) go back to the system after the load and after such runs.
Measured on all-MiniLM-L6-v2: RSS after a 32 x 256-token run 409 -> 153 MB for 7 % more CPU on
that run; a query's run is left as it was.
"""

from __future__ import annotations

import ctypes
import logging
import os
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio.to_thread

from . import EmbeddingModelError, Kind
from .quantize import quantized_folder

if TYPE_CHECKING:
    from fastembed import TextEmbedding

log = logging.getLogger(__name__)

# Tokens in one run above which the run's arena growth is handed back (a query is 1 x ~16).
LARGE_RUN_TOKENS = 1024


class FastEmbedModel:
    """A fastembed `TextEmbedding` with single-threaded ONNX runs, each in a worker thread."""

    def __init__(self, name: str, cache: Path, *, quantized: bool = False) -> None:
        self._name = name
        self._cache = cache
        self._quantized = quantized
        self._model: TextEmbedding | None = None

    @property
    def name(self) -> str:
        return self._name

    @property
    def description(self) -> str:
        return "fastembed (in this process, int8)" if self._quantized else "fastembed (in this process)"

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        yield  # nothing to hold: the loaded model lives as long as the process

    async def load(self) -> int:
        # Seconds of file reading and ONNX set-up: off the event loop.
        return await anyio.to_thread.run_sync(self.load_blocking)

    def load_blocking(self) -> int:
        # onnxruntime reports usage to its vendor unless told not to; a memory server should not.
        os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
        try:
            model = self._open()
        except ValueError as exc:
            hint = (
                " HF_HUB_OFFLINE=1 forbids downloading it: bake it into the image or point FASTEMBED_CACHE_PATH"
                " at a cache that holds it."
                if os.environ.get("HF_HUB_OFFLINE") in ("1", "true", "True")
                else ""
            )
            raise EmbeddingModelError(
                f"cannot load embedding model {self._name!r} (FASTEMBED_CACHE_PATH={self._cache}): "
                f"{str(exc).rstrip('.')}.{hint}"
            ) from None
        _release_arena_growth(model)
        # One warm-up run pays ONNX's first-run cost now and tells the dimension.
        dimension = len(next(iter(model.embed(["warm-up"]))))
        release_free_heap()
        self._model = model
        log.info("embedding model loaded", extra={"model": self._name, "dimension": dimension})
        return dimension

    def _open(self) -> TextEmbedding:
        from fastembed import TextEmbedding

        cache = str(self._cache)
        if not self._quantized:
            return TextEmbedding(self._name, threads=1, cache_dir=cache)
        from fastembed.text.onnx_embedding import OnnxTextEmbedding

        # Where fastembed keeps the original (found, not loaded), then the int8 folder made from it.
        original = TextEmbedding(self._name, cache_dir=cache, lazy_load=True).model
        if not isinstance(original, OnnxTextEmbedding):
            raise EmbeddingModelError(f"EMBEDDING_QUANTIZED=true needs an ONNX model; {self._name!r} is not one")
        folder = quantized_folder(original._model_dir, original.model_description.model_file, self._cache)
        return TextEmbedding(self._name, threads=1, cache_dir=cache, specific_model_path=str(folder))

    async def embed(self, kind: Kind, texts: Sequence[str]) -> list[list[float]]:
        return await anyio.to_thread.run_sync(self.embed_blocking, kind, texts)

    def embed_blocking(self, kind: Kind, texts: Sequence[str]) -> list[list[float]]:
        if self._model is None:
            raise EmbeddingModelError(f"embedding model {self._name!r} is not loaded")
        run = self._model.query_embed if kind == "query" else self._model.passage_embed
        # batch_size = all of them: the scheduler already cut a bounded run.
        return [vector.tolist() for vector in run(list(texts), batch_size=max(1, len(texts)))]


class _ArenaReleasingSession:
    """An ONNX Runtime session whose large runs shrink its memory arena back once they are done."""

    def __init__(self, session: Any) -> None:
        import onnxruntime  # type: ignore[import-untyped]

        self._session = session
        self._shrink = onnxruntime.RunOptions()
        self._shrink.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")

    def run(self, output_names: Any, input_feed: Mapping[str, Any], run_options: Any = None) -> Any:
        large = max((getattr(value, "size", 0) for value in input_feed.values()), default=0) > LARGE_RUN_TOKENS
        result = self._session.run(output_names, input_feed, run_options or (self._shrink if large else None))
        if large:
            release_free_heap()
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self._session, name)


def _release_arena_growth(model: TextEmbedding) -> None:
    """Wrap the session fastembed runs (TextEmbedding.model.model, its ONNX Runtime session)."""
    runner = getattr(model, "model", None)
    session = getattr(runner, "model", None)
    if session is None or not hasattr(session, "run"):
        log.warning("embedding model's ONNX session not found: its memory arena keeps what large runs grew")
        return
    runner.model = _ArenaReleasingSession(session)  # type: ignore[union-attr]


@cache
def _malloc_trim() -> Any:
    # The process's own symbols, libc's among them; glibc only: elsewhere there is nothing to call.
    return getattr(ctypes.CDLL(None), "malloc_trim", None)


def release_free_heap() -> None:
    """Return the C heap's free pages to the system (glibc's malloc_trim; a no-op elsewhere)."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
