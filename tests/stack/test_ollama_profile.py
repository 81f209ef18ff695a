"""The `ollama` profile (compose.ollama.yaml): statically always, end to end with STACK_IMAGES=upstream.

Static: `docker compose config` resolves the profile over both layers; Ollama's image is pinned
with its release date, hardened like every service, unpublished; the one-shot pull fetches the
model the server asks for, and the server waits for it and points at Ollama's OpenAI-compatible
API. End to end (CI's upstream job: it pulls Ollama's image and the model from their registries,
which the development machines cannot reach): the lean layer plus the profile comes up healthy,
and a store and a find go through Ollama's embeddings.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from stack_support import RESULTS_DIR, RUN_ID, run

from support import REPO, free_port

OVERLAY = "compose.ollama.yaml"
UPSTREAM = os.environ.get("STACK_IMAGES") == "upstream"
UP_TIMEOUT_S = 600  # the model's pull (46 MB) included


def config(env_file: Path, secrets: Path, *files: str) -> dict[str, Any]:
    args = [arg for name in files for arg in ("-f", name)]
    proc = run(
        ["docker", "compose", "--env-file", str(env_file), *args, "--profile", "ollama", "config", "--format", "json"],
        env={"SECRETS_DIR": str(secrets)},
    )
    return dict(json.loads(proc.stdout)["services"])


@pytest.fixture(scope="module")
def env_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("env") / ".env"
    target.write_text((REPO / ".env.example").read_text())
    return target


@pytest.mark.parametrize("layer", ["compose.yaml", "compose.core.yaml"], ids=["full", "lean"])
def test_the_profile_points_the_server_at_ollama(env_file: Path, secrets_dir: Path, layer: str) -> None:
    services = config(env_file, secrets_dir, layer, OVERLAY)
    ollama, pull, server = services["ollama"], services["ollama-pull"], services["mcp-server"]
    model = pull["command"][-1]
    assert pull["command"] == ["pull", model] and model == "all-minilm"
    assert server["environment"]["EMBEDDING_PROVIDER"] == "openai"
    assert server["environment"]["EMBEDDING_URL"] == "http://ollama:11434/v1"
    assert server["environment"]["EMBEDDING_MODEL"] == model
    assert server["depends_on"]["ollama-pull"]["condition"] == "service_completed_successfully"
    assert pull["depends_on"]["ollama"]["condition"] == "service_healthy"
    assert pull["environment"]["OLLAMA_HOST"] == "http://ollama:11434"
    assert ollama["image"] == pull["image"] and not ollama.get("ports")
    for service in (ollama, pull):
        assert service["profiles"] == ["ollama"]
        assert service["read_only"] and service["cap_drop"] == ["ALL"]
        assert service["security_opt"] == ["no-new-privileges:true"]
        assert service["deploy"]["resources"]["limits"]["memory"] and service["logging"]["driver"] == "json-file"


def test_ollamas_image_is_pinned_with_its_release_date() -> None:
    lines = [line for line in (REPO / OVERLAY).read_text().splitlines() if "image:" in line]
    assert lines and all(
        re.search(r"image: ollama/ollama:\d+\.\d+\.\d+ # Ollama v\d+\.\d+\.\d+, released \d{4}-\d\d-\d\d$", line)
        for line in lines
    ), lines


def test_the_profiles_variables_are_documented_in_env_example() -> None:
    used = set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*)", (REPO / OVERLAY).read_text()))
    documented = set(re.findall(r"^(?:# )?([A-Z_][A-Z0-9_]*)=", (REPO / ".env.example").read_text(), re.M))
    assert not used - documented, f".env.example lacks: {sorted(used - documented)}"


# --- end to end, with the upstream images ---------------------------------------------------------


@pytest.fixture(scope="module")
def ollama_stack(
    engine: None, server_image: str, secrets_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, str]]:
    """compose.core.yaml + the profile, up and healthy: (MCP URL, bearer token)."""
    name = f"ollama-{RUN_ID}".replace(".", "-")
    env_file = tmp_path_factory.mktemp("ollama") / "empty.env"
    env_file.write_text("")
    port = free_port()
    env = {
        "MCP_IMAGE": server_image,
        "SECRETS_DIR": str(secrets_dir),
        "BIND_ADDRESS": "127.0.0.1",
        "MCP_PUBLISH_PORT": str(port),
        "QDRANT_HTTP_PUBLISH_PORT": str(free_port()),
        "QDRANT_GRPC_PUBLISH_PORT": str(free_port()),
        "BUILD_CA_FILE": "/dev/null",
    }
    compose = ["docker", "compose", "--env-file", str(env_file), "-f", "compose.core.yaml", "-f", OVERLAY]
    compose += ["--profile", "ollama", "-p", name]
    try:
        up = run(
            [*compose, "up", "-d", "--wait", "--wait-timeout", str(UP_TIMEOUT_S), "--no-build"],
            env=env, timeout=UP_TIMEOUT_S + 120, check=False,
        )  # fmt: skip
        if up.returncode != 0:
            logs = run([*compose, "logs", "--no-color", "--tail", "60"], env=env, check=False, timeout=120)
            pytest.fail(f"`up --wait` with the ollama profile failed:\n{up.stderr[-3000:]}\n{logs.stdout[-12000:]}")
        yield f"http://127.0.0.1:{port}", (secrets_dir / "mcp_auth_token").read_text().strip()
    finally:
        logs = run([*compose, "logs", "--no-color", "--timestamps"], env=env, check=False, timeout=120)
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        (RESULTS_DIR / f"{name}.log").write_text(logs.stdout + logs.stderr)
        run([*compose, "down", "-v", "--remove-orphans", "--timeout", "20"], env=env, check=False, timeout=240)


async def _store_and_find(url: str, token: str, text: str) -> tuple[Any, Any, Any]:
    import httpx2
    from mcp.client import Client
    from mcp.client.streamable_http import streamable_http_client

    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=120) as http,
        Client(streamable_http_client(f"{url}/mcp", http_client=http)) as client,
    ):
        stored = await client.call_tool("qdrant-store", {"information": text})
        found = await client.call_tool("qdrant-find", {"query": "who counts the ships?"})
        info = await client.call_tool("qdrant-collection-info", {})
    return stored, found, info


@pytest.mark.skipif(not UPSTREAM, reason="pulls Ollama's image and model: runs with STACK_IMAGES=upstream")
@pytest.mark.timeout(1800)
def test_store_and_find_with_ollamas_embeddings(ollama_stack: tuple[str, str]) -> None:
    url, token = ollama_stack
    # Ready as soon as Qdrant is; the embedding service's condition clears once Ollama has loaded the model.
    deadline = time.monotonic() + 120
    while True:
        ready = httpx.get(f"{url}/readyz", timeout=10).json()
        if "conditions" not in ready or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert ready["embeddings"] == "OpenAI-compatible service at http://ollama:11434/v1", ready
    assert ready["model"] == "all-minilm" and "conditions" not in ready, ready
    text = f"The lighthouse keeper writes down every ship that passes (ollama run {RUN_ID}, {time.time()})."
    stored, found, info = asyncio.run(_store_and_find(url, token, text))
    assert not stored.is_error and not found.is_error, (stored, found)
    assert found.structured_content["hits"][0]["document"] == text
    assert stored.structured_content["collection"] == "memories-ollama"
    expected = info.structured_content["expected_vector"]
    assert (expected["name"], expected["size"]) == ("fast-all-minilm", 384)
