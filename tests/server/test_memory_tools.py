"""The lifecycle tools as a client uses them: the SDK's client over HTTP against the server process,
with the real model; and `qdrant-mcp-memory purge-expired` run as a user runs it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp.client import Client

from support import ServerProcess

pytestmark = pytest.mark.anyio
Start = Callable[..., ServerProcess]


async def call(client: Client, tool: str, arguments: dict[str, Any]) -> Any:
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, result.content
    assert result.content and result.content[0].type == "text" and result.content[0].text
    return result.structured_content


async def refused(client: Client, tool: str, arguments: dict[str, Any]) -> str:
    result = await client.call_tool(tool, arguments)
    assert result.is_error, result.structured_content
    return "\n".join(getattr(block, "text", "") for block in result.content)


async def test_the_new_tools_are_typed_and_bounded(shared_server: ServerProcess) -> None:
    async with Client(shared_server.mcp_url) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    get, listing, update = tools["qdrant-get"], tools["qdrant-list"], tools["qdrant-update"]
    assert get.input_schema["required"] == ["ids"] and get.input_schema["properties"]["ids"]["maxItems"] == 100
    page = listing.input_schema["properties"]
    assert page["limit"]["maximum"] == 100 and page["limit"]["default"] == 20
    assert page["order"]["enum"] == ["newest", "oldest"] and page["order"]["default"] == "newest"
    assert {"cursor", "created_after", "created_before", "metadata_match", "collection_name"} <= set(page)
    assert update.input_schema["required"] == ["id"]
    assert {"information", "metadata", "metadata_patch", "expires_at"} <= set(update.input_schema["properties"])
    find = tools["qdrant-find"].input_schema["properties"]
    assert find["collection_names"]["anyOf"][0]["maxItems"] == 10
    assert find["diversity"]["anyOf"][0]["maximum"] == 1 and {"recency", "created_after", "created_before"} <= set(find)
    for name in ("qdrant-store", "qdrant-store-many"):
        store = tools[name].input_schema["properties"]
        assert store["if_similar"]["enum"] == ["store", "skip", "replace"] and store["if_similar"]["default"] == "store"
        assert {"expires_at", "ttl", "similarity"} <= set(store)
    assert get.annotations.read_only_hint and listing.annotations.read_only_hint
    assert update.annotations.read_only_hint is False and update.annotations.destructive_hint
    for tool in (get, listing, update):
        assert tool.output_schema is not None and tool.description


async def test_a_lifecycle_session(shared_server: ServerProcess) -> None:
    """The README's example session: remember with an expiry, correct, browse, find the newest, avoid repeats."""
    notes = "lifecycle-session"
    async with Client(shared_server.mcp_url) as client:
        first = await call(
            client,
            "qdrant-store",
            {"information": "The standup is at 9:30.", "metadata": {"team": "core"}, "collection_name": notes},
        )
        temporary = await call(
            client,
            "qdrant-store",
            {"information": "The office is closed today.", "ttl": "12h", "collection_name": notes},
        )
        (point,) = (await call(client, "qdrant-get", {"ids": [temporary["id"]], "collection_name": notes}))["points"]
        assert point["expires_at"] > point["created_at"]
        updated = await call(
            client,
            "qdrant-update",
            {
                "id": first["id"],
                "information": "The standup moved to 10:00.",
                "metadata_patch": {"room": "4.12"},
                "collection_name": notes,
            },
        )
        assert updated["point"]["document"] == "The standup moved to 10:00."
        assert updated["point"]["metadata"] == {"team": "core", "room": "4.12"}
        assert updated["point"]["created_at"] < updated["point"]["updated_at"]
        cleared = await call(
            client, "qdrant-update", {"id": temporary["id"], "expires_at": None, "collection_name": notes}
        )
        assert cleared["point"]["expires_at"] is None
        again = await call(
            client, "qdrant-update", {"id": temporary["id"], "expires_at": "2099-01-01", "collection_name": notes}
        )
        assert again["point"]["expires_at"] == "2099-01-01T00:00:00.000000Z"
        never = await call(
            client, "qdrant-update", {"id": temporary["id"], "expires_at": "never", "collection_name": notes}
        )
        assert never["point"]["expires_at"] is None
        skipped = await call(
            client,
            "qdrant-store",
            {
                "information": "The standup moved to 10:00!",
                "if_similar": "skip",
                "similarity": 0.95,
                "collection_name": notes,
            },
        )
        assert skipped["outcome"] == "skipped" and skipped["duplicate_of"] == first["id"] == skipped["id"]
        found = await call(
            client, "qdrant-find", {"query": "when is the standup", "recency": "7d", "collection_name": notes}
        )
        assert found["hits"][0]["id"] == first["id"] and found["hits"][0]["created_at"]
        pages, cursor = [], None
        while True:
            arguments: dict[str, Any] = {"limit": 1, "collection_name": notes, "order": "oldest"}
            if cursor:
                arguments["cursor"] = cursor
            page = await call(client, "qdrant-list", arguments)
            pages.append([p["document"] for p in page["points"]])
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert pages == [["The standup moved to 10:00."], ["The office is closed today."]]
        across = await call(
            client, "qdrant-find", {"query": "standup", "collection_names": [notes, "nothing-here"], "limit": 1}
        )
        assert across["missing_collections"] == ["nothing-here"] and across["hits"][0]["collection"] == notes


