"""BM25 term weights for hybrid search, computed in this process by Qdrant's own BM25 model.

`qdrant_edge.Bm25` is the model a Qdrant server runs for server-side BM25 inference
(`qdrant/bm25`), so the vectors written here are the ones a server would compute: a
collection keeps searching the same on either engine, and a remote Qdrant needs no
inference service. The IDF part lives in the collection (the sparse vector's IDF modifier).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from .backends import SparseVector

if TYPE_CHECKING:
    import qdrant_edge

# Qdrant's server-side BM25 defaults (its Bm25Config): written out so a change of the
# library's defaults cannot silently change stored vectors.
BM25_K = 1.2
BM25_B = 0.75
BM25_AVG_LEN = 256.0
BM25_LANGUAGE = "english"


class Bm25Encoder:
    def __init__(self) -> None:
        self._model: qdrant_edge.Bm25 | None = None

    def _bm25(self) -> qdrant_edge.Bm25:
        if self._model is None:
            import qdrant_edge

            config = qdrant_edge.Bm25Config(k=BM25_K, b=BM25_B, avg_len=BM25_AVG_LEN, language=BM25_LANGUAGE)
            self._model = qdrant_edge.Bm25(config)
        return self._model

    def documents(self, texts: Sequence[str]) -> list[SparseVector]:
        model = self._bm25()
        return [_convert(model.embed_document(text)) for text in texts]

    def query(self, text: str) -> SparseVector:
        return _convert(self._bm25().embed_query(text))


def _convert(vector: qdrant_edge.SparseVector) -> SparseVector:
    return SparseVector(list(vector.indices), list(vector.values))
