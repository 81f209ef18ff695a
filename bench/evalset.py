"""A small retrieval evaluation set: which note a query should find, with look-alikes around it.

Notes holding rare exact terms (identifiers, names, numbers) among notes that differ only in
them, queried by those terms; and paraphrase queries that share no rare word with their note.
tests/server/test_hybrid.py measures hybrid search with it, the query-path phase the int8 model.
"""

from __future__ import annotations

import random

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
