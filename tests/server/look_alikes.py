"""Look-alike notes for the hybrid evaluation: families that differ only in an identifier, a code,
a name, a version or a date, each queried by its term (made from a seed, so every run is the same)."""

from __future__ import annotations

import random

SUBJECTS = ["the cooling pump", "the ticket printer", "the badge reader", "the loading dock door", "the backup job"]
PEOPLE = ["Anna", "Jonas", "Mira", "Lukas", "Sofia", "Emil", "Clara", "Noah"]
SURNAMES = [("Hansen", "Hanssen"), ("Meyer", "Meier"), ("Schmidt", "Schmitt"), ("Larsen", "Larson"), ("Berg", "Borg")]
PRODUCTS = ["the billing service", "the mobile app", "the search index", "the admin console", "the sync agent"]


def _swap_digits(digits: str, rng: random.Random) -> str:
    """The same digits with two neighbours swapped (4417 -> 4471): the twin a tired typist makes."""
    while True:
        at = rng.randrange(len(digits) - 1)
        twin = digits[:at] + digits[at + 1] + digits[at] + digits[at + 2 :]
        if twin != digits:
            return twin


def families(rng: random.Random) -> list[tuple[str, list[tuple[str, str]]]]:
    """(kind, [(note, query), ...]) per family: the notes share every word but the term."""
    made: list[tuple[str, list[tuple[str, str]]]] = []
    for _ in range(6):
        prefix = "".join(rng.choice("ABCDEFGHKLMNPQRSTVWXZ") for _ in range(2))
        digits = str(rng.randint(1000, 9999))
        subject = rng.choice(SUBJECTS)
        ids = [f"{prefix}-{digits}", f"{prefix}-{_swap_digits(digits, rng)}"]
        made.append(("identifiers", [(f"Asset {i} is {subject}; it failed its inspection.", i) for i in ids]))
        code = str(rng.randint(100, 999))
        codes = [f"E{code}", f"E{_swap_digits(code, rng)}"]
        made.append(
            (
                "error codes",
                [(f"Error {c} means the upload was rejected by the storage quota.", f"error {c}") for c in codes],
            )
        )
        first = rng.choice(PEOPLE)
        names = [f"{first} {surname}" for surname in rng.choice(SURNAMES)]
        made.append(("names", [(f"{n} approves the travel expenses for the sales team.", n) for n in names]))
        major, minor, patch = rng.randint(1, 9), rng.randint(0, 30), rng.randint(0, 9)
        product = rng.choice(PRODUCTS)
        versions = [f"{major}.{minor}.{patch}", f"{major}.{minor}.{(patch + rng.randint(1, 8)) % 10}"]
        made.append(
            ("versions", [(f"Version {v} of {product} fixed the login timeout.", f"{product} {v}") for v in versions])
        )
        month, day = rng.randint(1, 12), rng.randint(1, 27)
        dates = [f"2026-{month:02d}-{day:02d}", f"2026-{month:02d}-{day + 1:02d}"]
        made.append(("dates", [(f"The auditors visit the warehouse on {d}.", f"auditors {d}") for d in dates]))
    return made
