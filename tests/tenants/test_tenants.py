"""Tenants (MCP_TENANT_CLAIM): two organisations share a server and its collections, and neither can
see, overwrite or delete the other's memories through any tool, not by guessing ids, not through
a raw query_filter; a token without the claim is refused. The tokens come from the real provider
(client credentials: `apollo` is client mcp-both, a JWT; `zeus` is client mcp-opaque, an opaque
token the server introspects), the calls from the SDK's client over HTTP, on every engine."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx2
import pytest
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from oidc import TENANT_CLAIM
from tenants.tenant_support import LEGACY_COLLECTION, LEGACY_ID, TenantDeployment

pytestmark = pytest.mark.anyio

APOLLO_TEXT = "The deploy key for project apollo rotates every Monday morning"
APOLLO_NEAR = "The deploy key for project apollo rotates each Monday morning"
ZEUS_TEXT = "Zeus builds run nightly on the big runner"
# A raw query_filter that tries to reach apollo's memories from zeus's side, each its own way.
FILTER_TRICKS: dict[str, dict[str, Any]] = {
    "should-tenant": {"should": [{"key": "tenant", "match": {"value": "org-mcp-both"}}]},
    "must-tenant": {"must": [{"key": "tenant", "match": {"value": "org-mcp-both"}}]},
    "must-not-own": {"must_not": [{"key": "tenant", "match": {"value": "org-mcp-opaque"}}]},
    "any-tenant": {"must": [{"key": "tenant", "match": {"any": ["org-mcp-both", "org-mcp-opaque"]}}]},
    "tenant-empty": {
        "should": [{"is_empty": {"key": "tenant"}}, {"key": "metadata.project", "match": {"value": "apollo"}}]
    },
    "nested-should": {"should": [{"should": [{"key": "metadata.project", "match": {"value": "apollo"}}]}]},
}


@dataclass
class Session:
    client: Client

    async def ok(self, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
        result = await self.client.call_tool(tool, arguments)
        assert not result.is_error, f"{tool} {arguments}: {result.content}"
        assert result.structured_content is not None
        return dict(result.structured_content)

    async def refused(self, tool: str, arguments: dict[str, Any]) -> str:
        result = await self.client.call_tool(tool, arguments)
        assert result.is_error, f"{tool} {arguments} succeeded: {result.structured_content}"
        return " ".join(getattr(part, "text", "") for part in result.content)


@asynccontextmanager
async def session(tenants: TenantDeployment, client: str) -> AsyncIterator[Session]:
    token = tenants.oauth.token(client)
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=60) as http,
        Client(streamable_http_client(tenants.oauth.resource, http_client=http)) as connected,
    ):
        yield Session(connected)


@dataclass
class Stored:
    collection: str
    other: str  # a second collection, for collection_names
    apollo: str  # apollo's memory (an explicit id)
    apollo_derived: str  # apollo's memory whose id is derived from its text
    zeus: str


async def seed(apollo: Session, zeus: Session) -> Stored:
    collection, other = f"shared-{uuid.uuid4().hex[:8]}", f"other-{uuid.uuid4().hex[:8]}"
    apollo_id = str(uuid.uuid4())
    await apollo.ok(
        "qdrant-store",
        {"information": APOLLO_TEXT, "metadata": {"project": "apollo"}, "id": apollo_id, "collection_name": collection},
    )
    derived = await apollo.ok(
        "qdrant-store", {"information": ZEUS_TEXT + " (apollo's copy)", "collection_name": collection}
    )
    await apollo.ok("qdrant-store", {"information": APOLLO_TEXT, "collection_name": other})
    zeus_stored = await zeus.ok(
        "qdrant-store", {"information": ZEUS_TEXT, "metadata": {"project": "zeus"}, "collection_name": collection}
    )
    return Stored(collection, other, apollo_id, str(derived["id"]), str(zeus_stored["id"]))


def ids_of(result: dict[str, Any], field: str = "hits") -> set[str]:
    return {str(entry["id"]) for entry in result[field]}


async def apollo_unchanged(apollo: Session, stored: Stored) -> None:
    got = await apollo.ok(
        "qdrant-get", {"ids": [stored.apollo, stored.apollo_derived], "collection_name": stored.collection}
    )
    assert [point["document"] for point in got["points"]] == [APOLLO_TEXT, ZEUS_TEXT + " (apollo's copy)"]
    assert got["points"][0]["metadata"] == {"project": "apollo"}


async def test_a_tenant_finds_gets_and_lists_only_its_own_memories(tenants: TenantDeployment) -> None:
    async with session(tenants, "both") as apollo, session(tenants, "opaque") as zeus:
        stored = await seed(apollo, zeus)
        mine = {stored.apollo, stored.apollo_derived}
        where = {"collection_name": stored.collection}
        # Plain, recency, diversity, across collections: zeus finds its own memory and nothing of apollo's.
        for extra in ({}, {"recency": "1h"}, {"diversity": 0.5}):
            found = await zeus.ok("qdrant-find", {"query": APOLLO_TEXT, "limit": 10, **where, **extra})
            assert ids_of(found) == {stored.zeus}, extra
            found = await apollo.ok("qdrant-find", {"query": APOLLO_TEXT, "limit": 10, **where, **extra})
            assert ids_of(found) == mine, extra
        across = {"query": APOLLO_TEXT, "limit": 10, "collection_names": [stored.collection, stored.other]}
        assert ids_of(await zeus.ok("qdrant-find", across)) == {stored.zeus}
        assert len(ids_of(await apollo.ok("qdrant-find", across))) == 3
        # A raw filter narrows what a tenant sees; no trick widens it.
        for name, trick in FILTER_TRICKS.items():
            found = await zeus.ok("qdrant-find", {"query": APOLLO_TEXT, "limit": 10, "query_filter": trick, **where})
            assert not ids_of(found) & mine, name
            listed = await zeus.ok("qdrant-list", {"query_filter": trick, **where})
            assert not ids_of(listed, "points") & mine, name
        # By id: apollo's ids are missing for zeus, exactly like ids that exist nowhere.
        got = await zeus.ok("qdrant-get", {"ids": [stored.apollo, stored.apollo_derived, stored.zeus], **where})
        assert ids_of(got, "points") == {stored.zeus}
        assert {str(i) for i in got["missing"]} == mine
        # Listing: each sees its own; a cursor from the other tenant's listing is refused.
        assert ids_of(await zeus.ok("qdrant-list", where), "points") == {stored.zeus}
        first = await apollo.ok("qdrant-list", {"limit": 1, **where})
        assert first["next_cursor"] and ids_of(first, "points") <= mine
        refusal = await zeus.refused("qdrant-list", {"limit": 1, "cursor": first["next_cursor"], **where})
        assert "cursor" in refusal
        # Collection info counts the caller's own memories only.
        assert (await zeus.ok("qdrant-collection-info", where))["points_count"] == 1
        assert (await apollo.ok("qdrant-collection-info", where))["points_count"] == 2
        assert (await zeus.ok("qdrant-collection-info", {"collection_name": stored.other}))["points_count"] == 0
        if tenants.engine != "local-mode":  # qdrant-client's local mode keeps no payload indexes
            info = await zeus.ok("qdrant-collection-info", where)
            assert info["indexed_fields"]["tenant"] == "keyword"


async def test_a_tenant_cannot_change_or_delete_another_tenants_memories(tenants: TenantDeployment) -> None:
    async with session(tenants, "both") as apollo, session(tenants, "opaque") as zeus:
        stored = await seed(apollo, zeus)
        where = {"collection_name": stored.collection}
        for target in (stored.apollo, stored.apollo_derived):
            refusal = await zeus.refused("qdrant-update", {"id": target, "information": "taken over", **where})
            assert f"has no point {target}" in refusal
            refusal = await zeus.refused("qdrant-update", {"id": target, "metadata": {"project": "zeus"}, **where})
            assert f"has no point {target}" in refusal
        assert (await zeus.ok("qdrant-delete", {"ids": [stored.apollo, stored.apollo_derived], **where}))[
            "deleted"
        ] == 0
        deleted = await zeus.ok("qdrant-delete", {"metadata_match": {"project": "apollo"}, **where})
        assert deleted["deleted"] == 0
        # Storing with apollo's id is refused without showing anything of apollo's point.
        for target in (stored.apollo, stored.apollo_derived):
            refusal = await zeus.refused("qdrant-store", {"information": "mine now", "id": target, **where})
            assert f"id {target} is not available" in refusal and "apollo" not in refusal
            entries = [{"information": "first"}, {"information": "second", "id": target}]
            refusal = await zeus.refused("qdrant-store-many", {"entries": entries, **where})
            assert f"id {target} is not available" in refusal
        # The same text as apollo's derived-id memory gets zeus a point of its own.
        same = await zeus.ok("qdrant-store", {"information": ZEUS_TEXT + " (apollo's copy)", **where})
        assert str(same["id"]) not in {stored.apollo, stored.apollo_derived}
        # if_similar looks among the caller's own memories only: nothing of apollo's is skipped for, replaced or named.
        for mode in ("skip", "replace"):
            near = await zeus.ok("qdrant-store", {"information": APOLLO_NEAR, "if_similar": mode, **where})
            assert near["outcome"] in ("stored", "skipped") and near["duplicate_of"] in (None, near["id"])
            assert str(near["id"]) not in {stored.apollo, stored.apollo_derived}
        await apollo_unchanged(apollo, stored)
        # Apollo's own near-duplicate check does see apollo's memory.
        near = await apollo.ok("qdrant-store", {"information": APOLLO_NEAR, "if_similar": "skip", **where})
        assert near["outcome"] == "skipped" and str(near["duplicate_of"]) == stored.apollo


async def test_a_token_without_the_tenant_claim_is_refused(tenants: TenantDeployment) -> None:
    async with (
        session(tenants, "both") as apollo,
        session(tenants, "opaque") as zeus,
        session(tenants, "untenanted") as nobody,
    ):
        stored = await seed(apollo, zeus)
        where = {"collection_name": stored.collection}
        calls: list[tuple[str, dict[str, Any]]] = [
            ("qdrant-find", {"query": APOLLO_TEXT, **where}),
            ("qdrant-get", {"ids": [stored.apollo], **where}),
            ("qdrant-list", where),
            ("qdrant-collection-info", where),
            ("qdrant-store", {"information": "no tenant", **where}),
            ("qdrant-store-many", {"entries": [{"information": "no tenant"}], **where}),
            ("qdrant-update", {"id": stored.apollo, "information": "no tenant", **where}),
            ("qdrant-delete", {"ids": [stored.apollo], **where}),
            ("qdrant-delete", {"metadata_match": {"project": "apollo"}, **where}),
        ]
        for tool, arguments in calls:
            refusal = await nobody.refused(tool, arguments)
            assert f"no {TENANT_CLAIM!r} claim" in refusal, (tool, refusal)
        with pytest.raises(MCPError, match=f"no {TENANT_CLAIM!r} claim"):
            await nobody.client.read_resource(f"qdrant://collections/{stored.collection}")
        await apollo_unchanged(apollo, stored)
        assert (await apollo.ok("qdrant-collection-info", where))["points_count"] == 2
        assert (await zeus.ok("qdrant-collection-info", where))["points_count"] == 1


async def test_the_tenant_value_stays_out_of_the_logs(tenants: TenantDeployment) -> None:
    """The tenant is a customer's identity: the server's log (DEBUG-free, as deployed) never names it."""
    async with session(tenants, "both") as apollo, session(tenants, "opaque") as zeus:
        stored = await seed(apollo, zeus)
        await zeus.refused(
            "qdrant-store", {"information": "x", "id": stored.apollo, "collection_name": stored.collection}
        )
    log = tenants.oauth.server.log()
    assert "collection created" in log
    assert "org-mcp-both" not in log and "org-mcp-opaque" not in log


async def test_a_memory_from_before_tenancy_belongs_to_no_tenant(tenants: TenantDeployment) -> None:
    if tenants.engine != "local-mode":
        pytest.skip("only the local-mode folder is written before the server starts")
    where = {"collection_name": LEGACY_COLLECTION}
    async with session(tenants, "both") as apollo:
        assert ids_of(await apollo.ok("qdrant-find", {"query": "before tenancy", **where})) == set()
        assert ids_of(await apollo.ok("qdrant-list", where), "points") == set()
        assert [str(i) for i in (await apollo.ok("qdrant-get", {"ids": [LEGACY_ID], **where}))["missing"]] == [
            LEGACY_ID
        ]
        refusal = await apollo.refused("qdrant-store", {"information": "mine", "id": LEGACY_ID, **where})
        assert f"id {LEGACY_ID} is not available" in refusal
        assert (await apollo.ok("qdrant-delete", {"ids": [LEGACY_ID], **where}))["deleted"] == 0
        info = await apollo.ok("qdrant-collection-info", where)
        assert info["points_count"] == 0
