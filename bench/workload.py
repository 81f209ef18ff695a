"""The generated workload: documents, queries and tool calls, the same for every server.

Documents are 12-40 words from a fixed word list (bench/words.py) with small metadata;
queries are 2-6 words, all distinct across a run. Everything comes from RNGs seeded by
(seed, label), so each phase, server and run sees identical inputs.
"""

from __future__ import annotations

import random
import zlib
from typing import Any

from .errors import BenchError
from .words import VERBS, WORDS

TAGS = ("work", "home", "travel", "health", "finance", "hobby")
# A tool call the workload makes: (tool name, arguments), or ("tools/list", None).
Operation = tuple[str, dict[str, Any] | None]


def seeded(seed: int, label: str) -> random.Random:
    return random.Random(seed * 1_000_003 + zlib.crc32(label.encode()))  # noqa: S311 - a workload, not a secret


def sentence(rng: random.Random) -> str:
    """12-40 words, a verb among the first few, capitalised, with a full stop."""
    count = rng.randint(12, 40)
    words = [rng.choice(WORDS) for _ in range(count)]
    words.insert(rng.randint(0, 3), rng.choice(VERBS))
    text = " ".join(words[:count])
    return text[0].upper() + text[1:] + "."


def documents(seed: int, label: str, count: int) -> list[dict[str, Any]]:
    """`count` store entries ({"information", "metadata"}) for the phase `label`."""
    rng = seeded(seed, "docs:" + label)
    entries = []
    for index in range(count):
        text = sentence(rng)
        metadata = {"source": "bench", "phase": label, "i": index, "tag": rng.choice(TAGS)}
        entries.append({"information": text, "metadata": metadata})
    return entries


def corpus_text(seed: int, index: int) -> str:
    """Document number `index` of the scale corpus: any prefix of the corpus is the same texts."""
    return sentence(seeded(seed, f"corpus:{index}"))


def corpus_metadata(seed: int, index: int) -> dict[str, Any]:
    return {"source": "bench-corpus", "i": index, "tag": TAGS[zlib.crc32(f"{seed}:{index}".encode()) % len(TAGS)]}


def sized_documents(seed: int, label: str, count: int, chars: int) -> list[dict[str, Any]]:
    """`count` distinct entries of exactly `chars` characters each (words, cut at the end)."""
    rng = seeded(seed, "sized:" + label)
    entries = []
    for index in range(count):
        prefix = f"{label} {index}: "
        words = [prefix]
        length = len(prefix)
        while length < chars:
            word = rng.choice(WORDS)
            words.append(word + " ")
            length += len(word) + 1
        entries.append({"information": "".join(words)[:chars], "metadata": {"source": "bench", "i": index}})
    return entries


def queries(seed: int, label: str, count: int, avoid: set[str]) -> list[str]:
    """`count` queries none of which is in `avoid` (which they are added to)."""
    rng = seeded(seed, "queries:" + label)
    found: list[str] = []
    for _ in range(count * 100):
        if len(found) == count:
            return found
        query = " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 6)))
        if query not in avoid:
            avoid.add(query)
            found.append(query)
    if len(found) == count:
        return found
    raise BenchError("could not generate enough distinct queries")


def store_calls(entries: list[dict[str, Any]]) -> list[Operation]:
    return [("qdrant-store", entry) for entry in entries]


def find_calls(texts: list[str]) -> list[Operation]:
    return [("qdrant-find", {"query": text}) for text in texts]


def list_calls(count: int) -> list[Operation]:
    return [("tools/list", None)] * count
