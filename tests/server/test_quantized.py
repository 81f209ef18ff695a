"""EMBEDDING_QUANTIZED=true: the real all-MiniLM-L6-v2 quantized to int8 on the first start, its
retrieval quality on bench/evalset.py against the full model's, and collections kept to one variant."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from mcp.client import Client
from store_engines import MODEL, VECTOR, LoadedModel

from bench.evalset import dense_recall
from qdrant_mcp_memory.embeddings.fastembed import FastEmbedModel
from qdrant_mcp_memory.embeddings.quantize import QUANTIZED_FOLDER
from support import ServerProcess

pytestmark = pytest.mark.anyio
# The int8 model may rank at most this much lower than the full one on each of the evaluation
# set's query sets (measured: exact terms 0.941 -> 0.853, paraphrases 1.0 -> 1.0).
RECALL_AT_5_LOSS = 0.1


@pytest.fixture(scope="module")
def int8_cache(offline_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A writable copy of the model cache (the int8 model is made into it on the first load)."""
    cache = tmp_path_factory.mktemp("int8") / "fastembed"
    shutil.copytree(offline_model, cache, symlinks=True)
    return cache


@pytest.fixture(scope="module")
def int8_model(int8_cache: Path) -> FastEmbedModel:
    model = FastEmbedModel(MODEL, int8_cache, quantized=True)
    model.load_blocking()
    return model


def model_files(cache: Path) -> dict[str, int]:
    """The ONNX files in the cache, relative path to size."""
    return {str(path.relative_to(cache)): path.stat().st_size for path in cache.rglob("*.onnx")}


def test_the_int8_model_is_made_once_into_the_cache_and_embeds_apart(
    int8_cache: Path, int8_model: FastEmbedModel, model: LoadedModel
) -> None:
    files = model_files(int8_cache)
    made = {name: size for name, size in files.items() if name.startswith(f"{QUANTIZED_FOLDER}/")}
    original = {name: size for name, size in files.items() if name not in made}
    assert len(made) == len(original) == 1, files
    assert next(iter(made.values())) < next(iter(original.values())) / 3  # int8 weights: 86 -> 22 MB
    assert not list((int8_cache / QUANTIZED_FOLDER).rglob(".making-*"))
    # A second load finds it: nothing is made again.
    made_at = {path: path.stat().st_mtime_ns for path in (int8_cache / QUANTIZED_FOLDER).rglob("*.onnx")}
    FastEmbedModel(MODEL, int8_cache, quantized=True).load_blocking()
    assert {path: path.stat().st_mtime_ns for path in made_at} == made_at
    assert int8_model.description == "fastembed (in this process, int8)"
    text = "where are the spare keys"
    int8, fp32 = (
        np.array(int8_model.embed_blocking("query", [text])[0]),
        np.array(model.embed_blocking("query", [text])[0]),
    )
    cosine = float(int8 @ fp32 / np.linalg.norm(int8) / np.linalg.norm(fp32))
    assert 0.9 < cosine < 0.999  # the same model, not the same vectors: hence the vector name of its own


def test_int8_recall_on_the_evaluation_set_stays_within_the_bound(
    int8_model: FastEmbedModel, model: LoadedModel
) -> None:
    def embedder(chosen: Any, kind: str) -> Any:
        return lambda texts: chosen.embed_blocking(kind, texts)

    full = dense_recall(embedder(model, "document"), embedder(model, "query"))
    int8 = dense_recall(embedder(int8_model, "document"), embedder(int8_model, "query"))
    print(f"\nrecall, fp32: {full}\nrecall, int8: {int8}")
    for kind in ("exact terms", "paraphrase"):
        assert int8[f"{kind} recall@5"] >= full[f"{kind} recall@5"] - RECALL_AT_5_LOSS, (kind, full, int8)


def ok(result: Any) -> dict[str, Any]:
    assert not result.is_error, result.content
    return dict(result.structured_content)


async def test_a_collection_is_searched_only_with_the_variant_that_wrote_it(
    start_server: Any, int8_cache: Path, int8_model: FastEmbedModel, tmp_path: Path
) -> None:
    folder = {
        "QDRANT_LOCAL_PATH": str(tmp_path / "qdrant"),
        "QDRANT_URL": None,
        "FASTEMBED_CACHE_PATH": str(int8_cache),
    }
    note = "The spare keys hang behind the kitchen door."
    quantized: ServerProcess = start_server({**folder, "EMBEDDING_QUANTIZED": "true"})
    async with Client(quantized.mcp_url) as client:
        ok(await client.call_tool("qdrant-store", {"information": note, "collection_name": "int8"}))
        found = ok(await client.call_tool("qdrant-find", {"query": "where are my keys", "collection_name": "int8"}))
        assert found["hits"][0]["document"] == note
    assert quantized.terminate() == 0
    assert "quantizing" not in quantized.log()  # made by the fixture's load, found here

    full: ServerProcess = start_server(folder)
    async with Client(full.mcp_url) as client:
        refused = await client.call_tool("qdrant-find", {"query": "where are my keys", "collection_name": "int8"})
        assert refused.is_error
        message = refused.content[0].text
        assert "EMBEDDING_QUANTIZED=true" in message and f"{VECTOR}-int8" in message, message
        # Nothing lost, and the server goes on serving the full model's collections.
        ok(await client.call_tool("qdrant-store", {"information": note, "collection_name": "full"}))
        found = ok(await client.call_tool("qdrant-find", {"query": "where are my keys", "collection_name": "full"}))
        assert found["hits"][0]["document"] == note
    assert full.terminate() == 0
