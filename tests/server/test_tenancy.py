"""A tenant-scoped store (`QdrantStore.scoped`) on each engine, where no tool reaches it: deleting
expired memories. The tools' side of tenancy runs against the real provider in tests/tenants."""

from __future__ import annotations

import uuid
from datetime import timedelta

import anyio
import pytest

from qdrant_mcp_memory import times
from qdrant_mcp_memory.store import Entry, QdrantStore, Tenant

pytestmark = pytest.mark.anyio


async def test_a_tenant_scoped_purge_deletes_only_that_tenants_expired_memories(store: QdrantStore) -> None:
    notes = f"tenancy-{uuid.uuid4().hex[:8]}"
    apollo, zeus = store.scoped(Tenant("org-apollo")), store.scoped(Tenant("org-zeus"))
    until = times.now() + timedelta(seconds=1)
    await apollo.store(notes, [Entry("Apollo's parking spot is B7 today.")], expires_at=until)
    await zeus.store(notes, [Entry("Zeus's parking spot is C3 today.")], expires_at=until)
    await zeus.store(notes, [Entry("Zeus's office is on the third floor.")])
    await anyio.sleep(max(0.0, (until - times.now()).total_seconds()) + 0.1)
    assert await apollo.purge_expired(notes) == {notes: 1}
    assert (await apollo.purge_expired())[notes] == 0
    # The unscoped store (the background purge) deletes every tenant's expired memories, and only those.
    assert await store.purge_expired(notes) == {notes: 1}
    assert (await store.collection_details(notes)).points_count == 1
    assert (await apollo.collection_details(notes)).points_count == 0
    assert (await zeus.collection_details(notes)).points_count == 1
