"""Settings: official names, empty-as-unset, secrets from files, one-line errors with exit 2."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from qdrant_mcp_memory.app import select_embeddings, select_storage
from qdrant_mcp_memory.backends import DEFAULT_FUSION
from qdrant_mcp_memory.backends.edge import EdgeBackend
from qdrant_mcp_memory.backends.remote import RemoteBackend
from qdrant_mcp_memory.cli import load_settings, parse_args
from qdrant_mcp_memory.embeddings.openai import OpenAIEmbeddings, ServiceConfig
from qdrant_mcp_memory.settings import Settings, default_local_path

OFFICIAL_NAMES = [
    "QDRANT_URL",
    "QDRANT_API_KEY",
    "COLLECTION_NAME",
    "QDRANT_LOCAL_PATH",
    "EMBEDDING_PROVIDER",
    "EMBEDDING_MODEL",
    "TOOL_STORE_DESCRIPTION",
    "TOOL_FIND_DESCRIPTION",
    "QDRANT_SEARCH_LIMIT",
    "QDRANT_READ_ONLY",
    "QDRANT_ALLOW_ARBITRARY_FILTER",
    "FILTERABLE_FIELDS",
]
OPENAI = {"EMBEDDING_PROVIDER": "openai", "EMBEDDING_URL": "http://ollama:11434/v1", "EMBEDDING_MODEL": "all-minilm"}

# A consistent OAuth configuration; the tests below change one thing at a time.
OAUTH = {
    "MCP_TRANSPORT": "streamable-http",
    "MCP_AUTH_MODE": "oauth",
    "MCP_OAUTH_ISSUER": "https://id.example.com/realms/mcp",
    "MCP_PUBLIC_URL": "https://memory.example.com/mcp",
}


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """A clean environment and a cwd without .env."""
    monkeypatch.chdir(tmp_path)
    for name in [
        *OFFICIAL_NAMES,
        "MCP_TRANSPORT",
        "MCP_HOST",
        "MCP_PORT",
        "MCP_AUTH_TOKEN",
        "FASTMCP_SERVER_HOST",
        "FASTMCP_HOST",
        "FASTMCP_SERVER_PORT",
        "FASTMCP_PORT",
        "LOG_LEVEL",
        "MCP_ALLOWED_HOSTS",
        "QDRANT_EMBEDDED_FSYNC",
        "QDRANT_EMBEDDED_FSYNC_INTERVAL_MS",
        "QDRANT_VECTOR_NAME",
        "QDRANT_DOCUMENT_KEY",
        "QDRANT_METADATA_KEY",
        *(name for name in os.environ if name.startswith("EMBEDDING_")),
        *OAUTH,
    ]:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_defaults_match_the_official_server(env: pytest.MonkeyPatch) -> None:
    settings = Settings()
    assert settings.embedding_model == "sentence-transformers/all-MiniLM-L6-v2"
    assert settings.vector_name == "fast-all-minilm-l6-v2"
    assert settings.search_limit == 10
    assert settings.transport == "stdio" and settings.host == "127.0.0.1" and settings.port == 8000
    storage = select_storage(settings)
    assert isinstance(storage.backend, EdgeBackend) and storage.backend.root == default_local_path()
    assert storage.backend.config.fsync == "always"  # a write is acknowledged once it is durable


def test_interval_durability_is_asked_for_by_name(env: pytest.MonkeyPatch) -> None:
    env.setenv("QDRANT_EMBEDDED_FSYNC", "interval")
    env.setenv("QDRANT_EMBEDDED_FSYNC_INTERVAL_MS", "250")
    backend = select_storage(Settings()).backend
    assert isinstance(backend, EdgeBackend)
    assert (backend.config.fsync, backend.config.fsync_interval_s) == ("interval", 0.25)


def test_hybrid_fusion_is_dbsf_unless_rrf_and_its_weights_are_set(env: pytest.MonkeyPatch) -> None:
    assert (Settings().hybrid_fusion, Settings().rrf_weights) == (DEFAULT_FUSION.method, None) == ("dbsf", None)
    env.setenv("QDRANT_HYBRID_FUSION", "rrf")
    assert Settings().rrf_weights is None
    env.setenv("QDRANT_HYBRID_WEIGHTS", "1, 2.5")
    assert Settings().rrf_weights == (1.0, 2.5)


def test_downloaded_models_survive_a_reboot(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """fastembed's own default cache is in the temp folder: unset, ours is the user's cache."""
    env.delenv("FASTEMBED_CACHE_PATH", raising=False)
    env.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert Settings().embedding_cache_path == tmp_path / "cache" / "qdrant-mcp-memory" / "fastembed"
    env.setenv("FASTEMBED_CACHE_PATH", str(tmp_path / "models"))
    assert Settings().embedding_cache_path == tmp_path / "models"


def test_every_official_variable_is_read(env: pytest.MonkeyPatch) -> None:
    values = {
        "QDRANT_URL": "http://qdrant:6333/",
        "QDRANT_API_KEY": "key",
        "COLLECTION_NAME": "memories",
        "EMBEDDING_PROVIDER": "fastembed",
        "EMBEDDING_MODEL": "BAAI/bge-small-en-v1.5",
        "TOOL_STORE_DESCRIPTION": "store it",
        "TOOL_FIND_DESCRIPTION": "find it",
        "QDRANT_SEARCH_LIMIT": "7",
        "QDRANT_READ_ONLY": "true",
        "QDRANT_ALLOW_ARBITRARY_FILTER": "1",
        "FILTERABLE_FIELDS": '[{"name": "topic", "description": "t", "field_type": "keyword", "condition": "=="}]',
    }
    for name, value in values.items():
        env.setenv(name, value)
    settings = Settings()
    assert settings.qdrant_url == "http://qdrant:6333"  # trailing slash stripped, as the official server does
    assert settings.qdrant_api_key is not None and settings.qdrant_api_key.get_secret_value() == "key"
    assert settings.collection_name == "memories"
    assert settings.vector_name == "fast-bge-small-en-v1.5"
    assert (settings.tool_store_description, settings.tool_find_description) == ("store it", "find it")
    assert settings.search_limit == 7 and settings.read_only and settings.allow_arbitrary_filter
    assert settings.filterable_fields is not None and settings.filterable_fields[0].name == "topic"
    assert isinstance(select_storage(settings).backend, RemoteBackend)


def test_empty_strings_count_as_unset(env: pytest.MonkeyPatch) -> None:
    # The official image sets QDRANT_URL="" QDRANT_API_KEY=""; that must still mean embedded mode.
    env.setenv("QDRANT_URL", "")
    env.setenv("QDRANT_API_KEY", "")
    env.setenv("QDRANT_LOCAL_PATH", "/data/qdrant")
    settings = Settings()
    assert settings.qdrant_url is None and settings.qdrant_api_key is None
    backend = select_storage(settings).backend
    assert isinstance(backend, EdgeBackend) and backend.root == Path("/data/qdrant")


def test_fastmcp_names_are_aliases_for_host_and_port(env: pytest.MonkeyPatch) -> None:
    env.setenv("FASTMCP_SERVER_HOST", "0.0.0.0")
    env.setenv("FASTMCP_PORT", "9000")
    settings = Settings()
    assert (settings.host, settings.port) == ("0.0.0.0", 9000)


def test_secrets_come_from_files(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "key").write_text("qdrant-secret\n")
    (tmp_path / "token").write_text("a-token-of-sufficient-length")
    env.setenv("QDRANT_URL", "http://qdrant:6333")
    env.setenv("QDRANT_API_KEY_FILE", str(tmp_path / "key"))
    env.setenv("MCP_AUTH_TOKEN_FILE", str(tmp_path / "token"))
    settings = Settings()
    assert settings.qdrant_api_key is not None and settings.qdrant_api_key.get_secret_value() == "qdrant-secret"
    assert settings.auth_token is not None and settings.auth_token.get_secret_value() == "a-token-of-sufficient-length"
    assert "qdrant-secret" not in repr(settings)


def test_the_openai_provider_is_configured_from_its_variables(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "key").write_text("sk-embedding-secret\n")
    for name, value in {
        **OPENAI,
        "EMBEDDING_URL": "http://ollama:11434/v1/",
        "EMBEDDING_API_KEY_FILE": str(tmp_path / "key"),
        "EMBEDDING_DIMENSIONS": "256",
        "EMBEDDING_BATCH_SIZE": "64",
        "EMBEDDING_MAX_REQUESTS": "6",
    }.items():
        env.setenv(name, value)
    settings = Settings()
    assert "sk-embedding-secret" not in repr(settings)
    # The vector is named after the model whichever provider computes it (the official server's rule).
    assert settings.vector_name == "fast-all-minilm"
    embeddings = select_embeddings(settings)
    assert isinstance(embeddings.model, OpenAIEmbeddings)
    assert embeddings.model.config == ServiceConfig(
        url="http://ollama:11434/v1", model="all-minilm", api_key="sk-embedding-secret", dimensions=256
    )
    assert embeddings.url == "http://ollama:11434/v1"
    # One request of the six is the query lane's; a run is one request of up to 64 texts.
    assert embeddings.document_workers == 5 and embeddings.bounds.texts == 64


def test_a_dotenv_in_the_working_directory_is_not_read_but_a_named_env_file_is(
    env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Compose's .env names container paths (/run/secrets/...): a server started from the same folder must not see them.
    (tmp_path / ".env").write_text("MCP_AUTH_TOKEN_FILE=/run/secrets/mcp_auth_token\nCOLLECTION_NAME=compose\n")
    assert Settings().collection_name is None
    (tmp_path / "server.env").write_text("COLLECTION_NAME=from-file\nMCP_ALLOWED_HOSTS=a:*, b:8000\n")
    settings = load_settings(parse_args(["--env-file", str(tmp_path / "server.env")]))
    assert settings.collection_name == "from-file" and settings.allowed_hosts == ["a:*", "b:8000"]
    env.setenv("COLLECTION_NAME", "from-environment")  # the environment wins over the file
    assert load_settings(parse_args(["--env-file", str(tmp_path / "server.env")])).collection_name == "from-environment"


def test_an_empty_vector_name_or_metadata_key_means_the_unnamed_vector_or_a_flat_payload(
    env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Where other settings take empty for unset, these two mean what LangChain and LlamaIndex write.
    env.setenv("QDRANT_VECTOR_NAME", "")
    env.setenv("QDRANT_METADATA_KEY", "")
    env.setenv("QDRANT_DOCUMENT_KEY", "")  # empty: unset, as everywhere else
    settings = Settings()
    assert (settings.vector_name, settings.document_key, settings.metadata_key) == ("", "document", "")
    # From a named env file too, unless the environment sets the variable.
    env.delenv("QDRANT_VECTOR_NAME")
    env.setenv("QDRANT_METADATA_KEY", "meta")
    (tmp_path / "server.env").write_text(
        "QDRANT_VECTOR_NAME=\nQDRANT_METADATA_KEY=\nQDRANT_DOCUMENT_KEY=page_content\n"
    )
    settings = load_settings(parse_args(["--env-file", str(tmp_path / "server.env")]))
    assert (settings.vector_name, settings.document_key, settings.metadata_key) == ("", "page_content", "meta")
    env.delenv("QDRANT_METADATA_KEY")
    assert Settings().vector_name == "fast-all-minilm-l6-v2"  # unset: the official layout


@pytest.mark.parametrize(
    ("variables", "named"),
    [
        ({"QDRANT_DOCUMENT_KEY": "page.content"}, "QDRANT_DOCUMENT_KEY"),
        ({"QDRANT_METADATA_KEY": "created_at"}, "QDRANT_METADATA_KEY"),
        ({"QDRANT_DOCUMENT_KEY": "text", "QDRANT_METADATA_KEY": "text"}, "QDRANT_METADATA_KEY"),
        ({"QDRANT_SEARCH_LIMIT": "lots"}, "QDRANT_SEARCH_LIMIT"),
        ({"QDRANT_SEARCH_LIMIT": "0"}, "QDRANT_SEARCH_LIMIT"),
        ({"MCP_TRANSPORT": "websocket"}, "MCP_TRANSPORT"),
        ({"MCP_PORT": "70000"}, "MCP_PORT"),
        ({"FILTERABLE_FIELDS": "[{]"}, "FILTERABLE_FIELDS"),
        (
            {"FILTERABLE_FIELDS": '[{"name": "n", "description": "d", "field_type": "float", "condition": "any"}]'},
            "FILTERABLE_FIELDS",
        ),
        ({"QDRANT_URL": "http://q:6333", "QDRANT_LOCAL_PATH": "/data"}, "QDRANT_LOCAL_PATH"),
        ({"MCP_AUTH_TOKEN": "short"}, "MCP_AUTH_TOKEN"),
        ({"MCP_AUTH_TOKEN_FILE": "/nonexistent/token"}, "MCP_AUTH_TOKEN_FILE"),
        ({"EMBEDDING_PROVIDER": "gemini"}, "EMBEDDING_PROVIDER"),
        ({"EMBEDDING_PROVIDER": "openai"}, "EMBEDDING_URL"),
        ({"EMBEDDING_PROVIDER": "openai", "EMBEDDING_URL": "http://ollama:11434/v1"}, "EMBEDDING_MODEL"),
        ({"EMBEDDING_PROVIDER": "openai", "EMBEDDING_URL": "ollama:11434", "EMBEDDING_MODEL": "m"}, "EMBEDDING_URL"),
        ({"EMBEDDING_URL": "http://ollama:11434/v1"}, "EMBEDDING_PROVIDER=openai"),
        ({"EMBEDDING_API_KEY": "sk-key"}, "EMBEDDING_PROVIDER=openai"),
        (
            {**OPENAI, "EMBEDDING_API_KEY": "k", "EMBEDDING_API_KEY_FILE": "/nonexistent"},
            "EMBEDDING_API_KEY or EMBEDDING_API_KEY_FILE",
        ),
        ({**OPENAI, "EMBEDDING_MAX_REQUESTS": "1"}, "EMBEDDING_MAX_REQUESTS"),
        ({**OPENAI, "EMBEDDING_TIMEOUT": "0"}, "EMBEDDING_TIMEOUT"),
        ({**OPENAI, "EMBEDDING_QUANTIZED": "true"}, "EMBEDDING_QUANTIZED"),
        ({"EMBEDDING_QUANTIZED": "perhaps"}, "EMBEDDING_QUANTIZED"),
        *(
            ({"FILTERABLE_FIELDS": json.dumps([{"name": name, "description": "d", "field_type": "keyword"}])}, name)
            for name in ("my-field", "limit", "class", "query_filter", "ünïcode")
        ),
        ({"OTEL_TRACES_EXPORTER": "zipkin"}, "OTEL_TRACES_EXPORTER"),
        ({"OTEL_METRICS_EXPORTER": "otlp,jaeger"}, "OTEL_METRICS_EXPORTER"),
        ({"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json", "OTEL_TRACES_EXPORTER": "otlp"}, "OTEL_EXPORTER_OTLP_PROTOCOL"),
        ({"MCP_TRANSPORT": "streamable-http", "MCP_HOST": "0.0.0.0"}, "MCP_ALLOW_UNAUTHENTICATED"),
        ({"MCP_MAX_SESSIONS": "0"}, "MCP_MAX_SESSIONS"),
        ({"QDRANT_EMBEDDED_FSYNC": "never"}, "QDRANT_EMBEDDED_FSYNC"),
        ({"QDRANT_EMBEDDED_FSYNC_INTERVAL_MS": "0"}, "QDRANT_EMBEDDED_FSYNC_INTERVAL_MS"),
        ({"QDRANT_HYBRID_FUSION": "linear"}, "QDRANT_HYBRID_FUSION"),
        ({"QDRANT_HYBRID_WEIGHTS": "1.5"}, "QDRANT_HYBRID_WEIGHTS"),
        ({"QDRANT_HYBRID_WEIGHTS": "1,0"}, "QDRANT_HYBRID_WEIGHTS"),
        ({"QDRANT_HYBRID_FUSION": "dbsf", "QDRANT_HYBRID_WEIGHTS": "1,2"}, "QDRANT_HYBRID_WEIGHTS"),
    ],
)
def test_bad_setting_stops_with_one_line_and_exit_2(tmp_path: Path, variables: dict[str, str], named: str) -> None:
    env = {key: value for key, value in os.environ.items() if key not in OFFICIAL_NAMES and not key.startswith("OTEL_")}
    result = subprocess.run(
        [sys.executable, "-m", "qdrant_mcp_memory"],
        env={**env, **variables},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert named in lines[0] and "Traceback" not in result.stderr


def test_validation_error_names_the_variable(env: pytest.MonkeyPatch) -> None:
    env.setenv("QDRANT_READ_ONLY", "perhaps")
    with pytest.raises(ValidationError) as caught:
        Settings()
    assert caught.value.errors()[0]["loc"] == ("QDRANT_READ_ONLY",)


def test_token_mode_is_the_default_when_a_token_is_set(env: pytest.MonkeyPatch) -> None:
    assert Settings().effective_auth_mode is None
    env.setenv("MCP_AUTH_TOKEN", "a-token-of-sufficient-length")
    assert Settings().effective_auth_mode == "token"
    env.setenv("MCP_AUTH_MODE", "token")
    assert Settings().effective_auth_mode == "token"


def test_oauth_mode_reads_its_settings(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name, value in OAUTH.items():
        env.setenv(name, value)
    env.setenv("MCP_HOST", "0.0.0.0")  # reachable from other hosts: OAuth is the authentication
    env.setenv("MCP_OAUTH_AUDIENCE", "api://memory, https://memory.example.com/mcp")
    env.setenv("MCP_OAUTH_CLIENT_ID", "qdrant-mcp")
    (tmp_path / "secret").write_text("client-secret\n")
    env.setenv("MCP_OAUTH_CLIENT_SECRET_FILE", str(tmp_path / "secret"))
    settings = Settings()
    assert settings.effective_auth_mode == "oauth"
    assert settings.oauth_audience == ["api://memory", "https://memory.example.com/mcp"]
    assert (settings.oauth_read_scope, settings.oauth_write_scope) == ("memory:read", "memory:write")
    secret = settings.oauth_client_secret
    assert secret is not None and secret.get_secret_value() == "client-secret"
    assert "client-secret" not in repr(settings)
    env.setenv("MCP_OAUTH_ISSUER", "http://127.0.0.1:8080/realms/mcp")  # plain http on loopback only
    assert Settings().oauth_issuer == "http://127.0.0.1:8080/realms/mcp"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"MCP_OAUTH_ISSUER": None}, "needs MCP_OAUTH_ISSUER and MCP_PUBLIC_URL"),
        ({"MCP_PUBLIC_URL": None}, "needs MCP_OAUTH_ISSUER and MCP_PUBLIC_URL"),
        ({"MCP_OAUTH_ISSUER": "http://id.example.com"}, "must use https"),
        ({"MCP_PUBLIC_URL": "memory.example.com/mcp"}, "must be an absolute http(s) URL"),
        ({"MCP_PUBLIC_URL": "https://memory.example.com/mcp#part"}, "must not have a fragment"),
        ({"MCP_OAUTH_ISSUER": "https://id.example.com/?tenant=x"}, "must not have a query"),
        ({"MCP_OAUTH_JWKS_URL": "file:///etc/keys.json"}, "must be an absolute http(s) URL"),
        ({"MCP_TRANSPORT": "sse"}, "needs MCP_TRANSPORT=streamable-http"),
        ({"MCP_TRANSPORT": "stdio"}, "needs MCP_TRANSPORT=streamable-http"),
        ({"MCP_AUTH_TOKEN": "a-token-of-sufficient-length"}, "are exclusive"),
        ({"MCP_OAUTH_CLIENT_ID": "qdrant-mcp"}, "go together"),
        ({"MCP_OAUTH_CLIENT_SECRET": "secret"}, "go together"),
        ({"MCP_OAUTH_READ_SCOPE": "memory read"}, "MCP_OAUTH_READ_SCOPE"),
        ({"MCP_OAUTH_WRITE_SCOPE": 'memory"write'}, "MCP_OAUTH_WRITE_SCOPE"),
        ({"MCP_OAUTH_WRITE_SCOPE": "memory:read"}, "must differ"),
        ({"MCP_AUTH_MODE": "token"}, "MCP_AUTH_MODE=token needs MCP_AUTH_TOKEN"),
        ({"MCP_AUTH_MODE": "bearer"}, "MCP_AUTH_MODE"),
        ({"MCP_AUTH_MODE": None}, "apply to MCP_AUTH_MODE=oauth only"),
        ({"MCP_CALLER_HASH_KEY": "short"}, "at least 16 characters"),
        # Tenancy needs the tokens that carry the claim: token mode and stdio have no tenants.
        ({"MCP_AUTH_MODE": None, "MCP_TENANT_CLAIM": "sub"}, "MCP_TENANT_CLAIM apply to MCP_AUTH_MODE=oauth only"),
        ({"MCP_TENANT_CLAIM": "org id"}, "MCP_TENANT_CLAIM"),
    ],
)
def test_oauth_settings_that_cannot_work_are_refused(
    env: pytest.MonkeyPatch, changes: dict[str, str | None], message: str
) -> None:
    for name, value in {**OAUTH, **changes}.items():
        if value is None:
            env.delenv(name, raising=False)
        else:
            env.setenv(name, value)
    with pytest.raises(ValidationError, match=re.escape(message)):
        Settings()
