"""Hybrid search (dense + BM25, fused by reciprocal rank fusion) on both engines, and whether it is worth having.

The evaluation set (bench/evalset.py, which the benchmark's query-path phase uses too): notes
holding rare exact terms (identifiers, names, numbers) among look-alike notes, queried by those
terms, plus paraphrase queries that share no words with their note. recall@5 for dense-only and
hybrid is printed and written to .cache/eval/hybrid-<engine>.json (the README's table comes from it).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable

import pytest
from evaluation import RememberingModel, markdown_table, write_figures
from look_alikes import families
from store_engines import LoadedModel, StoreFactory

from bench.evalset import PARAPHRASES, look_alikes, recall_at
from qdrant_mcp_memory.backends import DEFAULT_FUSION, Fusion
from qdrant_mcp_memory.store import Entry, QdrantStore

pytestmark = pytest.mark.anyio
Unique = Callable[[str], str]


@pytest.fixture(scope="session")
def model(model: LoadedModel) -> LoadedModel:
    return RememberingModel(model)


async def ranked(store: QdrantStore, collection: str, pairs: list[tuple[str, str]]) -> list[list[str]]:
    """The top five documents for each pair's query."""
    found = []
    for _, query in pairs:
        result = await store.find(collection, query, limit=5)
        assert result is not None
        found.append([hit.document for hit in result.hits])
    return found


async def evaluate(store: QdrantStore, collection: str) -> dict[str, float]:
    exact = look_alikes(random.Random(2026))
    await store.store(collection, [Entry(note) for note, _ in exact + PARAPHRASES])
    scores: dict[str, float] = {}
    for kind, pairs in (("exact terms", exact[::3]), ("paraphrase", PARAPHRASES)):
        found = await ranked(store, collection, pairs)
        expected = [note for note, _ in pairs]
        scores[f"{kind} recall@5"] = recall_at(5, found, expected)
        scores[f"{kind} recall@1"] = recall_at(1, found, expected)
        scores[f"{kind} queries"] = len(pairs)
    return scores


async def test_hybrid_finds_exact_terms_that_dense_search_misses(
    open_store: StoreFactory, engine: str, unique: Unique
) -> None:
    results = {}
    for mode in ("dense", "hybrid"):
        async with open_store(hybrid=mode == "hybrid") as store:
            collection = unique(f"eval-{mode}")
            results[mode] = await evaluate(store, collection)
            found = await store.find(collection, "payment gateway", limit=1)
            assert found is not None and found.mode == mode
    print(f"recall@5 on {engine}: {json.dumps(results)}")
    write_figures(f"hybrid-{engine}", results)
    hybrid, dense = results["hybrid"], results["dense"]
    assert hybrid["exact terms recall@5"] > dense["exact terms recall@5"] and hybrid["exact terms recall@5"] >= 0.95
    assert hybrid["exact terms recall@1"] >= dense["exact terms recall@1"]
    assert hybrid["paraphrase recall@5"] >= dense["paraphrase recall@5"] - 0.125  # at most one of eight


# The fusions compared on the look-alike families (None: dense only, the baseline).
FUSIONS: dict[str, Fusion | None] = {
    "dense only": None,
    "RRF": Fusion("rrf"),
    "RRF, BM25 tie-break (1 : 1.05)": Fusion("rrf", (1.0, 1.05)),
    "RRF weighted (1 : 1.5)": Fusion("rrf", (1.0, 1.5)),
    "RRF weighted (1 : 3)": Fusion("rrf", (1.0, 3.0)),
    "DBSF": Fusion("dbsf"),
}
DEFAULT_ROW = next(name for name, fusion in FUSIONS.items() if fusion == DEFAULT_FUSION)


async def test_the_default_fusion_separates_look_alikes_that_rrf_ties(
    open_store: StoreFactory, engine: str, unique: Unique
) -> None:
    made = families(random.Random(2026))
    twins = [pair for _, family in made for pair in family]
    collection = unique("fusions")
    async with open_store(hybrid=True) as store:
        await store.store(collection, [Entry(note) for note, _ in twins + PARAPHRASES])
    kinds = {kind: [pair for k, family in made if k == kind for pair in family] for kind, _ in made}
    table: dict[str, dict[str, float]] = {}
    for name, fusion in FUSIONS.items():
        async with open_store(hybrid=fusion is not None, fusion=fusion or Fusion()) as store:
            row = {}
            for kind, pairs in kinds.items():
                row[f"{kind} @1"] = recall_at(1, await ranked(store, collection, pairs), [note for note, _ in pairs])
            row["all look-alikes @1"] = round(sum(row[f"{k} @1"] * len(p) for k, p in kinds.items()) / len(twins), 3)
            found = await ranked(store, collection, PARAPHRASES)
            row["paraphrase @5"] = recall_at(5, found, [note for note, _ in PARAPHRASES])
            table[name] = row
    print(f"fusions on {engine} ({len(twins)} look-alike queries):")
    print(markdown_table(table))
    write_figures(f"fusion-{engine}", table)
    chosen, rrf = table[DEFAULT_ROW], table["RRF"]
    assert chosen["all look-alikes @1"] >= 0.95 and chosen["paraphrase @5"] >= rrf["paraphrase @5"], table
    # Where dense search puts the wrong twin first, plain RRF often scores the twins alike (a tie the
    # engine breaks at random, so the table's RRF row varies from run to run); the default ranks the right one first.
    async with open_store(hybrid=False) as store:
        dense = await ranked(store, collection, twins)
    misses = [(note, query) for (note, query), top in zip(twins, dense, strict=True) if top[0] != note]
    assert misses, "dense search gets every twin right: the set no longer tests fusion"
    async with open_store(hybrid=True, fusion=DEFAULT_FUSION) as store:
        for note, query in misses:
            found = await store.find(collection, query, limit=2)
            assert found is not None and len(found.hits) == 2
            assert found.hits[0].document == note and found.hits[0].score > found.hits[1].score, (query, found.hits)


async def test_a_collection_without_the_sparse_vector_is_searched_dense_only_and_says_so(
    open_store: StoreFactory, unique: Unique
) -> None:
    older = unique("older")
    async with open_store(hybrid=False) as store:
        await store.store(older, [Entry(note) for note, _ in PARAPHRASES])
    async with open_store(hybrid=True) as store:
        found = await store.find(older, "kitten", limit=3)
        assert found is not None and found.mode == "dense (no sparse vector)" and found.hits
        # Writing to it keeps its layout: still dense only, nothing half-hybrid.
        await store.store(older, [Entry("a note written in hybrid mode")])
        assert (await store.collection_details(older)).sparse_vectors == []
