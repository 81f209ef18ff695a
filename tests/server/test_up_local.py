"""`scripts/up --local` (and the no-Docker fallback) after a Docker run: the `.env` that
scripts/up wrote for Compose names container paths (/run/secrets/...), and none of it may leak
into the local server, which must start on embedded Qdrant and serve, with the stack's default
collection (compose.core.yaml), so that the README's step 2 works as written without Docker:
its "run: local" block is run here, the Inspector CLI for `npx -y …inspector@VERSION`.

The checkout is the repository's own scripts, server and venv seen through symlinks from a
folder that holds a Compose-style `.env`, so the repository itself is never modified."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path

import anyio
import httpx
import pytest
from mcp.client import Client

from support import REPO, SHARED, compose_layers, free_port

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


def stack_default_collection() -> str:
    """The default in compose.core.yaml's `COLLECTION_NAME: ${COLLECTION_NAME:-memories}`."""
    value = compose_layers()["services"]["mcp-server"]["environment"]["COLLECTION_NAME"]
    match = re.fullmatch(r"\$\{COLLECTION_NAME:-([^}]+)\}", value)
    assert match, value
    return match[1]


def readme_local_calls(port: int) -> list[str]:
    """The README's no-Docker calls, with the Inspector CLI bootstrap installed and the test's port."""
    readme = (REPO / "README.md").read_text()
    block = re.search(r"<!-- run: local -->\n```bash\n(.*?)```", readme, re.S)
    assert block, "README.md has no `<!-- run: local -->` bash block"
    inspector = os.environ.get("MCP_INSPECTOR")
    assert inspector, "MCP_INSPECTOR must point at the mcp-inspector CLI (scripts/bootstrap --tests)"
    commands = re.sub(r"\\\n\s*", " ", block[1]).strip().splitlines()
    assert all(c.startswith("npx -y @modelcontextprotocol/inspector@") for c in commands), commands
    return [
        re.sub(r"^npx -y @modelcontextprotocol/inspector@\S+", inspector, c).replace(":8000/", f":{port}/")
        for c in commands
    ]


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
        for command in readme_local_calls(port):  # as a user types them in a second terminal
            call = await anyio.run_process(["bash", "-c", command], check=False)
            assert call.returncode == 0, f"{command}\n{call.stdout.decode()}{call.stderr.decode()}"
        found = call.stdout.decode()
        assert "The standup moved to 9:30 on Tuesdays" in found and '"collection_exists": true' in found, found
        async with Client(f"http://127.0.0.1:{port}/mcp") as client:
            hits = (await client.call_tool("qdrant-find", {"query": "standup"})).structured_content
        assert hits and hits["collection"] == stack_default_collection(), hits
    finally:
        os.killpg(up.pid, signal.SIGTERM)
        code = up.wait(timeout=30)
    output = log.read_text()
    assert code == 0, output
    assert "[1/2]" in output and "[2/2]" in output  # the steps, with what they do
    assert f'collection "{stack_default_collection()}"' in output
    assert "embedded Qdrant Edge at " + str(tmp_path / "data") in output
    assert "/run/secrets" not in output and "qdrant:6333" not in output
