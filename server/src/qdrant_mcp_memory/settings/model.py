"""The Settings class: every setting with its variable names, default and bounds, and the checks
that settings make sense together (the module docstring of the package says how they are read)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict

from .fields import FilterableField
from .values import EmptyValues, _check_url, _env, _secret_from_file, _split_list, default_model_cache, is_loopback

DEFAULT_STORE_DESCRIPTION = "Keep the memory for later use, when you are asked to remember something."
DEFAULT_FIND_DESCRIPTION = (
    "Look up memories in Qdrant. Use this tool when you need to: \n"
    " - Find memories by their content \n"
    " - Access memories for further analysis \n"
    " - Get some personal information about the user"
)
DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
# Ends the vector name of an int8 model's vectors (EMBEDDING_QUANTIZED), which differ from the full model's.
QUANTIZED_VECTOR_SUFFIX = "-int8"
# Cosine similarity from which if_similar takes two texts for one memory: measured with the default
# model on paraphrases and look-alike distinct facts (README, "How similar is a duplicate").
SIMILARITY_THRESHOLD = 0.97

Transport = Literal["stdio", "sse", "streamable-http"]
Provider = Literal["fastembed", "openai"]


# RFC 6749 §3.3 scope-token: printable ASCII but space, `"` and the backslash.
SCOPE_SYNTAX = r"^[\x21\x23-\x5b\x5d-\x7e]+$"
# Keys this server writes beside the text and the metadata (store/payload.py): no layout may claim them.
TIME_KEYS = ("created_at", "updated_at", "expires_at")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_ignore_empty=True, extra="ignore", case_sensitive=False)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        empty = EmptyValues(settings_cls, getattr(dotenv_settings, "env_file", None))
        return init_settings, empty, env_settings, dotenv_settings, file_secret_settings

    # Qdrant connection (official names)
    qdrant_url: str | None = Field(None, validation_alias=_env("QDRANT_URL"))
    qdrant_api_key: SecretStr | None = Field(None, validation_alias=_env("QDRANT_API_KEY"))
    qdrant_api_key_file: Path | None = Field(None, validation_alias=_env("QDRANT_API_KEY_FILE"))
    qdrant_local_path: Path | None = Field(None, validation_alias=_env("QDRANT_LOCAL_PATH"))
    collection_name: str | None = Field(None, validation_alias=_env("COLLECTION_NAME"), min_length=1, max_length=255)
    # Collections this server creates on a Qdrant cluster: shards and replicas (unset = Qdrant's defaults).
    shard_number: int | None = Field(None, validation_alias=_env("QDRANT_SHARD_NUMBER"), ge=1, le=1024)
    replication_factor: int | None = Field(None, validation_alias=_env("QDRANT_REPLICATION_FACTOR"), ge=1, le=64)
    write_consistency_factor: int | None = Field(
        None, validation_alias=_env("QDRANT_WRITE_CONSISTENCY_FACTOR"), ge=1, le=64
    )
    # Embedded engine: when a write is acknowledged. always: once its WAL record is fsynced (a power cut
    # loses nothing acknowledged); interval: at once, the WAL fsynced at most this many ms later.
    embedded_fsync: Literal["always", "interval"] = Field("always", validation_alias=_env("QDRANT_EMBEDDED_FSYNC"))
    embedded_fsync_interval_ms: int = Field(
        1000, validation_alias=_env("QDRANT_EMBEDDED_FSYNC_INTERVAL_MS"), ge=10, le=60_000
    )
    # Dense + BM25 fused by reciprocal rank fusion; off by default for drop-in compatibility.
    hybrid_search: bool = Field(False, validation_alias=_env("QDRANT_HYBRID_SEARCH"))
    # How hybrid search merges the rankings: dbsf (scores normalised per ranking, no weights) or rrf
    # (ranks, weighted by QDRANT_HYBRID_WEIGHTS "dense,bm25"; unset = equal). DBSF by measurement (README).
    hybrid_fusion: Literal["rrf", "dbsf"] = Field("dbsf", validation_alias=_env("QDRANT_HYBRID_FUSION"))
    hybrid_weights: Annotated[list[float] | None, NoDecode] = Field(
        None, validation_alias=_env("QDRANT_HYBRID_WEIGHTS")
    )
    # Collections other tools wrote: the dense vector's name ("" = the unnamed one; unset = `fast-<model>`),
    # and the payload keys of the text and the metadata ("" = every other payload key is metadata).
    vector_name_setting: str | None = Field(None, validation_alias=_env("QDRANT_VECTOR_NAME"), max_length=255)
    document_key: str = Field("document", validation_alias=_env("QDRANT_DOCUMENT_KEY"), max_length=255)
    metadata_key: str = Field("metadata", validation_alias=_env("QDRANT_METADATA_KEY"), max_length=255)

    # Embeddings (official names). fastembed: a local model in this process; openai: any service
    # that speaks the OpenAI embeddings API (POST {EMBEDDING_URL}/embeddings).
    embedding_provider: Provider = Field("fastembed", validation_alias=_env("EMBEDDING_PROVIDER"))
    # The model's name: fastembed's, or the one sent to the service.
    embedding_model: str = Field(DEFAULT_MODEL, validation_alias=_env("EMBEDDING_MODEL"), min_length=1)
    embedding_cache_path: Path = Field(
        default_factory=default_model_cache, validation_alias=_env("FASTEMBED_CACHE_PATH")
    )
    # Parallel single-threaded ONNX runs (see embeddings/fastembed.py); None = one per available core.
    embedding_threads: int | None = Field(None, validation_alias=_env("EMBEDDING_THREADS"), ge=1, le=64)
    # fastembed: run the model's int8 variant, made once in the cache (embeddings/quantize.py); its vectors
    # have their own name, so a collection is written and searched with one variant only.
    embedding_quantized: bool = Field(False, validation_alias=_env("EMBEDDING_QUANTIZED"))
    # Vectors of recent queries kept in memory (the exact text; see querycache.py); 0 = none.
    embedding_query_cache: int = Field(1024, validation_alias=_env("EMBEDDING_QUERY_CACHE"), ge=0, le=1_000_000)
    # The openai provider only.
    embedding_url: str | None = Field(None, validation_alias=_env("EMBEDDING_URL"))
    embedding_api_key: SecretStr | None = Field(None, validation_alias=_env("EMBEDDING_API_KEY"))
    embedding_api_key_file: Path | None = Field(None, validation_alias=_env("EMBEDDING_API_KEY_FILE"))
    # Sent as `dimensions` (models that can shorten their vectors honour it); unset = the size the
    # service returns, found once at start.
    embedding_dimensions: int | None = Field(None, validation_alias=_env("EMBEDDING_DIMENSIONS"), ge=1, le=65_536)
    embedding_batch_size: int = Field(32, validation_alias=_env("EMBEDDING_BATCH_SIZE"), ge=1, le=2048)
    # Seconds one embedding request may take, its retries included.
    embedding_timeout: float = Field(30.0, validation_alias=_env("EMBEDDING_TIMEOUT"), gt=0, le=600)
    # Retries of a request the service answered 429 or 5xx (or dropped), after Retry-After or a backoff.
    embedding_retries: int = Field(3, validation_alias=_env("EMBEDDING_RETRIES"), ge=0, le=10)
    # Requests in flight at once: one is kept for queries, the others carry documents.
    embedding_max_requests: int = Field(4, validation_alias=_env("EMBEDDING_MAX_REQUESTS"), ge=2, le=64)

    # Tools (official names)
    tool_store_description: str = Field(DEFAULT_STORE_DESCRIPTION, validation_alias=_env("TOOL_STORE_DESCRIPTION"))
    tool_find_description: str = Field(DEFAULT_FIND_DESCRIPTION, validation_alias=_env("TOOL_FIND_DESCRIPTION"))
    search_limit: int = Field(10, validation_alias=_env("QDRANT_SEARCH_LIMIT"), ge=1, le=100)
    read_only: bool = Field(False, validation_alias=_env("QDRANT_READ_ONLY"))
    allow_arbitrary_filter: bool = Field(False, validation_alias=_env("QDRANT_ALLOW_ARBITRARY_FILTER"))
    filterable_fields: list[FilterableField] | None = Field(None, validation_alias=_env("FILTERABLE_FIELDS"))
    # Cosine similarity from which if_similar (skip / replace) takes two texts for the same memory.
    similarity_threshold: float = Field(
        SIMILARITY_THRESHOLD, validation_alias=_env("QDRANT_SIMILARITY_THRESHOLD"), gt=0, le=1
    )
    # Seconds between background deletions of expired memories (they are hidden from reads at once).
    purge_interval: float = Field(60, validation_alias=_env("QDRANT_PURGE_INTERVAL"), ge=1, le=86_400)

    # Transport; FASTMCP_* are what the official server's FastMCP reads, kept as aliases.
    transport: Transport = Field("stdio", validation_alias=_env("MCP_TRANSPORT"))
    host: str = Field("127.0.0.1", validation_alias=_env("MCP_HOST", "FASTMCP_SERVER_HOST", "FASTMCP_HOST"))
    port: int = Field(8000, validation_alias=_env("MCP_PORT", "FASTMCP_SERVER_PORT", "FASTMCP_PORT"), ge=1, le=65535)
    path: str = Field("/mcp", validation_alias=_env("MCP_PATH"), pattern=r"^/[A-Za-z0-9._~/-]*$")
    allowed_hosts: Annotated[list[str] | None, NoDecode] = Field(None, validation_alias=_env("MCP_ALLOWED_HOSTS"))
    allowed_origins: Annotated[list[str] | None, NoDecode] = Field(None, validation_alias=_env("MCP_ALLOWED_ORIGINS"))
    auth_token: SecretStr | None = Field(None, validation_alias=_env("MCP_AUTH_TOKEN"))
    auth_token_file: Path | None = Field(None, validation_alias=_env("MCP_AUTH_TOKEN_FILE"))
    # Serving without a token on an address other hosts can reach must be asked for by name.
    allow_unauthenticated: bool = Field(False, validation_alias=_env("MCP_ALLOW_UNAUTHENTICATED"))
    # 2025-11-25 sessions held in memory: the least recently used idle one makes room at the cap (idle: no call
    # in flight; an event stream held open does not count).
    max_sessions: int = Field(256, validation_alias=_env("MCP_MAX_SESSIONS"), ge=1, le=100_000)
    session_idle_timeout: float = Field(600, validation_alias=_env("MCP_SESSION_IDLE_TIMEOUT"), gt=0, le=86_400)
    # Open HTTP connections (and requests) at once; more get 503 at once.
    max_connections: int = Field(200, validation_alias=_env("MCP_MAX_CONNECTIONS"), ge=4, le=100_000)
    # Event streams one client address holds open at once (each keeps a connection); more get 429.
    max_streams_per_client: int = Field(16, validation_alias=_env("MCP_MAX_STREAMS_PER_CLIENT"), ge=1, le=100_000)
    # Seconds a request's headers may take from their first byte (else the connection is closed),
    # and a POST's body once the headers are in (else 408): slow clients cannot hold connections.
    header_timeout: float = Field(10, validation_alias=_env("MCP_HEADER_TIMEOUT"), gt=0, le=3600)
    body_timeout: float = Field(30, validation_alias=_env("MCP_BODY_TIMEOUT"), gt=0, le=3600)

    # Authorization of the HTTP transports: `token` (MCP_AUTH_TOKEN, one shared secret) or `oauth`
    # (an OAuth 2.1 resource server as the MCP specification defines it; see docs/deployment.md).
    auth_mode: Literal["token", "oauth"] | None = Field(None, validation_alias=_env("MCP_AUTH_MODE"))
    # The canonical URL clients reach the MCP endpoint at (RFC 8707/9728 `resource`), e.g.
    # https://memory.example.com/mcp: the tokens' expected audience unless MCP_OAUTH_AUDIENCE says otherwise.
    public_url: str | None = Field(None, validation_alias=_env("MCP_PUBLIC_URL"))
    oauth_issuer: str | None = Field(None, validation_alias=_env("MCP_OAUTH_ISSUER"))
    oauth_audience: Annotated[list[str] | None, NoDecode] = Field(None, validation_alias=_env("MCP_OAUTH_AUDIENCE"))
    # Where the issuer's signing keys are, when not (or not reachably) in its discovery metadata.
    oauth_jwks_url: str | None = Field(None, validation_alias=_env("MCP_OAUTH_JWKS_URL"))
    oauth_read_scope: str = Field("memory:read", validation_alias=_env("MCP_OAUTH_READ_SCOPE"), pattern=SCOPE_SYNTAX)
    oauth_write_scope: str = Field("memory:write", validation_alias=_env("MCP_OAUTH_WRITE_SCOPE"), pattern=SCOPE_SYNTAX)
    # This server's own client at the issuer: it authenticates RFC 7662 introspection of opaque tokens.
    oauth_client_id: str | None = Field(None, validation_alias=_env("MCP_OAUTH_CLIENT_ID"), min_length=1)
    oauth_client_secret: SecretStr | None = Field(None, validation_alias=_env("MCP_OAUTH_CLIENT_SECRET"))
    oauth_client_secret_file: Path | None = Field(None, validation_alias=_env("MCP_OAUTH_CLIENT_SECRET_FILE"))
    # Tenants: the token claim (e.g. `sub`, or an organisation claim) whose value keeps each caller's
    # memories apart; a token without it is refused. OAuth mode only (store/tenancy.py).
    tenant_claim: str | None = Field(
        None, validation_alias=_env("MCP_TENANT_CLAIM"), min_length=1, max_length=256, pattern=r"^[^\s]+$"
    )
    # Set, each call's span carries its caller as user.hash, an HMAC of issuer and subject with this key.
    caller_hash_key: SecretStr | None = Field(None, validation_alias=_env("MCP_CALLER_HASH_KEY"))
    caller_hash_key_file: Path | None = Field(None, validation_alias=_env("MCP_CALLER_HASH_KEY_FILE"))

    # Logging
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", validation_alias=_env("LOG_LEVEL", "FASTMCP_LOG_LEVEL")
    )
    log_format: Literal["auto", "json", "text"] = Field("auto", validation_alias=_env("LOG_FORMAT"))

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("hybrid_weights", mode="before")
    @classmethod
    def _weights(cls, value: object) -> object:
        return _split_list(value)

    @field_validator("hybrid_weights")
    @classmethod
    def _two_weights(cls, value: list[float] | None) -> list[float] | None:
        if value is not None and (len(value) != 2 or not all(0 < weight <= 100 for weight in value)):
            raise ValueError("QDRANT_HYBRID_WEIGHTS takes two weights above 0 and at most 100: dense,bm25 (e.g. 1,1.5)")
        return value

    @field_validator("allowed_hosts", "allowed_origins", "oauth_audience", mode="before")
    @classmethod
    def _lists(cls, value: object) -> object:
        return _split_list(value)

    @field_validator("qdrant_url", "embedding_url", mode="before")
    @classmethod
    def _strip_slash(cls, value: object) -> object:
        return value.strip().rstrip("/") if isinstance(value, str) else value

    @model_validator(mode="after")
    def _resolve(self) -> Settings:
        self.qdrant_api_key = _secret_from_file(self.qdrant_api_key, self.qdrant_api_key_file, "QDRANT_API_KEY")
        self.auth_token = _secret_from_file(self.auth_token, self.auth_token_file, "MCP_AUTH_TOKEN")
        self.embedding_api_key = _secret_from_file(
            self.embedding_api_key, self.embedding_api_key_file, "EMBEDDING_API_KEY"
        )
        self._check_provider()
        if self.qdrant_url and self.qdrant_local_path:
            raise ValueError("QDRANT_URL and QDRANT_LOCAL_PATH are exclusive: set one (remote) or the other (embedded)")
        if self.qdrant_api_key and not self.qdrant_url:
            raise ValueError("QDRANT_API_KEY needs QDRANT_URL: embedded Qdrant takes no key")
        if self.auth_token is not None and len(self.auth_token.get_secret_value()) < 16:
            raise ValueError("MCP_AUTH_TOKEN must be at least 16 characters")
        if self.hybrid_fusion == "dbsf" and self.hybrid_weights is not None:
            raise ValueError("QDRANT_HYBRID_WEIGHTS applies to QDRANT_HYBRID_FUSION=rrf only: DBSF takes no weights")
        self._check_layout()
        names = [f.name for f in self.filterable_fields or []]
        if len(names) != len(set(names)):
            raise ValueError("FILTERABLE_FIELDS: field names must be unique")
        exposed = self.transport != "stdio" and not is_loopback(self.host)
        if exposed and self.effective_auth_mode is None and not self.allow_unauthenticated:
            raise ValueError(
                f"MCP_HOST={self.host} is reachable from other hosts and no MCP_AUTH_TOKEN(_FILE) is set: set a "
                "token, or MCP_ALLOW_UNAUTHENTICATED=true to let anyone who reaches the port read, write and "
                "delete memories"
            )
        return self

    def _check_provider(self) -> None:
        if self.embedding_provider == "openai" and self.embedding_quantized:
            raise ValueError(
                "EMBEDDING_QUANTIZED applies to fastembed's model in this process; with EMBEDDING_PROVIDER=openai the "
                "service decides how its model runs: unset it"
            )
        if self.embedding_provider == "fastembed":
            given = [
                name
                for name, value in (
                    ("EMBEDDING_URL", self.embedding_url),
                    ("EMBEDDING_API_KEY", self.embedding_api_key),
                    ("EMBEDDING_DIMENSIONS", self.embedding_dimensions),
                )
                if value is not None
            ]
            if given:
                raise ValueError(
                    f"{', '.join(given)} configure(s) the openai provider, but EMBEDDING_PROVIDER is fastembed: set "
                    "EMBEDDING_PROVIDER=openai to use an embedding service, or unset them"
                )
            return
        if not self.embedding_url:
            raise ValueError(
                "EMBEDDING_PROVIDER=openai needs EMBEDDING_URL, the API's base URL (POST {EMBEDDING_URL}/embeddings), "
                "e.g. https://api.openai.com/v1 or http://localhost:11434/v1 for Ollama"
            )
        scheme, _, rest = self.embedding_url.partition("://")
        if scheme not in ("http", "https") or not rest:
            raise ValueError(f"EMBEDDING_URL must be an http:// or https:// URL, not {self.embedding_url!r}")
        if "embedding_model" not in self.model_fields_set:
            raise ValueError(
                "EMBEDDING_PROVIDER=openai needs EMBEDDING_MODEL, the model name the service knows "
                "(e.g. text-embedding-3-small, nomic-embed-text)"
            )

    @model_validator(mode="after")
    def _authorization(self) -> Settings:
        self.oauth_client_secret = _secret_from_file(
            self.oauth_client_secret, self.oauth_client_secret_file, "MCP_OAUTH_CLIENT_SECRET"
        )
        self.caller_hash_key = _secret_from_file(self.caller_hash_key, self.caller_hash_key_file, "MCP_CALLER_HASH_KEY")
        if self.caller_hash_key is not None and len(self.caller_hash_key.get_secret_value()) < 16:
            raise ValueError("MCP_CALLER_HASH_KEY must be at least 16 characters")
        if self.auth_mode == "token" and self.auth_token is None:
            raise ValueError("MCP_AUTH_MODE=token needs MCP_AUTH_TOKEN(_FILE)")
        oauth = {
            "MCP_PUBLIC_URL": self.public_url,
            "MCP_OAUTH_ISSUER": self.oauth_issuer,
            "MCP_OAUTH_AUDIENCE": self.oauth_audience,
            "MCP_OAUTH_JWKS_URL": self.oauth_jwks_url,
            "MCP_OAUTH_CLIENT_ID": self.oauth_client_id,
            "MCP_OAUTH_CLIENT_SECRET": self.oauth_client_secret,
            "MCP_TENANT_CLAIM": self.tenant_claim,
        }
        if self.auth_mode != "oauth":
            # An issuer set without the mode would leave the server open (or on the token) unnoticed.
            stray = [name for name, value in oauth.items() if value is not None]
            if stray:
                raise ValueError(f"{', '.join(stray)} apply to MCP_AUTH_MODE=oauth only")
            return self
        if self.auth_token is not None:
            raise ValueError("MCP_AUTH_MODE=oauth and MCP_AUTH_TOKEN are exclusive: unset the token")
        if self.transport != "streamable-http":
            raise ValueError("MCP_AUTH_MODE=oauth needs MCP_TRANSPORT=streamable-http")
        if self.oauth_issuer is None or self.public_url is None:
            raise ValueError("MCP_AUTH_MODE=oauth needs MCP_OAUTH_ISSUER and MCP_PUBLIC_URL")
        _check_url("MCP_OAUTH_ISSUER", self.oauth_issuer, https_unless_loopback=True, query=False)
        _check_url("MCP_PUBLIC_URL", self.public_url, https_unless_loopback=True, query=False)
        if self.oauth_jwks_url is not None:
            _check_url("MCP_OAUTH_JWKS_URL", self.oauth_jwks_url, https_unless_loopback=False, query=True)
        if (self.oauth_client_id is None) != (self.oauth_client_secret is None):
            raise ValueError("MCP_OAUTH_CLIENT_ID and MCP_OAUTH_CLIENT_SECRET(_FILE) go together")
        if self.oauth_read_scope == self.oauth_write_scope:
            raise ValueError("MCP_OAUTH_READ_SCOPE and MCP_OAUTH_WRITE_SCOPE must differ")
        return self

    def _check_layout(self) -> None:
        for name, key in (("QDRANT_DOCUMENT_KEY", self.document_key), ("QDRANT_METADATA_KEY", self.metadata_key)):
            if any(mark in key for mark in ".[]"):
                raise ValueError(f"{name}={key!r}: a top-level payload key has no '.', '[' or ']'")
            if key in TIME_KEYS:
                raise ValueError(f"{name}={key!r} is one of the keys this server writes its times in")
        if self.document_key == self.metadata_key:
            raise ValueError("QDRANT_DOCUMENT_KEY and QDRANT_METADATA_KEY must differ")

    @property
    def effective_auth_mode(self) -> Literal["token", "oauth"] | None:
        """How HTTP requests are authorized: `token` whenever a token is configured, None when not at all."""
        if self.auth_mode == "oauth":
            return "oauth"
        return "token" if self.auth_token is not None else None

    @property
    def vector_name(self) -> str:
        """QDRANT_VECTOR_NAME when set ("" the unnamed vector); else the official server's layout:
        `fast-<last segment of the model name, lower-cased>`, whichever provider computes the vectors:
        the name says which model made them, so one model's collection is searched the same through
        fastembed or a service that runs that model. The int8 variant's vectors differ from the full
        model's, so they get a name of their own."""
        if self.vector_name_setting is not None:
            return self.vector_name_setting
        name = f"fast-{self.embedding_model.split('/')[-1].lower()}"
        return name + QUANTIZED_VECTOR_SUFFIX if self.embedding_quantized else name

    @property
    def rrf_weights(self) -> tuple[float, float] | None:
        """(dense, BM25) for RRF from QDRANT_HYBRID_WEIGHTS; None = equal weights (or DBSF)."""
        if not self.hybrid_weights:
            return None
        dense, bm25 = self.hybrid_weights
        return dense, bm25

    @property
    def effective_allowed_hosts(self) -> list[str]:
        if self.allowed_hosts is not None:
            return self.allowed_hosts
        # Localhost in every spelling, plus the compose service name.
        return ["127.0.0.1:*", "localhost:*", "[::1]:*", "mcp-server:*"]

    @property
    def effective_allowed_origins(self) -> list[str]:
        if self.allowed_origins is not None:
            return self.allowed_origins
        return ["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"]
