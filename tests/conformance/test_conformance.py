"""The official MCP conformance suite's server scenarios against our server, in two configurations.

- `local`: what `qdrant-mcp-memory --transport streamable-http` does by default: bound to
  127.0.0.1, the default Host/Origin allow-lists, no token.
- `compose`: what the Compose stack and the image run: bound to 0.0.0.0, the same default
  allow-lists, and a bearer token required. The suite (0.1.16) cannot send request headers, so
  `bearer_preload.cjs` adds the Authorization header to its requests; the last test shows that
  without it the suite is refused, so the token really is checked while the scenarios pass.

Each scenario speaks protocol 2025-11-25 (the suite's TypeScript SDK client). The scenarios
listed are the server scenarios that apply to a server without the suite's test fixtures
(`test_*` tools, prompts and resources of the SDKs' "everything" servers).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conformance_support import ConformanceSuite

from support import ServerProcess, spawn_server, wait_for

pytestmark = pytest.mark.conformance

# What each checks, as 0.1.16 does it (TypeScript SDK client, protocol 2025-11-25):
SCENARIOS = [
    "server-initialize",  # the initialize/initialized handshake completes
    "ping",  # ping answers {}
    "tools-list",  # every tool has a name, a description and an inputSchema
    # Calls `test_error_handling`, which we lack: passes because the SDK answers an unknown tool
    # with an isError result ("Unknown tool: ..."); our own tools' errors are not exercised.
    "tools-call-error",
    # Three concurrent POSTs (tools/list) in one session all 200; SSE ones must yield an event.
    # Ours answer JSON (json_response=True), which the scenario accepts and reports as INFO.
    "server-sse-multiple-streams",
    "resources-list",  # every direct resource has a uri and a name
    "prompts-list",  # every prompt has a name and a description (we have none: an empty list)
    "dns-rebinding-protection",  # Host/Origin evil.example.com gets a 4xx, 127.0.0.1:PORT a 2xx
]
TOKEN = "conformance-token-0123456789abcdef"
# None removes a variable a developer's shell may have set, so each configuration is exact.
UNSET: dict[str, str | None] = {
    "MCP_HOST": None,
    "MCP_AUTH_TOKEN": None,
    "MCP_AUTH_TOKEN_FILE": None,
    "MCP_ALLOWED_HOSTS": None,
    "MCP_ALLOWED_ORIGINS": None,
    "MCP_PATH": None,
}


@dataclass(frozen=True)
class Config:
    env: dict[str, str | None]
    token: str | None = None


CONFIGS = {
    "local": Config(env=UNSET),
    # 0.0.0.0 as in the image; the suite still connects over 127.0.0.1.
    "compose": Config(env={**UNSET, "MCP_HOST": "0.0.0.0", "MCP_AUTH_TOKEN": TOKEN}, token=TOKEN),
}


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, ServerProcess]]:
    """One server per configuration for the whole module, started side by side (each loads the model)."""
    started: dict[str, ServerProcess] = {}
    try:
        for name, config in CONFIGS.items():
            workdir = tmp_path_factory.mktemp(f"server-{name}")
            started[name] = spawn_server(workdir, config.env, wait=None)
        for server in started.values():
            wait_for(server, "/readyz")
        yield started
    finally:
        for server in started.values():
            server.terminate()


def _with_log(report: str, server: ServerProcess) -> str:
    log = server.log().strip().splitlines()[-30:]
    return f"{report}\n--- the server's log (last {len(log)} lines):\n" + "\n".join(log)


@pytest.mark.parametrize("scenario", SCENARIOS)
@pytest.mark.parametrize("config", list(CONFIGS))
def test_scenario(
    conformance: ConformanceSuite,
    servers: dict[str, ServerProcess],
    config: str,
    scenario: str,
    tmp_path: Path,
) -> None:
    server = servers[config]
    run = conformance.run(server.mcp_url, scenario, tmp_path, bearer=CONFIGS[config].token)
    assert run.passed, _with_log(run.report(), server)


def test_compose_config_refuses_the_suite_without_its_token(
    conformance: ConformanceSuite, servers: dict[str, ServerProcess], tmp_path: Path
) -> None:
    server = servers["compose"]
    run = conformance.run(server.mcp_url, "server-initialize", tmp_path)
    assert run.returncode == 1 and run.statuses("FAILURE"), _with_log(run.report(), server)
    assert "invalid_token" in run.checks[0].get("errorMessage", ""), run.report()
