"""Collections other tools wrote: QDRANT_VECTOR_NAME, QDRANT_DOCUMENT_KEY and QDRANT_METADATA_KEY.

LangChain's own QdrantVectorStore (the unnamed vector, `page_content` + `metadata`) writes a
collection on a Qdrant server (the stand-in, or the real one in the pipeline); the server,
run as users run it, says what to set, then finds LangChain's points, stores into the
collection in its layout, and LangChain reads what it stored. LlamaIndex's QdrantVectorStore
(its own venv, LLAMAINDEX_PYTHON: see llamaindex_store.py) does the same with its layout: the
text inside a serialised node, flat metadata. A flat payload (every key but the text is
metadata) works on every engine, filters included.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from langchain_core.embeddings import Embeddings
from langchain_qdrant import QdrantVectorStore
from mcp.client import Client
from store_engines import VECTOR, LoadedModel, StoreFactory

from qdrant_mcp_memory.filters import metadata_filter
from qdrant_mcp_memory.store import Entry, PayloadLayout, QdrantStore, StoreConfig
from support import ServerProcess

pytestmark = pytest.mark.anyio
Start = Callable[..., ServerProcess]
NOTES = [
    ("The Eiffel Tower is in Paris.", {"topic": "travel"}),
    ("Sourdough needs a long fermentation.", {"topic": "food", "rating": 5}),
    ("Photosynthesis turns light into chemical energy.", {"topic": "science"}),
]
LANGCHAIN = {"QDRANT_VECTOR_NAME": "", "QDRANT_DOCUMENT_KEY": "page_content"}
LLAMAINDEX = {"QDRANT_VECTOR_NAME": "", "QDRANT_DOCUMENT_KEY": "text", "QDRANT_METADATA_KEY": ""}
# What LlamaIndex adds to each node's payload beside its metadata (no source document here).
LLAMAINDEX_IDS = {"document_id": "None", "doc_id": "None", "ref_doc_id": "None"}


class MiniLM(Embeddings):
    """LangChain's embeddings interface over the same offline model the server runs."""

    def __init__(self, model: LoadedModel) -> None:
        self.model = model

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.model.embed_blocking("document", texts)

    def embed_query(self, text: str) -> list[float]:
        return self.model.embed_blocking("query", [text])[0]


async def test_a_langchain_collection_is_searched_written_and_read_back_by_langchain(
    start_server: Start, qdrant_server: tuple[str, str | None], model: LoadedModel, unique: Callable[[str], str]
) -> None:
    url, key = qdrant_server
    name = unique("langchain")
    langchain = QdrantVectorStore.from_texts(
        [text for text, _ in NOTES], MiniLM(model), [meta for _, meta in NOTES], url=url, api_key=key,
        collection_name=name,
    )  # fmt: skip
    storage = {"QDRANT_URL": url, "QDRANT_API_KEY": key}

    # Default settings: not searchable, and the answer names what to set.
    server = start_server(storage)
    async with Client(server.mcp_url) as client:
        info = (await client.call_tool("qdrant-collection-info", {"collection_name": name})).structured_content
        assert info["searchable"] is False and info["problems"] == []
        assert info["suggested_settings"] == LANGCHAIN
        refused = await client.call_tool("qdrant-find", {"query": "bread", "collection_name": name})
        assert refused.is_error and "QDRANT_VECTOR_NAME" in refused.content[0].text
    assert server.terminate() == 0

    server = start_server({**storage, **LANGCHAIN})
    async with Client(server.mcp_url) as client:
        info = (await client.call_tool("qdrant-collection-info", {"collection_name": name})).structured_content
        assert info["searchable"] is True and info["suggested_settings"] == {}
        found = await client.call_tool("qdrant-find", {"query": "baking bread", "collection_name": name, "limit": 1})
        (hit,) = found.structured_content["hits"]
        assert (hit["document"], hit["metadata"]) == NOTES[1]
        stored = await client.call_tool(
            "qdrant-store",
            {"information": "The standup moved to 10:00.", "metadata": {"team": "core"}, "collection_name": name},
        )
        assert not stored.is_error, stored.content
        stored_id = stored.structured_content["id"]
        listed = await client.call_tool("qdrant-list", {"collection_name": name, "metadata_match": {"team": "core"}})
        assert [p["document"] for p in listed.structured_content["points"]] == ["The standup moved to 10:00."]
    assert server.terminate() == 0

    (document,) = langchain.similarity_search("When is the standup?", k=1)
    # LangChain adds where it found the point to the metadata it read.
    assert (document.page_content, document.metadata) == (
        "The standup moved to 10:00.",
        {"team": "core", "_id": stored_id, "_collection_name": name},
    )


