"""Text embeddings: the model (blocking ONNX runs) and the protocol the store uses.

The model is loaded once and shared. Each run is single-threaded: ONNX Runtime's
multi-threaded runs spin between parallel sections, which on a small machine burns the
core the event loop needs. Parallelism comes from several runs at once (see scheduler.py).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    from fastembed import TextEmbedding

log = logging.getLogger(__name__)

Kind = Literal["query", "document"]
# all-MiniLM-L6-v2 reads at most 256 word pieces per text; longer texts are truncated.
MAX_TOKENS = 256


class EmbeddingModelError(RuntimeError):
    """The model cannot be loaded (missing from the cache while offline, unknown name)."""


class EmbeddingModel(Protocol):
    """A loaded model: one blocking run embeds a batch of texts (called from worker threads)."""

    @property
    def name(self) -> str: ...

    def load(self) -> int:
        """Load the model; returns the vector size."""
        ...

    def embed(self, kind: Kind, texts: Sequence[str]) -> list[list[float]]: ...


class Embedder(Protocol):
    """What the store needs: a query vector, document vectors, and their size."""

    @property
    def model_name(self) -> str: ...

    @property
    def dimension(self) -> int: ...

    async def embed_query(self, text: str) -> list[float]: ...

    async def embed_documents(self, texts: Sequence[str]) -> list[list[float]]: ...


def token_estimate(text: str) -> int:
    """Padded tokens a text costs in a run, from its UTF-8 size: about one word piece per 3 bytes
    is an upper bound for English (about 4.5) and exact for CJK, whose characters are one piece each."""
    return min(MAX_TOKENS, 2 + len(text.encode("utf-8", "surrogatepass")) // 3)


class FastEmbedModel:
    """A fastembed `TextEmbedding` with single-threaded ONNX runs."""

    def __init__(self, name: str, cache: Path) -> None:
        self._name = name
        self._cache = cache
        self._model: TextEmbedding | None = None

    @property
    def name(self) -> str:
        return self._name

    def load(self) -> int:
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

    def embed(self, kind: Kind, texts: Sequence[str]) -> list[list[float]]:
        if self._model is None:
            raise EmbeddingModelError(f"embedding model {self._name!r} is not loaded")
        run = self._model.query_embed if kind == "query" else self._model.passage_embed
        # batch_size = all of them: the scheduler already cut a bounded run.
        return [vector.tolist() for vector in run(list(texts), batch_size=max(1, len(texts)))]
