"""Helpers shared by the stack suite's conftest and tests (kept out of conftest.py so that
tests can import them: the repository has a root tests/conftest.py too)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

from host_user import HostUser
from support import REPO

HERE = Path(__file__).resolve().parent
CACHE_DIR = Path(os.environ.get("STACK_CACHE_DIR", "/var/cache/qdrant-mcp-stack"))
RESULTS_DIR = Path(os.environ.get("STACK_RESULTS_DIR", REPO / ".cache" / "stack-results"))
RUN_ID = f"{os.getpid()}-{uuid.uuid4().hex[:6]}"

METRICS: dict[str, object] = {}
# Written into the build's CA secret; must appear nowhere in the built image. A pipeline that
# builds the image itself (STACK_SERVER_IMAGE) says which marker it planted.
PLANTED_BUILD_SECRET = os.environ.get("STACK_PLANTED_BUILD_SECRET") or f"planted-build-secret-{uuid.uuid4().hex}"


# --- helpers ----------------------------------------------------------------------------------


def run(
    cmd: list[str],
    *,
    timeout: float = 120,
    check: bool = True,
    env: dict[str, str] | None = None,
    cwd: Path = REPO,
    input: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a command; on failure the assertion message carries its output."""
    proc = subprocess.run(
        cmd,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        input=input,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"command failed ({proc.returncode}): {' '.join(cmd)}\n"
            f"--- stdout ---\n{proc.stdout[-4000:]}\n--- stderr ---\n{proc.stderr[-4000:]}"
        )
    return proc


def record(key: str, value: object) -> None:
    METRICS[key] = value
    print(f"[stack] {key} = {value}", file=sys.stderr)


def inspector(cli: list[str], url: str, *args: str, token: str | None = None, timeout: float = 60):
    """Run the Inspector CLI against `url`; returns (exit code, parsed JSON or raw text)."""
    cmd = [*cli, "--cli", url, "--format", "json", *args]
    if token:
        cmd += ["--header", f"Authorization: Bearer {token}"]
    proc = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        env={**os.environ, "MCP_AUTO_OPEN_ENABLED": "false", "NO_COLOR": "1"},
    )
    try:
        body = json.loads(proc.stdout)
    except ValueError:
        body = proc.stdout + proc.stderr
    return proc.returncode, body


def call_tool(cli: list[str], url: str, tool: str, *arguments: str, token: str | None = None):
    """tools/call through the Inspector CLI, each argument as `key=value`."""
    flags = [flag for argument in arguments for flag in ("--tool-arg", argument)]
    return inspector(cli, url, "--method", "tools/call", "--tool-name", tool, *flags, token=token)


def tool_result(cli: list[str], url: str, tool: str, *arguments: str, token: str | None = None) -> dict:
    """A tool call that must succeed: its structuredContent (the tool's typed result)."""
    code, body = call_tool(cli, url, tool, *arguments, token=token)
    result = body.get("result", body) if isinstance(body, dict) else body  # the CLI wraps it in "result"
    assert code == 0 and isinstance(result, dict) and result.get("isError") is False, body
    return result["structuredContent"]


def found_documents(cli: list[str], url: str, query: str, token: str | None = None) -> list[str]:
    """The documents qdrant-find returns for `query`, best first (the reply's echo of the query aside)."""
    return [hit["document"] for hit in tool_result(cli, url, "qdrant-find", f"query={query}", token=token)["hits"]]


def points_count(cli: list[str], url: str, token: str | None = None) -> int:
    """Points in the server's default collection (qdrant-collection-info)."""
    return int(tool_result(cli, url, "qdrant-collection-info", token=token)["points_count"])


def compose_plugin() -> Path:
    """The Compose plugin this machine's docker CLI uses (root's)."""
    plugins = json.loads(run(["docker", "info", "--format", "{{json .ClientInfo.Plugins}}"]).stdout)
    return Path(next(plugin["Path"] for plugin in plugins if plugin["Name"] == "compose")).resolve()


def repository_files() -> list[str]:
    """The repository's files as a clone has them (tracked and new, nothing ignored)."""
    listed = run(["git", "ls-files", "-co", "--exclude-standard", "-z"]).stdout.split("\0")
    return [name for name in listed if name and (REPO / name).is_file()]


@dataclass(frozen=True)
class StackUser:
    """The account the stack runs as (conftest's `stack_user`), and its copy of the repository."""

    user: HostUser
    checkout: Path
