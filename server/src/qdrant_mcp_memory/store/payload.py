"""Where a memory's parts sit in a point's payload: the one place that knows the layout.

The official server's `{"document": ..., "metadata": ...}`, and beside them (never inside
`metadata`) this server's times: `created_at`, `updated_at` and, when set, `expires_at`, all
RFC 3339 UTC. Reading never fails on what another tool wrote: a missing or odd document reads
as text, metadata that is not an object as none, a time that is not a string as absent.

Other tools' layouts (QDRANT_DOCUMENT_KEY, QDRANT_METADATA_KEY): LangChain keeps the text in
`page_content`; with an empty metadata key (LlamaIndex, flat payloads) every payload key but
the document and this server's times is metadata, and metadata keys sit at the top level.
LlamaIndex's store keeps each node whole as JSON in `_node_content` (its type in `_node_type`)
and no text key: a point without the document key reads its text from there. A change made here
drops that copy, which would otherwise still say the old text: LlamaIndex then reads the point
from its `text_key` ("text", so QDRANT_DOCUMENT_KEY=text) and the flat metadata.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from .. import times
from ..backends import PointId
from ..filters import Condition, DatetimeRange, FieldCondition, Filter
from .model import Memory

# LlamaIndex's serialised node and its class name (llama_index.core.vector_stores.utils).
NODE_KEYS = ("_node_content", "_node_type")


@dataclass(frozen=True)
class PayloadLayout:
    document_key: str = "document"
    metadata_key: str = "metadata"
    created_key: ClassVar[str] = "created_at"
    updated_key: ClassVar[str] = "updated_at"
    expires_key: ClassVar[str] = "expires_at"
    time_keys: ClassVar[tuple[str, ...]] = (created_key, updated_key, expires_key)
    # The payload keys that get a datetime index: what listing orders by and expiry filters on.
    datetime_keys: ClassVar[tuple[str, ...]] = (created_key, expires_key)

    @property
    def flat(self) -> bool:
        """Metadata keys sit at the payload's top level (no metadata key)."""
        return not self.metadata_key

    def metadata_path(self, key: str) -> str:
        """Where metadata key `key` is in the payload, as filters and indexes name it."""
        return key if self.flat else f"{self.metadata_key}.{key}"

    def encode(self, memory: Memory, keep: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The payload of `memory`; `keep` is the payload it replaces: its other keys stay, and so do
        its text and metadata as another tool wrote them (or left them out) unless they changed."""
        payload = dict(keep or {})
        text_changed = keep is None or memory.document != self._document(keep)
        metadata_changed = keep is None or memory.metadata != self._metadata(keep)
        if text_changed or metadata_changed:
            for key in NODE_KEYS:
                payload.pop(key, None)
        if text_changed:
            payload[self.document_key] = memory.document
        if metadata_changed:
            if self.flat:
                for key in self._metadata(payload) or {}:
                    del payload[key]
                payload.update(memory.metadata or {})
            else:
                payload[self.metadata_key] = memory.metadata
        for key, value in (
            (self.created_key, memory.created_at),
            (self.updated_key, memory.updated_at),
            (self.expires_key, memory.expires_at),
        ):
            if value is None:
                payload.pop(key, None)
            else:
                payload[key] = value
        return payload

    def decode(self, point_id: PointId, payload: Mapping[str, Any]) -> Memory:
        return Memory(
            id=point_id,
            document=self._document(payload),
            metadata=self._metadata(payload),
            created_at=_text(payload.get(self.created_key)),
            updated_at=_text(payload.get(self.updated_key)),
            expires_at=_text(payload.get(self.expires_key)),
        )

    def other(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        """The payload keys this layout does not read (another tool's, a tenant's), as they are."""
        if self.flat:
            return {key: payload[key] for key in NODE_KEYS if key in payload}
        return {key: value for key, value in payload.items() if key not in self.own_keys}

    def _document(self, payload: Mapping[str, Any]) -> str:
        document = payload.get(self.document_key)
        if document is None:
            document = _node_text(payload.get(NODE_KEYS[0]))
        if isinstance(document, str):
            return document
        return "" if document is None else json.dumps(document, ensure_ascii=False, default=str)

    def _metadata(self, payload: Mapping[str, Any]) -> dict[str, Any] | None:
        if self.flat:
            flat = {key: value for key, value in payload.items() if key not in self.own_keys and key not in NODE_KEYS}
            return flat or None
        metadata = payload.get(self.metadata_key)
        return metadata if isinstance(metadata, dict) else None

    @property
    def own_keys(self) -> frozenset[str]:
        """The keys this layout reads as other than metadata."""
        return frozenset((self.document_key, self.metadata_key, *self.time_keys))

    def is_expired(self, memory: Memory, moment: datetime) -> bool:
        expires = times.stored_time(memory.expires_at)
        return expires is not None and expires <= moment

    # -- filters on the times -------------------------------------------------------------

    def expired(self, moment: datetime) -> Condition:
        """Points whose expiry has come."""
        return FieldCondition(self.expires_key, DatetimeRange(lte=times.format_time(moment)))

    def live(self, moment: datetime) -> Filter:
        """Points not expired at `moment` (those without an expiry included)."""
        return Filter(must_not=(self.expired(moment),))

    def created(
        self, after: datetime | None = None, before: datetime | None = None, *, up_to: datetime | None = None
    ) -> Condition | None:
        """Points created after `after` and before `before` (both exclusive), and no later than `up_to`."""
        bounds = {
            "gt": times.format_time(after) if after else None,
            "lt": times.format_time(before) if before else None,
            "lte": times.format_time(up_to) if up_to else None,
        }
        if not any(bounds.values()):
            return None
        return FieldCondition(self.created_key, DatetimeRange(**bounds))


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _node_text(node_json: Any) -> str | None:
    """The text of a LlamaIndex node serialised as JSON: `text`, or `text_resource.text` in the
    releases that keep it in a media resource; None when it is neither."""
    if not isinstance(node_json, str):
        return None
    try:
        node = json.loads(node_json)
    except ValueError:
        return None
    if not isinstance(node, dict):
        return None
    resource = node.get("text_resource")
    text = resource.get("text") if isinstance(resource, dict) else None
    text = text if isinstance(text, str) else node.get("text")
    return text if isinstance(text, str) else None
