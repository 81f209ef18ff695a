"""scripts/up as a newcomer runs it, in a fresh copy of the repository: set-up, progress, the
summary with the ports really published (from .env, not the defaults), then status and down.

No registry is reachable here, so the run is the lean layer with tests/stack/compose.test.yaml
(the server on embedded Qdrant) through Compose's own COMPOSE_FILE, which scripts/up honours;
the image is built by scripts/up itself on the local base image."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import threading
from pathlib import Path

from stack_support import HERE, RUN_ID, inspector, record, run

from support import REPO, free_port

UP_TIMEOUT_S = 900


def _checkout(target: Path) -> Path:
    """The repository's files as a clone has them (tracked and new, nothing ignored)."""
    listed = run(["git", "ls-files", "-co", "--exclude-standard", "-z"]).stdout.split("\0")
    for name in filter(None, listed):
        source = REPO / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            (target / name).write_bytes(source.read_bytes())
            (target / name).chmod(source.stat().st_mode)
    return target


def test_first_run_prints_the_real_urls_and_manages_the_stack(
    base_image: str, model_cache: Path, inspector_cli: list[str], tmp_path: Path
) -> None:
    checkout = _checkout(tmp_path / "checkout")
    port = free_port()
    # The README's "port already in use" fix: another port in .env. The summary must say so.
    (checkout / ".env").write_text(f"MCP_PUBLISH_PORT={port}\n")
    tag = f"qdrant-mcp-stack/mcp-server:up-{RUN_ID}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SECRETS_", "COMPOSE_"))}
    env |= {
        "COMPOSE_FILE": f"compose.core.yaml:{HERE / 'compose.test.yaml'}",
        "COMPOSE_PROJECT_NAME": f"stackup-{RUN_ID}".replace(".", "-"),
        "MCP_IMAGE": tag,
        "PYTHON_IMAGE": base_image,
        "FASTEMBED_CACHE_PATH": str(model_cache),
    }

    def up(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(checkout / "scripts" / "up"), *args],
            cwd=checkout,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    try:
        proc = up("mcp-server", timeout=UP_TIMEOUT_S)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
        steps = re.findall(r"^\[(\d)/4\] (.+) \(at (\d+) s\)$", proc.stderr, re.M)
        assert [s[0] for s in steps] == ["1", "2", "3", "4"], proc.stderr[-3000:]
        ready = re.search(r"^up: ready in (\d+) s$", proc.stderr, re.M)
        assert ready, proc.stderr[-2000:]
        record("scripts_up_s", int(ready[1]))

        url = f"http://127.0.0.1:{port}/mcp"
        assert f"MCP endpoint  {url}\n" in proc.stdout, proc.stdout
        assert "token: cat ./secrets/mcp_auth_token" in proc.stdout
        assert re.search(r"mcp-server\s+Up .*\(healthy\)", proc.stdout), proc.stdout
        assert "scripts/up status | scripts/up logs [SERVICE] | scripts/up down" in proc.stdout

        # The set-up it did: .env completed, private secret files.
        dotenv = (checkout / ".env").read_text()
        assert f"MCP_PUBLISH_PORT={port}\n" in dotenv and "SECRETS_DIR=./secrets\n" in dotenv
        assert f"SECRETS_GID={os.getgid()}\n" in dotenv
        secrets = checkout / "secrets"
        assert stat.S_IMODE(secrets.stat().st_mode) == 0o700
        assert stat.S_IMODE((secrets / "mcp_auth_token").stat().st_mode) == 0o640
        assert (checkout / "model-cache" / "models--Qdrant--all-MiniLM-L6-v2-onnx").is_dir()  # reused, not fetched

        # The printed endpoint and token command work, and the token is required.
        token = (secrets / "mcp_auth_token").read_text().strip()
        code, body = inspector(inspector_cli, url, "--method", "tools/list", token=token)
        assert code == 0 and "qdrant-store" in str(body), body
        code, body = inspector(inspector_cli, url, "--method", "tools/list")
        assert code != 0, body

        status = up("status")
        assert status.returncode == 0 and f"MCP endpoint  {url}\n" in status.stdout, status.stdout + status.stderr
        # `logs` follows: the server's start-up lines arrive, and it keeps following until stopped.
        with subprocess.Popen(
            [str(checkout / "scripts" / "up"), "logs", "mcp-server"],
            cwd=checkout,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        ) as follower:
            assert follower.stdout is not None
            stop = threading.Timer(30, follower.terminate)  # still following after 30 s: the lines are not there
            stop.start()
            seen = []
            for line in follower.stdout:
                seen.append(line)
                if '"message": "ready"' in line:
                    break
            stop.cancel()
            follower.terminate()
        assert any('"message": "ready"' in line for line in seen), "".join(seen)
    finally:
        down = up("down", "-v", timeout=240)
        run(["docker", "image", "rm", "-f", tag], check=False)
    assert down.returncode == 0, down.stderr
    left = run(["docker", "ps", "-aq", "--filter", f"label=com.docker.compose.project={env['COMPOSE_PROJECT_NAME']}"])
    assert not left.stdout.strip(), "scripts/up down left containers behind"
