"""An MCP server for Qdrant: semantic memory for AI clients, a drop-in for mcp-server-qdrant."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("qdrant-mcp-memory")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"
