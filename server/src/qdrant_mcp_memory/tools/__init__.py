"""The MCP tools: typed, bounded parameters in; a structured result plus readable text out.

Parameters the deployment fixes are hidden the way the official server hides them:
`collection_name` (and `collection_names`) disappear when COLLECTION_NAME is set, and filter
parameters appear only as FILTERABLE_FIELDS (or QDRANT_ALLOW_ARBITRARY_FILTER) configure them.
What a value may be is checked once, at this boundary (params.py, validation.py). Each call
gets its store from tenants.py: the caller's tenant's part of it when MCP_TENANT_CLAIM is set.

    search.py   qdrant-find
    browse.py   qdrant-get, qdrant-list, qdrant-list-collections, qdrant-collection-info
    write.py    qdrant-store, qdrant-store-many, qdrant-update, qdrant-delete (not in read-only mode)
"""

from __future__ import annotations

from typing import Literal

from mcp.server import MCPServer

from ..settings import Settings
from .browse import register_browse
from .search import register_search
from .shaping import Shaping
from .tenants import Stores
from .write import register_write

READ_TOOLS = (
    "qdrant-find",
    "qdrant-get",
    "qdrant-list",
    "qdrant-list-collections",
    "qdrant-collection-info",
)
WRITE_TOOLS = ("qdrant-store", "qdrant-store-many", "qdrant-update", "qdrant-delete")
# The access each tool needs (in OAuth mode, the read or the write scope): one table built from
# the two lists above, so a tool added to either is covered; a tool in neither is refused.
__all__ = ["READ_TOOLS", "TOOL_ACCESS", "WRITE_TOOLS", "Stores", "register_tools"]

TOOL_ACCESS: dict[str, Literal["read", "write"]] = {
    **dict.fromkeys(READ_TOOLS, "read"),
    **dict.fromkeys(WRITE_TOOLS, "write"),
}


def register_tools(mcp: MCPServer, settings: Settings, stores: Stores) -> list[str]:
    """Register the tools this configuration offers; returns their names."""
    shaping = Shaping(settings, stores.store.payloads.metadata_path)
    register_search(mcp, shaping, stores)
    register_browse(mcp, shaping, stores)
    if settings.read_only:
        return list(READ_TOOLS)
    register_write(mcp, shaping, stores)
    return [*READ_TOOLS, *WRITE_TOOLS]
