"""What the server says about itself when a client connects: fixed, so it needs nothing loaded.

The MCP SDK builds the `initialize` answer from the name, version and instructions given to it
and the capabilities of the handlers registered; they are stated here too, so that stdio can
answer before the SDK is imported (transport/stdio.py). tests/server/test_stdio_start.py holds
this module to the SDK's own answer.
"""

from __future__ import annotations

from typing import Any

from . import __version__

NAME = "qdrant-mcp-memory"
INSTRUCTIONS = (
    "Semantic memory backed by Qdrant. Store facts with qdrant-store (or many at once with "
    "qdrant-store-many; ttl or expires_at make them expire, if_similar avoids storing one twice) and "
    "retrieve them by meaning with qdrant-find (recency ranks newer ones higher, diversity avoids "
    "repeats). Browse with qdrant-list, read by id with qdrant-get, correct with qdrant-update."
)
# The revisions a client reaches through the `initialize` handshake (the SDK's HANDSHAKE_PROTOCOL_VERSIONS).
HANDSHAKE_VERSIONS = ("2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25")
# What the SDK advertises for the handlers the server registers: tools, resources, and the
# (empty) prompt list MCPServer always serves; the lists never change while it runs.
CAPABILITIES: dict[str, Any] = {
    "prompts": {"listChanged": False},
    "resources": {"listChanged": False, "subscribe": False},
    "tools": {"listChanged": False},
}


def initialize_result(protocol_version: str) -> dict[str, Any]:
    """The `initialize` result for a client that asked for `protocol_version`, one of HANDSHAKE_VERSIONS."""
    return {
        "capabilities": CAPABILITIES,
        "instructions": INSTRUCTIONS,
        "protocolVersion": protocol_version,
        "serverInfo": {"name": NAME, "version": __version__},
    }
