"""LlamaIndex's own QdrantVectorStore, run with the LlamaIndex venv (LLAMAINDEX_PYTHON) by
test_foreign_layouts.py: one JSON request on stdin, one JSON answer on stdout.

    {"url": ..., "api_key": ..., "collection": ..., "add": [{"text", "metadata", "embedding"}]}
        -> {"ids": [...]}                      nodes written as LlamaIndex writes them
    {"url": ..., "api_key": ..., "collection": ..., "query": [floats], "k": 3}
        -> {"nodes": [{"id", "text", "metadata", "score"}]}   read as LlamaIndex reads them

The vectors come from the test (the offline model), so nothing here embeds or reaches a network.
"""

from __future__ import annotations

import json
import sys

import qdrant_client
from llama_index.core.schema import TextNode
from llama_index.core.vector_stores.types import VectorStoreQuery
from llama_index.vector_stores.qdrant import QdrantVectorStore


def main() -> None:
    request = json.load(sys.stdin)
    client = qdrant_client.QdrantClient(url=request["url"], api_key=request.get("api_key"), timeout=30)
    store = QdrantVectorStore(collection_name=request["collection"], client=client)
    if "add" in request:
        nodes = [TextNode(text=n["text"], metadata=n["metadata"], embedding=n["embedding"]) for n in request["add"]]
        answer: dict[str, object] = {"ids": store.add(nodes)}
    else:
        result = store.query(VectorStoreQuery(query_embedding=request["query"], similarity_top_k=request["k"]))
        answer = {
            "nodes": [
                {"id": node.node_id, "text": node.get_content(), "metadata": node.metadata, "score": score}
                for node, score in zip(result.nodes or [], result.similarities or [], strict=True)
            ]
        }
    json.dump(answer, sys.stdout)


if __name__ == "__main__":
    main()