def llamaindex(url: str, key: str | None, collection: str, **request: Any) -> dict[str, Any]:
    """One request to LlamaIndex's own store (llamaindex_store.py) in its venv."""
    python = os.environ.get("LLAMAINDEX_PYTHON")
    assert python, 'LLAMAINDEX_PYTHON is unset: run eval "$(scripts/bootstrap --tests)"'
    proc = subprocess.run(
        [python, str(Path(__file__).with_name("llamaindex_store.py"))],
        input=json.dumps({"url": url, "api_key": key, "collection": collection, **request}),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return dict(json.loads(proc.stdout))


async def test_a_llamaindex_collection_is_searched_written_and_read_back_by_llamaindex(
    start_server: Start, qdrant_server: tuple[str, str | None], model: LoadedModel, unique: Callable[[str], str]
) -> None:
    url, key = qdrant_server
    name = unique("llamaindex")
    vectors = model.embed_blocking("document", [text for text, _ in NOTES])
    nodes = [
        {"text": text, "metadata": meta, "embedding": vector}
        for (text, meta), vector in zip(NOTES, vectors, strict=True)
    ]
    ids = llamaindex(url, key, name, add=nodes)["ids"]
    storage = {"QDRANT_URL": url, "QDRANT_API_KEY": key}

    server = start_server(storage)
    async with Client(server.mcp_url) as client:
        info = (await client.call_tool("qdrant-collection-info", {"collection_name": name})).structured_content
        assert info["searchable"] is False and info["suggested_settings"] == LLAMAINDEX
    assert server.terminate() == 0

    server = start_server({**storage, **LLAMAINDEX})
    async with Client(server.mcp_url) as client:
        info = (await client.call_tool("qdrant-collection-info", {"collection_name": name})).structured_content
        assert info["searchable"] is True and info["suggested_settings"] == {}
        found = await client.call_tool("qdrant-find", {"query": "baking bread", "collection_name": name, "limit": 1})
        (hit,) = found.structured_content["hits"]
        # The text from inside LlamaIndex's node; its ids beside the metadata are payload keys too.
        assert (hit["id"], hit["document"], hit["metadata"]) == (ids[1], NOTES[1][0], {**NOTES[1][1], **LLAMAINDEX_IDS})
        updated = await client.call_tool(
            "qdrant-update", {"collection_name": name, "id": ids[0], "information": "The Eiffel Tower is in Lyon now."}
        )
        assert not updated.is_error, updated.content
        stored = await client.call_tool(
            "qdrant-store",
            {"information": "The standup moved to 10:00.", "metadata": {"team": "core"}, "collection_name": name},
        )
        assert not stored.is_error, stored.content
        stored_id = stored.structured_content["id"]
    assert server.terminate() == 0

    def read(query: str) -> dict[str, Any]:
        (vector,) = model.embed_blocking("query", [query])
        (node,) = llamaindex(url, key, name, query=vector, k=1)["nodes"]
        return dict(node)

    standup = read("When is the standup?")
    assert (standup["id"], standup["text"]) == (stored_id, "The standup moved to 10:00.")
    assert standup["metadata"]["team"] == "core"
    # The changed point: LlamaIndex reads the new text, not its node's old copy, which was dropped.
    tower = read("Where is the Eiffel Tower?")
    assert (tower["id"], tower["text"]) == (ids[0], "The Eiffel Tower is in Lyon now.")
    assert tower["metadata"]["topic"] == "travel"
    bread = read("sourdough")  # untouched: still read from LlamaIndex's own node
    assert (bread["id"], bread["text"], bread["metadata"]) == (ids[1], NOTES[1][0], NOTES[1][1])


async def test_a_flat_payload_is_read_written_and_filtered_on_every_engine(
    open_store: StoreFactory, unique: Callable[[str], str]
) -> None:
    """QDRANT_METADATA_KEY="": metadata keys sit at the payload's top level, beside the text."""
    notes = unique("flat")
    async with open_store() as base:
        flat = QdrantStore(
            base.backend, base.embedder, StoreConfig(vector_name=VECTOR, document_key="text", metadata_key="")
        )
        stored = await flat.store(notes, [Entry(text, meta) for text, meta in NOTES])
        (point,) = await base.backend.retrieve(notes, stored.ids[1:2])
        assert {k: v for k, v in point.payload.items() if not k.endswith("_at")} == {
            "text": NOTES[1][0],
            "topic": "food",
            "rating": 5,
        }
        (memory,) = (await flat.get(notes, stored.ids[1:2])).memories
        assert (memory.document, memory.metadata) == NOTES[1]

        updated = await flat.update(notes, stored.ids[1], metadata_patch={"rating": None, "kind": "bread"})
        assert updated.metadata == {"topic": "food", "kind": "bread"}
        (point,) = await base.backend.retrieve(notes, stored.ids[1:2])
        assert "rating" not in point.payload and point.payload["kind"] == "bread"

        matched = await flat.list_page(
            notes, 10, filter=metadata_filter({"topic": "food"}, flat.payloads.metadata_path)
        )
        assert [m.document for m in matched.memories] == [NOTES[1][0]]
        hits = (await flat.find(notes, "a famous landmark in France", 1)).hits
        assert (hits[0].document, hits[0].metadata) == NOTES[0]


def test_a_point_without_the_document_key_reads_as_what_is_there() -> None:
    layout = PayloadLayout("page_content", "metadata")
    memory = layout.decode(7, {"text": "elsewhere", "metadata": ["not", "an", "object"], "created_at": 5})
    assert (memory.document, memory.metadata, memory.created_at) == ("", None, None)
    assert layout.other({"text": "elsewhere", "page_content": "x", "tenant": "a"}) == {
        "text": "elsewhere",
        "tenant": "a",
    }
