"""Near-duplicates for `if_similar`: entries of one call that resemble each other or a stored memory.

Similarity is the cosine of the dense vectors (in hybrid collections too), compared with a
threshold. Within a call, an entry resembling an earlier kept entry is skipped (with `skip`)
or refused (with `replace`: one would overwrite the other). Against the collection, each kept
entry is searched for its nearest live neighbour other than the point its own id names.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy

from ..backends import Backend, PointId, Search
from ..errors import InvalidRequest
from ..filters import Condition, Filter, HasId
from .model import Duplicate, Entry, IfSimilar


@dataclass(frozen=True)
class Candidate:
    """One distinct entry of a store call."""

    id: PointId
    entry: Entry
    index: int  # of its first occurrence in the call
    vector: list[float]


async def near_duplicates(
    backend: Backend,
    *,
    collection: str,
    vector_name: str,
    candidates: Sequence[Candidate],
    threshold: float,
    mode: IfSimilar,
    live: Condition | None,
) -> dict[PointId, Duplicate]:
    """The candidates that are near-duplicates, by id; raises InvalidRequest where `replace` is ambiguous."""
    found = _within_call(candidates, threshold, mode)
    targets: dict[PointId, Candidate] = {}
    for candidate in candidates:
        if candidate.id in found:
            continue
        others = Filter(must=(live,) if live else (), must_not=(HasId((candidate.id,)),))
        hits = await backend.search(collection, Search(vector_name, candidate.vector, 1, others, threshold))
        if not hits:
            continue
        nearest = hits[0]
        if mode == "replace":
            if candidate.entry.id is not None:
                raise InvalidRequest(
                    f"entry {candidate.index} has id {candidate.id} but resembles point {nearest.id} (similarity "
                    f"{nearest.score:.3f}); with if_similar=replace leave the id out, or change that point with "
                    "qdrant-update"
                )
            earlier = targets.get(nearest.id)
            if earlier is not None:
                raise InvalidRequest(
                    f"entries {earlier.index} and {candidate.index} both resemble point {nearest.id}; with "
                    "if_similar=replace only one can replace it: store them in separate calls"
                )
            targets[nearest.id] = candidate
        found[candidate.id] = Duplicate(
            candidate.index, nearest.id, round(float(nearest.score), 4), "replaced" if mode == "replace" else "skipped"
        )
    return found


def _within_call(candidates: Sequence[Candidate], threshold: float, mode: IfSimilar) -> dict[PointId, Duplicate]:
    if len(candidates) < 2:
        return {}
    vectors = numpy.asarray([candidate.vector for candidate in candidates], dtype=numpy.float32)
    vectors /= numpy.maximum(numpy.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    similarity = vectors @ vectors.T
    kept: list[int] = []
    found: dict[PointId, Duplicate] = {}
    for position, candidate in enumerate(candidates):
        if kept:
            row = similarity[position, kept]
            best = int(numpy.argmax(row))
            closest, score = kept[best], float(row[best])
            if score >= threshold:
                first = candidates[closest]
                if mode == "replace":
                    raise InvalidRequest(
                        f"entries {first.index} and {candidate.index} resemble each other (similarity {score:.3f}, "
                        f"threshold {threshold}); with if_similar=replace one would overwrite the other: merge them "
                        "or store them in separate calls"
                    )
                found[candidate.id] = Duplicate(candidate.index, first.id, round(score, 4), "skipped")
                continue
        kept.append(position)
    return found
