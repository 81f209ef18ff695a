"""The scale phase's corpus: generated documents and their real embeddings, computed once, cached.

Loading 100 000 points through MCP would spend most of an hour embedding. Instead the
documents are embedded here once, by the same model the servers use (fastembed,
all-MiniLM-L6-v2, as passages: what a store would write), and the vectors are kept as
float32 `.npy` files under `$BENCH_CACHE/corpus-v1-seed<seed>/`, in pieces of at most
10 000 rows named by the rows they hold. Document i is the same text whatever the size
asked for (workload.corpus_text), so a larger corpus extends a smaller one, an interrupted
computation keeps its finished pieces, and finds against it are meaningful.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import TYPE_CHECKING

from .paths import cache_dir
from .progress import log
from .provision import MODEL, file_lock
from .workload import corpus_text

if TYPE_CHECKING:
    import numpy

VERSION = 1
DIMENSION = 384
PIECE_ROWS = 10_000
BATCH = 64
_PIECE = re.compile(r"vectors-(\d{6})-(\d{6})\.npy")


def folder(seed: int) -> Path:
    path = cache_dir() / f"corpus-v{VERSION}-seed{seed}"
    path.mkdir(parents=True, exist_ok=True)
    return path


def texts(seed: int, count: int) -> list[str]:
    return [corpus_text(seed, index) for index in range(count)]


def _pieces(path: Path) -> list[tuple[int, int, Path]]:
    """The cached pieces that cover rows 0..k contiguously, in order."""
    found = sorted(
        (int(m.group(1)), int(m.group(2)), p) for p in path.glob("vectors-*.npy") if (m := _PIECE.fullmatch(p.name))
    )
    contiguous, covered = [], 0
    for start, stop, piece in found:
        if start == covered and stop > start:
            contiguous.append((start, stop, piece))
            covered = stop
    return contiguous


def vectors(seed: int, count: int, model_cache: Path) -> numpy.ndarray:
    """The first `count` documents' embeddings, shape (count, 384), float32, unit length."""
    import numpy

    path = folder(seed)
    pieces = _pieces(path)  # pieces appear whole (written, then renamed): reading needs no lock
    if not pieces or pieces[-1][1] < count:
        with file_lock(path / ".lock"):  # one computation at a time; it may have run meanwhile
            pieces = _pieces(path)
            covered = pieces[-1][1] if pieces else 0
            if covered < count:
                _compute(seed, covered, count, path, model_cache)
                pieces = _pieces(path)
    parts, rows = [], 0
    for _, stop, piece in pieces:
        if rows >= count:
            break
        parts.append(numpy.load(piece, mmap_mode="r"))
        rows = stop
    matrix = numpy.concatenate(parts)[:count]
    return numpy.ascontiguousarray(matrix, dtype=numpy.float32)


def _compute(seed: int, start: int, stop: int, path: Path, model_cache: Path) -> None:
    import numpy
    from fastembed import TextEmbedding

    log(f"embedding corpus documents {start}..{stop} (cached in {path}) ...")
    model = TextEmbedding(MODEL, cache_dir=str(model_cache))
    began = time.perf_counter()
    for low in range(start, stop, PIECE_ROWS):
        high = min(stop, low + PIECE_ROWS)
        batch = [corpus_text(seed, index) for index in range(low, high)]
        matrix = numpy.asarray(list(model.passage_embed(batch, batch_size=BATCH)), dtype=numpy.float32)
        if matrix.shape != (high - low, DIMENSION):
            raise RuntimeError(f"the model made vectors of shape {matrix.shape}, expected {(high - low, DIMENSION)}")
        target = path / f"vectors-{low:06d}-{high:06d}.npy"
        partial = target.with_suffix(".partial.npy")
        numpy.save(partial, matrix)
        partial.replace(target)
        done = high - start
        rate = done / (time.perf_counter() - began)
        log(f"  corpus: {high}/{stop} embedded ({rate:.0f} docs/s)")
