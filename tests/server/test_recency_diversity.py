"""Do `recency` and `diversity` do what they are for? Measured on versions.py's 24 facts.

Recency: each fact in four versions ("The team standup moved to 9:30." … "… to 11:15."), stored
40, 25, 12 and 2 days ago; asked its question, does find put the newest version first? Diversity:
each fact's newest version with its reworded, restated and retyped twins; how many distinct facts
are in the top five, and is the right one still first? The tables are printed and written to
.cache/eval/recency-edge.json and diversity-edge.json (the README's come from them). Qdrant
Edge only: both re-rank with Qdrant's own formula, the same on every engine (the behavioural
tests in test_lifecycle.py run them everywhere).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import timedelta

import pytest
from evaluation import RememberingModel, markdown_table, write_figures
from store_engines import LoadedModel, StoreFactory
from test_lifecycle import ago, write_memory
from versions import AGES, facts

from qdrant_mcp_memory.store import Entry, Memory, QdrantStore

pytestmark = pytest.mark.anyio
Unique = Callable[[str], str]

RECENCY: dict[str, timedelta | None] = {
    "off": None,
    "90d": timedelta(days=90),
    "30d": timedelta(days=30),
    "7d": timedelta(days=7),
    "1d": timedelta(days=1),
}
DIVERSITY: dict[str, float | None] = {"off": None, "0.3": 0.3, "0.5": 0.5, "0.7": 0.7}


@pytest.fixture(scope="session")
def model(model: LoadedModel) -> LoadedModel:
    return RememberingModel(model)


@pytest.fixture
def engine() -> str:
    return "edge"


async def top(
    store: QdrantStore,
    collection: str,
    question: str,
    limit: int,
    *,
    recency: timedelta | None = None,
    diversity: float | None = None,
) -> list[str]:
    found = await store.find(collection, question, limit, recency=recency, diversity=diversity)
    assert found is not None
    return [hit.document for hit in found.hits]


async def test_recency_puts_the_newest_version_of_a_fact_first(open_store: StoreFactory, unique: Unique) -> None:
    made = facts()
    collection = unique("versions")
    table: dict[str, dict[str, float]] = {}
    async with open_store() as store:
        point = 0
        for fact in made:
            for version, days in zip(fact.versions, AGES, strict=True):
                point += 1
                stored = ago(days=days)
                memory = Memory(point, version, None, created_at=stored, updated_at=stored)
                await write_memory(store, collection, memory)
        for name, recency in RECENCY.items():
            firsts = [(fact, (await top(store, collection, fact.question, 1, recency=recency))[0]) for fact in made]
            table[name] = {
                "newest version @1": score(first == fact.versions[-1] for fact, first in firsts),
                "the fact @1": score(first in fact.versions for fact, first in firsts),
            }
    print(f"recency on {len(made)} facts in {len(AGES)} versions (stored {AGES} days ago):")
    print(markdown_table(table))
    write_figures("recency-edge", table)
    off, week = table["off"], table["7d"]
    assert week["newest version @1"] >= 0.9 and week["newest version @1"] > off["newest version @1"], table
    assert all(row["the fact @1"] >= off["the fact @1"] for row in table.values()), table


async def test_diversity_keeps_near_duplicates_from_filling_the_top_five(
    open_store: StoreFactory, unique: Unique
) -> None:
    made = facts()
    collection = unique("twins")
    fact_of = {text: at for at, fact in enumerate(made) for text in [fact.versions[-1], *fact.twins]}
    table: dict[str, dict[str, float]] = {}
    async with open_store() as store:
        await store.store(collection, [Entry(text) for text in fact_of])
        for name, diversity in DIVERSITY.items():
            tops = [await top(store, collection, fact.question, 5, diversity=diversity) for fact in made]
            table[name] = {
                "distinct facts in top 5": sum(len({fact_of[text] for text in found}) for found in tops) / len(made),
                "the fact @1": score(fact_of[found[0]] == at for at, found in enumerate(tops)),
            }
    print(f"diversity on {len(made)} facts, each stored four times (the fact, reworded, restated, retyped):")
    print(markdown_table(table))
    write_figures("diversity-edge", table)
    off, chosen = table["off"], table["0.5"]
    assert chosen["distinct facts in top 5"] >= off["distinct facts in top 5"] + 1, table
    assert chosen["the fact @1"] >= off["the fact @1"], table


def score(hits: Iterable[bool]) -> float:
    """The share of true values, to three places."""
    values = list(hits)
    return round(sum(values) / len(values), 3)
