"""Failures that end a call with a message meant for the caller (often an LLM) to act on."""

from __future__ import annotations


class ServiceError(Exception):
    """A call failed for a reason the caller can understand and act on; the message says what to do."""

    retryable = False


class QdrantUnavailable(ServiceError):
    """Qdrant did not answer (down, unreachable, timed out, or the server is shutting down)."""

    retryable = True


class QdrantRejected(ServiceError):
    """Qdrant refused the request; retrying the same request cannot help."""


class DiskFull(ServiceError):
    """The data folder's disk is (nearly) full: writes are refused, reads go on; retry once space is freed."""

    retryable = True


class EmbeddingUnavailable(ServiceError):
    """The embedding service cannot embed now (unreachable, timed out, refused the key, rate
    limited, failing); the message names the service and what to check."""

    retryable = True


class EmbeddingRejected(ServiceError):
    """The embedding service refused this input (too long, malformed); the service itself is fine."""


class CollectionNotFound(ServiceError):
    pass


class CollectionLayoutError(ServiceError):
    """The collection was written with another model or tool: searching it would return wrong neighbours."""


class InvalidRequest(ServiceError):
    """The arguments are well-formed but cannot be carried out as given (e.g. conflicting duplicates)."""


class ServerBusy(ServiceError):
    """Too much work is queued; the call was refused at once rather than left waiting."""

    retryable = True


class NoTenant(ServiceError):
    """Tenancy is on (MCP_TENANT_CLAIM) and the caller's token does not name a tenant: nothing is read or written."""
