"""A small retrieval evaluation set: which note a query should find, with look-alikes around it.

Notes holding rare exact terms (identifiers, names, numbers) among notes that differ only in
them, queried by those terms; and paraphrase queries that share no rare word with their note.
tests/server/test_hybrid.py measures hybrid search with it; dense_recall scores a model's plain
dense search on it (tests/server/test_quantized.py and the query-path phase: the int8 model).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

import numpy as np

# Texts to their vectors, in order.
Embed = Callable[[list[str]], Sequence[Sequence[float]]]

CAUSES = ["a certificate rotation", "a network partition", "a database failover", "a config push", "a disk alert"]
CITIES = ["Munich", "Hamburg", "Berlin", "Vienna", "Zurich"]
COMPANIES = ["Norrland Timber", "Baltic Steel", "Alpine Dairy", "Nordic Glass", "Iberian Cork"]


def look_alikes(rng: random.Random) -> list[tuple[str, str]]:
    """Families of notes that differ only in an identifier, a number or a name: (note, the term that finds it)."""
    notes = []
    for _ in range(25):
        code, ticket = f"E{rng.randint(1000, 9999)}", f"INC-{rng.randint(10000, 99999)}"
        notes.append((f"Ticket {ticket}: the payment gateway returned error {code} after {rng.choice(CAUSES)}.", code))
        invoice = str(rng.randint(10000, 99999))
        company = rng.choice(COMPANIES)
        notes.append((f"Invoice {invoice} from {company} is due at the end of the month.", f"invoice {invoice}"))
        agent = f"build-{rng.choice(['x86', 'arm'])}-{rng.randint(10, 99)}"
        notes.append((f"The build agent {agent} ran out of disk space during the nightly job.", agent))
        flight = f"LH{rng.randint(1000, 9999)}"
        notes.append((f"Flight {flight} to {rng.choice(CITIES)} leaves from gate B{rng.randint(1, 40)}.", flight))
    unique_terms: dict[str, int] = {}
    for _, term in notes:
        unique_terms[term] = unique_terms.get(term, 0) + 1
    return [(note, term) for note, term in notes if unique_terms[term] == 1]


# (note, a paraphrase that shares no rare word with it)
PARAPHRASES = [
    ("The library closes early on public holidays.", "when does the reading room shut on bank holidays"),
    ("My sister is allergic to peanuts and tree nuts.", "which foods must a family member avoid"),
    ("The car needs new winter tyres before November.", "vehicle maintenance before the cold season"),
    ("We adopted a grey kitten from the shelter in June.", "new pet from an animal rescue"),
    ("Dr. Ingrid Vasquez leads the cardiology ward on the fourth floor.", "who is in charge of the heart unit"),
    ("The quarterly board meeting moved to Thursday afternoon.", "when do the directors gather this quarter"),
    ("Grandma's lasagne recipe uses three kinds of cheese.", "family pasta bake instructions"),
    ("The team retrospective found that code reviews take too long.", "what slows down our pull requests"),
]


def recall_at(k: int, found: list[list[str]], expected: list[str]) -> float:
    return round(sum(want in got[:k] for got, want in zip(found, expected, strict=True)) / len(expected), 3)


def dense_sets() -> tuple[list[str], dict[str, list[tuple[str, str]]]]:
    """The notes, and the query sets over them (note, query) as tests/server/test_hybrid.py asks them."""
    exact = look_alikes(random.Random(2026))  # noqa: S311  # a fixed evaluation set, not a secret
    return [note for note, _ in exact + PARAPHRASES], {"exact terms": exact[::3], "paraphrase": PARAPHRASES}


def dense_recall(documents: Embed, queries: Embed) -> dict[str, float]:
    """recall@1 and @5 per query set of a plain cosine search over the notes, with the notes'
    vectors from `documents` and the queries' from `queries` (one model, or two to mix)."""
    notes, sets = dense_sets()
    stored = unit(documents(notes))
    scores: dict[str, float] = {}
    for kind, pairs in sets.items():
        ranks = np.argsort(-(unit(queries([query for _, query in pairs])) @ stored.T), axis=1)
        found = [[notes[i] for i in row[:5]] for row in ranks]
        for k in (1, 5):
            scores[f"{kind} recall@{k}"] = recall_at(k, found, [note for note, _ in pairs])
    return scores


def unit(vectors: Sequence[Sequence[float]]) -> np.ndarray:
    array = np.asarray(vectors, dtype=np.float64)
    return array / np.linalg.norm(array, axis=1, keepdims=True)
