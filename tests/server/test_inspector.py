"""The MCP Inspector CLI, as a user would point it at the server."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from support import ServerProcess

ERAS = [[], ["--protocol-era", "auto"]]  # legacy (the Inspector's default) and 2026-07-28


def inspector(url: str, *args: str) -> dict:
    binary = os.environ.get("MCP_INSPECTOR")
    if not binary:
        pytest.fail(
            "MCP_INSPECTOR must point at the mcp-inspector CLI: run scripts/test (or scripts/bootstrap --tests)"
        )
    result = subprocess.run(
        [binary, "--cli", url, *args, "--format", "json"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])["result"]


@pytest.mark.parametrize("era", ERAS, ids=["legacy", "modern"])
def test_inspector_lists_tools_and_calls_store_and_find(shared_server: ServerProcess, era: list[str]) -> None:
    tools = inspector(shared_server.mcp_url, *era, "--method", "tools/list")["tools"]
    assert {"qdrant-store", "qdrant-find"} <= {tool["name"] for tool in tools}
    stored = inspector(
        shared_server.mcp_url,
        *era,
        "--method",
        "tools/call",
        "--tool-name",
        "qdrant-store",
        "--tool-arg",
        "information=The Inspector stored this note",
        "--tool-arg",
        "collection_name=insp",
    )
    assert stored["isError"] is False and stored["structuredContent"]["collection"] == "insp"
    found = inspector(
        shared_server.mcp_url,
        *era,
        "--method",
        "tools/call",
        "--tool-name",
        "qdrant-find",
        "--tool-args-json",
        json.dumps({"query": "what did the inspector store", "collection_name": "insp"}),
    )
    assert found["structuredContent"]["hits"][0]["document"] == "The Inspector stored this note"
