"""Memories in Qdrant collections laid out as the official server lays them out.

One named dense vector `fast-<model>` (cosine) and the payload `{"document", "metadata"}`,
so a collection moves unchanged between the official server, a Qdrant server and the
embedded engine; this server's times (`created_at`, `updated_at`, `expires_at`) sit beside
them (payload.py). In hybrid mode, new collections also get a BM25 sparse vector (IDF
modifier) and searches fuse both rankings; collections without it are searched dense-only.

The store is one object made of its parts: the shared state and collection layouts
(collections.py), writes (writes.py, near-duplicates in duplicates.py), reads (reads.py),
browsing (listing.py), expiry (lifecycle.py) and export and import (transfer.py). `scoped(tenant)`
gives the same store confined to one tenant's points (tenancy.py).
"""

from __future__ import annotations

from .collections import SPARSE_VECTOR
from .lifecycle import Lifecycle
from .listing import Listing
from .model import (
    CollectionDetails,
    Duplicate,
    Entry,
    Fetched,
    Found,
    Hit,
    IfSimilar,
    Listed,
    Memory,
    MemoryEvents,
    Order,
    SparseEncoder,
    StoreConfig,
    Stored,
    content_id,
)
from .payload import PayloadLayout
from .reads import Reads
from .tenancy import Tenant
from .transfer import Record, Restores, Vector, export_records
from .writes import Writes

__all__ = [
    "SPARSE_VECTOR",
    "CollectionDetails",
    "Duplicate",
    "Entry",
    "Fetched",
    "Found",
    "Hit",
    "IfSimilar",
    "Listed",
    "Memory",
    "MemoryEvents",
    "Order",
    "PayloadLayout",
    "QdrantStore",
    "Record",
    "SparseEncoder",
    "StoreConfig",
    "Stored",
    "Tenant",
    "Vector",
    "content_id",
    "export_records",
]


class QdrantStore(Writes, Reads, Listing, Lifecycle, Restores):
    """Stores, finds, lists, changes, expires, deletes, exports and imports memories through a Backend."""
