"""Text embeddings: the seam between the scheduler and whatever computes the vectors.

Two providers implement `EmbeddingModel`: `fastembed` (the default: a local ONNX model,
offline, no key; fastembed.py) and `openai` (any service that speaks the OpenAI embeddings
API; openai.py). The seam is async so that the scheduler awaits both the same way: the local
model hands its blocking ONNX run to a worker thread, the remote one awaits its HTTP request
without holding a thread. Lanes, batching and the bound on runs in flight stay the scheduler's.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import Literal, Protocol

Kind = Literal["query", "document"]
# all-MiniLM-L6-v2 reads at most 256 word pieces per text; longer texts are truncated.
MAX_TOKENS = 256


class EmbeddingModelError(RuntimeError):
    """The model can never work as configured (missing from the cache while offline, unknown name):
    the server does not start."""


class EmbeddingModel(Protocol):
    """What computes vectors: loaded once, then asked for one batch of texts per run."""

    @property
    def name(self) -> str:
        """The model's name, as configured (EMBEDDING_MODEL)."""
        ...

    @property
    def description(self) -> str:
        """Which provider computes the vectors, and where, for /readyz and logs (never a key)."""
        ...

    def running(self) -> AbstractAsyncContextManager[None]:
        """Hold what the model needs (an HTTP connection pool) for the block; load() and embed()
        are called inside it."""
        ...

    async def load(self) -> int:
        """Make the model ready; returns the vector size. Raises EmbeddingModelError when it can
        never work as configured, errors.EmbeddingUnavailable when it cannot now (a remote service
        that is down): the scheduler then keeps serving and tries again."""
        ...

    async def embed(self, kind: Kind, texts: Sequence[str]) -> list[list[float]]: ...


class Embedder(Protocol):
    """What the store needs: a query vector, document vectors, and their size."""

    @property
    def model_name(self) -> str: ...

    @property
    def dimension(self) -> int:
        """The vector size; raises a ServiceError naming the reason while it is not known."""
        ...

    async def embed_query(self, text: str) -> list[float]: ...

    async def embed_documents(self, texts: Sequence[str]) -> list[list[float]]: ...


def token_estimate(text: str) -> int:
    """Padded tokens a text costs in a run, from its UTF-8 size: about one word piece per 3 bytes
    is an upper bound for English (about 4.5) and exact for CJK, whose characters are one piece each."""
    return min(MAX_TOKENS, 2 + len(text.encode("utf-8", "surrogatepass")) // 3)
