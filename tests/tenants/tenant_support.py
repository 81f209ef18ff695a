"""What the tenancy suite shares: the engines it runs on, and the local-mode folder written before tenancy."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from oidc import OAuthDeployment
from qdrant_client import QdrantClient, models

VECTOR = "fast-all-minilm-l6-v2"
# The collection a local-mode folder holds before tenancy, with one memory no tenant owns.
LEGACY_COLLECTION = "before-tenancy"
LEGACY_ID = "5d6b6c2e-1f6a-4c1e-9a59-0c1f2d3e4f50"
ENGINES = ["edge", "local-mode", "qdrant-server"]


@dataclass
class TenantDeployment:
    oauth: OAuthDeployment
    engine: str


def local_mode_folder(path: Path) -> None:
    """A folder as qdrant-client's local mode (the official server) writes it, one memory in it."""
    client = QdrantClient(path=str(path))
    client.create_collection(
        LEGACY_COLLECTION, vectors_config={VECTOR: models.VectorParams(size=384, distance=models.Distance.COSINE)}
    )
    vector = [1.0 / 384**0.5] * 384
    payload = {"document": "A memory from before tenancy was turned on", "metadata": {"project": "apollo"}}
    client.upsert(LEGACY_COLLECTION, [models.PointStruct(id=LEGACY_ID, vector={VECTOR: vector}, payload=payload)])
    client.close()