async def test_refusals_are_clear_tool_errors(shared_server: ServerProcess) -> None:
    notes = "lifecycle-refusals"
    async with Client(shared_server.mcp_url) as client:
        await call(client, "qdrant-store", {"information": "kept", "collection_name": notes})
        cases = [
            ("qdrant-update", {"id": 424242, "metadata": {"a": 1}}, "has no point 424242"),
            ("qdrant-update", {"id": 1}, "at least one of"),
            ("qdrant-store", {"information": "x", "ttl": "-1d"}, "ttl"),
            ("qdrant-store", {"information": "x", "ttl": "1d", "expires_at": "2099-01-01"}, "not both"),
            ("qdrant-store", {"information": "x", "expires_at": "2001-01-01T00:00:00Z"}, "not in the future"),
            ("qdrant-store", {"information": "x", "expires_at": "tomorrow"}, "expires_at"),
            ("qdrant-find", {"query": "x", "recency": "soon"}, "recency"),
            ("qdrant-find", {"query": "x", "diversity": 2}, "diversity"),
            ("qdrant-find", {"query": "x", "created_after": "2026-02-01", "created_before": "2026-01-01"}, "earlier"),
            ("qdrant-list", {"cursor": "garbage"}, "cursor is not one this server issued"),
            ("qdrant-get", {"ids": []}, "ids"),
        ]
        for tool, arguments, words in cases:
            message = await refused(client, tool, {**arguments, "collection_name": notes})
            assert words.lower() in message.lower(), (tool, arguments, message)
        both = await refused(
            client, "qdrant-find", {"query": "x", "collection_name": notes, "collection_names": [notes]}
        )
        assert "not both" in both
        info = await call(client, "qdrant-collection-info", {"collection_name": notes})
        assert info["points_count"] == 1


async def test_read_only_mode_hides_update_and_keeps_get_and_list(start_server: Start) -> None:
    server = start_server({"QDRANT_READ_ONLY": "true"})
    async with Client(server.mcp_url) as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
    assert names == {
        "qdrant-find",
        "qdrant-get",
        "qdrant-list",
        "qdrant-list-collections",
        "qdrant-collection-info",
    }


async def test_expired_memories_are_deleted_in_the_background(start_server: Start) -> None:
    server = start_server({"QDRANT_PURGE_INTERVAL": "1"})
    async with Client(server.mcp_url) as client:
        await call(
            client, "qdrant-store", {"information": "A note for one second.", "ttl": "1s", "collection_name": "bg"}
        )
        await call(client, "qdrant-store", {"information": "A note to keep.", "collection_name": "bg"})
        with anyio.fail_after(15):
            while (await call(client, "qdrant-collection-info", {"collection_name": "bg"}))["points_count"] != 1:
                await anyio.sleep(0.2)
    assert '"expired memories deleted"' in server.log()


def purge_command(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "qdrant_mcp_memory", "purge-expired", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def test_purge_expired_command(start_server: Start, tmp_path: Path) -> None:
    folder = tmp_path / "data"
    env = {"QDRANT_LOCAL_PATH": str(folder)}
    server = start_server({"QDRANT_URL": None, **env, "QDRANT_PURGE_INTERVAL": "3600"})
    async with Client(server.mcp_url) as client:
        for collection in ("one", "two"):
            await call(client, "qdrant-store", {"information": "soon gone", "ttl": "1s", "collection_name": collection})
            await call(client, "qdrant-store", {"information": "kept", "collection_name": collection})
    busy = purge_command(env)
    assert busy.returncode == 1 and "in use by another qdrant-mcp-memory process" in busy.stderr
    assert server.terminate() == 0
    time.sleep(1.1)
    only = purge_command(env, "--collection", "one")
    assert only.returncode == 0, only.stderr
    assert only.stdout.splitlines() == ["one: 1 expired memories deleted"]
    rest = purge_command(env)
    assert rest.returncode == 0 and rest.stdout.splitlines() == [
        "one: 0 expired memories deleted",
        "two: 1 expired memories deleted",
    ]
    missing = purge_command(env, "--collection", "three")
    assert missing.returncode == 1 and "collection 'three' does not exist" in missing.stderr
