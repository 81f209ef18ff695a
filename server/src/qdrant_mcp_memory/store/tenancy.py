"""Tenants: each caller's memories kept apart inside shared collections (MCP_TENANT_CLAIM).

Qdrant's own multitenancy pattern: every point a tenant writes carries the tenant in the payload
key `tenant` (a keyword index with `is_tenant`, which lets the engine keep each tenant's points
together), and every read, count and delete of a tenant-scoped store is ANDed with a condition on
it. The condition is added by the store, outside whatever filter the caller gave, so no filter
(`should`, `must_not`, a `tenant` key of its own) can widen it: it can only narrow.

A tenant is a value the tool layer takes from the verified token and hands to the store
(`QdrantStore.scoped`); the store never looks for it anywhere else. Points without the key
(written before tenancy was turned on, or by another tool) belong to no tenant: no tenant sees
or overwrites them.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from ..filters import Condition, FieldCondition, MatchValue
from .model import CONTENT_ID_NAMESPACE


@dataclass(frozen=True)
class Tenant:
    value: str
    # The payload key, beside `document` and `metadata` (never inside metadata, which callers write).
    key: ClassVar[str] = "tenant"

    def condition(self) -> Condition:
        """This tenant's points, and only those."""
        return FieldCondition(self.key, MatchValue(self.value))

    def owns(self, payload: Mapping[str, Any]) -> bool:
        return payload.get(self.key) == self.value

    def stamp(self, payload: dict[str, Any]) -> dict[str, Any]:
        return {**payload, self.key: self.value}

    def content_id(self, document: str) -> str:
        """The id a document gets when none is given, in this tenant's own namespace: two tenants
        storing the same text get two points, and neither can name the other's by its text alone."""
        namespace = uuid.uuid5(CONTENT_ID_NAMESPACE, f"tenant\0{self.value}")
        return str(uuid.uuid5(namespace, document))
