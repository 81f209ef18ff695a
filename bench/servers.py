"""How each server under test is started: command line, environment, endpoint, storage.

Both servers get the same model cache, collection name and loopback streamable HTTP, and
none of the caller's own settings (QDRANT_*, MCP_*, OTEL_*, ... are scrubbed). Storage is
embedded either way: in memory (`QDRANT_URL=:memory:`) or a folder (`QDRANT_LOCAL_PATH`),
which our server serves with Qdrant Edge or, for a qdrant-client local-mode folder, with
local mode; the official server has local mode only.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import SetupError
from .serverproc import ServerProcess, free_port, launch, ours_argv

COLLECTION = "bench"
# The official layout's dense vector for all-MiniLM-L6-v2: `fast-<model>`, 384-d, cosine.
VECTOR_NAME = "fast-all-minilm-l6-v2"
VECTOR_SIZE = 384
MODERN = "2026-07-28"
# The servers' own settings, which must not leak in from the caller's shell.
SCRUB_PREFIXES = ("QDRANT_", "FASTMCP_", "MCP_", "OTEL_", "EMBEDDING_", "TOOL_", "LOG_")
# PYTHONDONTWRITEBYTECODE too: servers write and reuse bytecode as they do for users (pip
# compiled the official venv's at install; ours would otherwise compile at every start).
SCRUB_NAMES = ("COLLECTION_NAME", "FILTERABLE_FIELDS", "PYTHONDONTWRITEBYTECODE")


@dataclass(frozen=True)
class ServerSpec:
    """A server to start: `argv(port)` and `env(port)` make its command line and environment
    (over streamable HTTP); `stdio_argv` its command line as a stdio client spawns it."""

    name: str
    python: str
    argv: Callable[[int], list[str]]
    env: Callable[[int], dict[str, str]]
    mcp_path: str
    ready_path: str | None
    stdio_argv: list[str]
    modes: tuple[str, ...] = ("legacy",)

    def shown_env(self) -> dict[str, str]:
        """The settings that matter, for the report (no port-specific values)."""
        env = self.env(0)
        keep = ("QDRANT_", "FASTMCP_", "MCP_", "OTEL_", "COLLECTION", "FASTEMBED", "HF_")
        return {key: env[key] for key in sorted(env) if key.startswith(keep)}


def base_env(model_cache: Path, storage: Mapping[str, str]) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(SCRUB_PREFIXES)}
    for name in SCRUB_NAMES:
        env.pop(name, None)
    env.update(
        {
            "COLLECTION_NAME": COLLECTION,
            "FASTEMBED_CACHE_PATH": str(model_cache),
            "HF_HUB_OFFLINE": "1",
            "PYTHONUNBUFFERED": "1",
            **storage,
        }
    )
    return env


def in_memory() -> dict[str, str]:
    return {"QDRANT_URL": ":memory:"}


def local_path(folder: Path) -> dict[str, str]:
    return {"QDRANT_LOCAL_PATH": str(folder)}


def parse_assignments(pairs: Sequence[str]) -> dict[str, str]:
    """K=V strings (from --ours-env) as a mapping."""
    parsed = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise SetupError(f"--ours-env wants K=V, got {pair!r}")
        parsed[key] = value
    return parsed


def ours(
    python: str,
    model_cache: Path,
    *,
    storage: Mapping[str, str] | None = None,
    extra_env: Mapping[str, str] | None = None,
    modes: tuple[str, ...] = ("legacy",),
    metrics_port: int | None = None,
) -> ServerSpec:
    """Our server; with `metrics_port`, its Prometheus exporter on that port (telemetry otherwise off)."""
    if not Path(python).exists():
        raise SetupError(f"{python} not found (set --ours-python or BENCH_OURS_PYTHON)")
    python = os.path.abspath(python)  # the server runs in another folder; a venv's symlink must stay unresolved

    def env(port: int) -> dict[str, str]:
        values = base_env(model_cache, storage or in_memory())
        values.update({"MCP_HOST": "127.0.0.1", "OTEL_SDK_DISABLED": "true"})
        if metrics_port is not None:
            values.update(
                {
                    "OTEL_SDK_DISABLED": "false",
                    "OTEL_METRICS_EXPORTER": "prometheus",
                    "OTEL_EXPORTER_PROMETHEUS_HOST": "127.0.0.1",
                    "OTEL_EXPORTER_PROMETHEUS_PORT": str(metrics_port),
                    "OTEL_TRACES_EXPORTER": "none",
                    "OTEL_LOGS_EXPORTER": "none",
                }
            )
        values.update(extra_env or {})
        return values

    return ServerSpec(
        name="ours",
        python=python,
        argv=lambda port: ours_argv(port, python),
        env=env,
        mcp_path="/mcp",
        ready_path="/readyz",
        stdio_argv=[python, "-m", "qdrant_mcp_memory", "--transport", "stdio"],
        modes=modes,
    )


def official(venv: Path, model_cache: Path, storage: Mapping[str, str] | None = None) -> ServerSpec:
    """mcp-server-qdrant 0.8.1 (fastmcp 2.7.0 reads FASTMCP_SERVER_HOST/PORT, not FASTMCP_HOST/PORT)."""

    def env(port: int) -> dict[str, str]:
        values = base_env(model_cache, storage or in_memory())
        values.update({"FASTMCP_SERVER_HOST": "127.0.0.1", "FASTMCP_SERVER_PORT": str(port)})
        return values

    return ServerSpec(
        name="official",
        python=str(venv / "bin" / "python"),
        argv=lambda _port: [str(venv / "bin" / "mcp-server-qdrant"), "--transport", "streamable-http"],
        env=env,
        mcp_path="/mcp/",  # /mcp answers 307 -> /mcp/
        ready_path=None,
        stdio_argv=[str(venv / "bin" / "mcp-server-qdrant")],  # stdio is its default transport
    )


def start(spec: ServerSpec, log_path: Path, label: str | None = None) -> ServerProcess:
    """Spawn `spec` on a free port, in an empty temporary working folder and a session of its own."""
    port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix=f"bench-{spec.name}-"))
    return launch(
        spec.argv(port),
        port=port,
        env=spec.env(port),
        workdir=workdir,
        log_path=log_path,
        name=label or spec.name,
        mcp_path=spec.mcp_path,
        ready_path=spec.ready_path,
        scratch=True,
    )
