"""`scripts/up --local` (and the no-Docker fallback) after a Docker run: the `.env` that
scripts/up wrote for Compose names container paths (/run/secrets/...), and none of it may leak
into the local server, which must start on embedded Qdrant and serve.

The checkout is the repository's own scripts, server and venv seen through symlinks from a
folder that holds a Compose-style `.env`, so the repository itself is never modified."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import anyio
import httpx
import pytest
from mcp.client import Client

from support import REPO, SHARED, free_port

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(300)]


def compose_style_checkout(target: Path) -> Path:
    checkout = target / "checkout"
    checkout.mkdir()
    for name in ("scripts", "server", ".venv"):
        (checkout / name).symlink_to(REPO / name)
    (target / "shared").symlink_to(SHARED)  # scripts/bootstrap builds the model from ../shared
    dotenv = (REPO / ".env.example").read_text()
    # What scripts/up adds before a Docker run, and the container paths compose hands the server.
    dotenv += "SECRETS_DIR=./secrets\nSECRETS_GID=0\nMCP_AUTH_TOKEN_FILE=/run/secrets/mcp_auth_token\n"
    dotenv += "QDRANT_URL=http://qdrant:6333\nQDRANT_API_KEY_FILE=/run/secrets/qdrant_api_key\n"
    (checkout / ".env").write_text(dotenv)
    return checkout


async def test_local_run_after_a_docker_run_ignores_the_compose_env(tmp_path: Path) -> None:
    checkout = compose_style_checkout(tmp_path)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QDRANT_", "MCP_", "COLLECTION_"))}
    env["XDG_DATA_HOME"] = str(tmp_path / "data")  # the embedded store's default home
    log = tmp_path / "up.log"
    with log.open("w") as out:
        up = subprocess.Popen(
            [str(checkout / "scripts" / "up"), "--local", "--port", str(port)],
            cwd=checkout,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        async with httpx.AsyncClient() as http:
            for _ in range(1200):
                assert up.poll() is None, log.read_text()
                try:
                    if (await http.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await anyio.sleep(0.1)
            else:
                raise AssertionError(f"not ready in 120 s:\n{log.read_text()}")
        async with Client(f"http://127.0.0.1:{port}/mcp") as client:
            stored = await client.call_tool("qdrant-store", {"information": "local run", "collection_name": "notes"})
            found = await client.call_tool("qdrant-find", {"query": "local run", "collection_name": "notes"})
        assert not stored.is_error and not found.is_error
    finally:
        os.killpg(up.pid, signal.SIGTERM)
        code = up.wait(timeout=30)
    output = log.read_text()
    assert code == 0, output
    assert "[1/2]" in output and "[2/2]" in output  # the steps, with what they do
    assert "embedded Qdrant Edge at " + str(tmp_path / "data") in output
    assert "/run/secrets" not in output and "qdrant:6333" not in output
