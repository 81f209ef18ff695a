"""The default provider: a fastembed model run in this process (ONNX, offline, no key).

The model is loaded once and shared. Each run is single-threaded: ONNX Runtime's
multi-threaded runs spin between parallel sections, which on a small machine burns the
core the event loop needs. Parallelism comes from several runs at once (see scheduler.py),
each in a worker thread.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import anyio.to_thread

from . import EmbeddingModelError, Kind

if TYPE_CHECKING:
    from fastembed import TextEmbedding

log = logging.getLogger(__name__)


class FastEmbedModel:
    """A fastembed `TextEmbedding` with single-threaded ONNX runs, each in a worker thread."""

    def __init__(self, name: str, cache: Path) -> None:
        self._name = name
        self._cache = cache
        self._model: TextEmbedding | None = None

    @property
    def name(self) -> str:
        return self._name

    @property
    def description(self) -> str:
        return "fastembed (in this process)"

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        yield  # nothing to hold: the loaded model lives as long as the process

    async def load(self) -> int:
        # Seconds of file reading and ONNX set-up: off the event loop.
        return await anyio.to_thread.run_sync(self.load_blocking)

    def load_blocking(self) -> int:
        # onnxruntime reports usage to its vendor unless told not to; a memory server should not.
        os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
        from fastembed import TextEmbedding

        try:
            model = TextEmbedding(self._name, threads=1, cache_dir=str(self._cache))
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
        # One warm-up run pays ONNX's first-run cost now and tells the dimension.
        dimension = len(next(iter(model.embed(["warm-up"]))))
        self._model = model
        log.info("embedding model loaded", extra={"model": self._name, "dimension": dimension})
        return dimension

    async def embed(self, kind: Kind, texts: Sequence[str]) -> list[list[float]]:
        return await anyio.to_thread.run_sync(self.embed_blocking, kind, texts)

    def embed_blocking(self, kind: Kind, texts: Sequence[str]) -> list[list[float]]:
        if self._model is None:
            raise EmbeddingModelError(f"embedding model {self._name!r} is not loaded")
        run = self._model.query_embed if kind == "query" else self._model.passage_embed
        # batch_size = all of them: the scheduler already cut a bounded run.
        return [vector.tolist() for vector in run(list(texts), batch_size=max(1, len(texts)))]
