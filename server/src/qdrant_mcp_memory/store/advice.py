"""What it takes to use a collection another tool wrote: the settings that would make it work.

From the collection's vectors and a few points' payloads: the vector this server's model can
search (QDRANT_VECTOR_NAME when it has another name; nothing to set when no vector has the
model's size, only another model would do), and the payload keys (QDRANT_DOCUMENT_KEY: the
string key the sampled points carry most; QDRANT_METADATA_KEY: their object-valued key, or
empty for a flat payload), so that a client can say exactly what to change. Points LlamaIndex
wrote keep their text inside the node it serialised, and LlamaIndex reads a point without one
from `text` with flat metadata: that is the layout advised for its collections.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..backends import DenseVector
from .payload import NODE_KEYS, PayloadLayout

# Points whose payload keys are sampled.
SAMPLE = 16
# Where LlamaIndex's Qdrant store reads the text of a point without a serialised node (text_key).
LLAMAINDEX_TEXT_KEY = "text"


@dataclass(frozen=True)
class Advice:
    # Settings (environment variable -> value) that would make this server search and read it.
    settings: dict[str, str] = field(default_factory=dict)
    # What cannot be fixed by a setting of the layout, in sentences.
    problems: list[str] = field(default_factory=list)


def advise(
    vectors: Sequence[DenseVector],
    expected: DenseVector,
    payloads: Sequence[Mapping[str, Any]],
    layout: PayloadLayout,
) -> Advice:
    advice = Advice()
    _vector(vectors, expected, advice)
    if payloads:
        _keys(payloads, layout, advice)
    return advice


def _vector(vectors: Sequence[DenseVector], expected: DenseVector, advice: Advice) -> None:
    named = next((vector for vector in vectors if vector.name == expected.name), None)
    fitting = [vector for vector in vectors if vector.size == expected.size]
    if named is not None and named.size == expected.size:
        chosen = named
    elif fitting:
        chosen = next((vector for vector in fitting if vector.distance.lower() == "cosine"), fitting[0])
        advice.settings["QDRANT_VECTOR_NAME"] = chosen.name
    else:
        sizes = ", ".join(f"{vector.name or '<unnamed>'} ({vector.size})" for vector in vectors) or "none"
        advice.problems.append(
            f"no vector has size {expected.size}, the size this server's model makes (vectors: {sizes}): "
            "set EMBEDDING_MODEL to the model that wrote it"
        )
        return
    if chosen.distance.lower() != "cosine":
        advice.problems.append(
            f"vector {chosen.name or '<unnamed>'!r} uses {chosen.distance} distance; this server's scores and "
            "thresholds are cosine similarities"
        )


def _keys(payloads: Sequence[Mapping[str, Any]], layout: PayloadLayout, advice: Advice) -> None:
    if 2 * sum(NODE_KEYS[0] in payload for payload in payloads) > len(payloads):
        if layout.document_key != LLAMAINDEX_TEXT_KEY:
            advice.settings["QDRANT_DOCUMENT_KEY"] = LLAMAINDEX_TEXT_KEY
        if layout.metadata_key:
            advice.settings["QDRANT_METADATA_KEY"] = ""
        return
    skipped = {*layout.time_keys, *NODE_KEYS}
    texts: Counter[str] = Counter()
    lengths: Counter[str] = Counter()
    objects: Counter[str] = Counter()
    for payload in payloads:
        for key, value in payload.items():
            if key in skipped:
                continue
            if isinstance(value, str):
                texts[key] += 1
                lengths[key] += len(value)
            elif isinstance(value, dict):
                objects[key] += 1
    if texts and layout.document_key not in texts:
        # The text is the string key most points have, the longest of those on a tie (ids are short).
        advice.settings["QDRANT_DOCUMENT_KEY"] = max(texts, key=lambda key: (texts[key], lengths[key]))
    document = advice.settings.get("QDRANT_DOCUMENT_KEY", layout.document_key)
    if layout.metadata_key and layout.metadata_key not in objects:
        others = [key for key in objects if key != document]
        if others:
            advice.settings["QDRANT_METADATA_KEY"] = max(others, key=lambda key: objects[key])
        elif any(key not in (document, *skipped) for payload in payloads for key in payload):
            advice.settings["QDRANT_METADATA_KEY"] = ""
