"""How similar is a near-duplicate? The measurement behind QDRANT_SIMILARITY_THRESHOLD.

Pairs from duplicate_pairs.py: a stored note, then a text stored with `if_similar=skip`, either
the same fact (reworded, restated, retyped) or a distinct one in mostly the same words (another
value, another subject). `skip` compares a text with the stored note it resembles most; so the
measurement takes, per text, the cosine of the model's vectors with the nearest note of its
round, and whether that note is its own (a skip is right when the text is the same fact and the
point it names is its note). Precision and recall at each threshold follow; the store itself then
skips exactly what the table says at its default threshold. The tables are printed
and written to .cache/eval/duplicates-edge.json (the README's come from them). Qdrant Edge only:
the similarity is the model's cosine, whichever engine compares it.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable

import numpy
import pytest
from duplicate_pairs import DISTINCT, ROUNDS, SAME, Pair, pairs
from evaluation import RememberingModel, markdown_table, write_figures
from store_engines import LoadedModel, StoreFactory

from qdrant_mcp_memory.settings import SIMILARITY_THRESHOLD
from qdrant_mcp_memory.store import Entry

pytestmark = pytest.mark.anyio
Unique = Callable[[str], str]

THRESHOLDS = [0.80, 0.85, 0.88, 0.90, 0.92, 0.94, 0.95, 0.96, 0.97, 0.98, 0.99]
# The share of distinct facts the default threshold may skip.
MAX_LOST = 0.05


@pytest.fixture(scope="session")
def model(model: LoadedModel) -> LoadedModel:
    return RememberingModel(model)


@pytest.fixture
def engine() -> str:
    return "edge"


Nearest = tuple[bool, float]  # whether the stored note a text resembles most is its own, and how much


async def nearest_notes(model: LoadedModel, made: list[Pair]) -> dict[Pair, Nearest]:
    """Per pair, the note of its round its text resembles most (what `skip` searches for), by cosine."""
    notes = list(dict.fromkeys(pair.note for pair in made))
    texts = list(dict.fromkeys(pair.text for pair in made))
    vectors = numpy.asarray(await model.embed("document", notes + texts), dtype=numpy.float32)
    vectors /= numpy.linalg.norm(vectors, axis=1, keepdims=True)
    cosine = vectors[len(notes) :] @ vectors[: len(notes)].T
    found: dict[Pair, Nearest] = {}
    for r in range(ROUNDS):
        ours = [notes.index(note) for note in dict.fromkeys(pair.note for pair in made if pair.round == r)]
        for pair in (pair for pair in made if pair.round == r):
            row = cosine[texts.index(pair.text), ours]
            found[pair] = ours[int(numpy.argmax(row))] == notes.index(pair.note), float(row.max())
    return found


async def check_skips(open_store: StoreFactory, unique: Unique, made: list[Pair], found: dict[Pair, Nearest]) -> None:
    """The store's `skip` at its default threshold skips the texts the measurement says it does,
    naming the note it found: one collection of notes per round and kind, one store-many call."""
    async with open_store() as store:
        for r in range(ROUNDS):
            for kind in SAME + DISTINCT:
                batch = [pair for pair in made if pair.round == r and pair.kind == kind]
                collection = unique(f"pairs-{r}-{kind.replace(' ', '-')}")
                notes = await store.store(collection, [Entry(pair.note) for pair in batch])
                texts = [Entry(pair.text) for pair in batch]
                skipped = await store.store(collection, texts, if_similar="skip")
                expected = [at for at, pair in enumerate(batch) if found[pair][1] >= SIMILARITY_THRESHOLD]
                assert [duplicate.entry for duplicate in skipped.duplicates] == expected, (kind, r)
                for duplicate in skipped.duplicates:
                    right, similarity = found[batch[duplicate.entry]]
                    assert duplicate.similarity == pytest.approx(similarity, abs=1e-3)
                    assert (duplicate.of == notes.ids[duplicate.entry]) == right, duplicate


def scores(made: list[Pair], found: dict[Pair, Nearest], threshold: float) -> dict[str, float]:
    """Precision and recall of `skip` at `threshold`, and how often it fires per kind of pair."""
    fired = [pair for pair in made if found[pair][1] >= threshold]
    right = [pair for pair in fired if pair.same and found[pair][0]]
    row = {
        "precision": len(right) / len(fired) if fired else 1.0,
        "recall": len(right) / sum(pair.same for pair in made),
        "distinct facts lost": sum(not pair.same for pair in fired) / sum(not pair.same for pair in made),
    }
    for kind in SAME + DISTINCT:
        row[f"skips {kind}"] = sum(pair.kind == kind for pair in fired) / sum(pair.kind == kind for pair in made)
    return row


def distribution(made: list[Pair], found: dict[Pair, Nearest]) -> dict[str, dict[str, float]]:
    table = {}
    for kind in SAME + DISTINCT:
        values = sorted(found[pair][1] for pair in made if pair.kind == kind)
        deciles = statistics.quantiles(values, n=10)
        table[kind] = {
            "min": values[0],
            "p10": deciles[0],
            "median": statistics.median(values),
            "p90": deciles[-1],
            "max": values[-1],
        }
    return table


async def test_the_default_similarity_threshold_keeps_its_measured_precision_and_recall(
    open_store: StoreFactory, unique: Unique, model: LoadedModel
) -> None:
    made = pairs()
    found = await nearest_notes(model, made)
    spread = distribution(made, found)
    table = {f"{threshold:.2f}": scores(made, found, threshold) for threshold in THRESHOLDS}
    print(f"cosine similarity of {len(made)} pairs ({len(made) // len(SAME + DISTINCT)} per kind):")
    print(markdown_table(spread, digits=3))
    print("if_similar=skip by threshold:")
    print(markdown_table(table))
    write_figures("duplicates-edge", {"pairs": len(made), "similarity": spread, "skip": table})
    # The default: the lowest threshold at which skip loses at most one distinct fact in twenty (a
    # lost memory is worse than a stored near-duplicate, which `diversity` keeps out of the results).
    rule = next(t for t in THRESHOLDS if scores(made, found, t)["distinct facts lost"] <= MAX_LOST)
    assert rule == SIMILARITY_THRESHOLD, table
    chosen = scores(made, found, SIMILARITY_THRESHOLD)
    assert chosen["precision"] >= 0.93 and chosen["recall"] >= 0.4, chosen
    assert chosen["skips retyped"] >= 0.8 and chosen["skips restated"] >= 0.4, chosen
    # The table is what the store does at its default threshold (from its configuration).
    await check_skips(open_store, unique, made, found)
