"""A server spawned as stdio clients spawn it (Claude Desktop, Cursor, ...), timed from the spawn.

The client side is newline-delimited JSON-RPC on the child's pipes, written by hand: the
timings are the server's, not an SDK client's. It sends what such clients send, as soon
as the pipe is open (the server reads it when it gets there): `initialize`, then
`notifications/initialized`, `tools/list` and one `qdrant-find`, each right after the
previous answer. Each answer's arrival is timed from the spawn.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .driver import found_something
from .errors import BenchError

PROTOCOL = "2025-06-18"
# A find's answer is one line; lines far longer than asyncio's 64 KiB default are fine.
LINE_LIMIT = 16 * 1024 * 1024


class StdioServer:
    """A child process speaking MCP on its stdin and stdout; stderr goes to `log_path`."""

    def __init__(self, argv: Sequence[str], env: Mapping[str, str], cwd: Path, log_path: Path) -> None:
        self.argv, self.env, self.cwd, self.log_path = list(argv), dict(env), cwd, log_path
        self.process: asyncio.subprocess.Process | None = None
        self.started = 0.0
        self._next_id = 0

    async def __aenter__(self) -> StdioServer:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log_file:
            self.started = time.perf_counter()
            self.process = await asyncio.create_subprocess_exec(
                *self.argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=log_file,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,
                limit=LINE_LIMIT,
            )
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def pid(self) -> int:
        if self.process is None:
            raise BenchError("the stdio server was not started")
        return self.process.pid

    def since_spawn(self) -> float:
        return round(time.perf_counter() - self.started, 3)

    async def request(self, method: str, params: dict[str, Any], limit_s: float) -> dict[str, Any]:
        """Send a request and wait for its answer (notifications and log messages in between are skipped)."""
        self._next_id += 1
        request_id = self._next_id
        await self.notify(method, params, request_id=request_id)
        _, stdout = self._pipes()
        while True:
            try:
                line = await asyncio.wait_for(stdout.readline(), limit_s)
            except TimeoutError:
                raise BenchError(f"no answer to {method} within {limit_s} s:\n{self.log_tail()}") from None
            if not line:
                raise BenchError(f"the server closed stdout before answering {method}:\n{self.log_tail()}")
            message = json.loads(line)
            if message.get("id") == request_id:
                if "error" in message:
                    raise BenchError(f"{method} answered with an error: {message['error']}")
                return dict(message["result"])

    async def notify(self, method: str, params: dict[str, Any] | None = None, *, request_id: int | None = None) -> None:
        message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
        if request_id is not None:
            message["id"] = request_id
        if params is not None:
            message["params"] = params
        stdin, _ = self._pipes()
        stdin.write(json.dumps(message).encode() + b"\n")
        await stdin.drain()

    async def close(self, grace_s: float = 10.0) -> int | None:
        """Close stdin (how stdio clients end a server), then SIGKILL the session after `grace_s`."""
        process = self.process
        if process is None or process.returncode is not None:
            return None if process is None else process.returncode
        if process.stdin is not None:
            process.stdin.close()
        try:
            return await asyncio.wait_for(process.wait(), grace_s)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
            return None

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def _pipes(self) -> tuple[asyncio.StreamWriter, asyncio.StreamReader]:
        process = self.process
        if process is None or process.returncode is not None or process.stdin is None or process.stdout is None:
            code = None if process is None else process.returncode
            raise BenchError(f"the stdio server is not running (exit {code}):\n{self.log_tail()}")
        return process.stdin, process.stdout


async def first_answers(server: StdioServer, query: str, limit_s: float) -> dict[str, Any]:
    """Seconds from spawn to the answers of initialize, tools/list and a first qdrant-find."""
    info = {"name": "qdrant-mcp-bench-stdio", "version": "0"}
    params = {"protocolVersion": PROTOCOL, "capabilities": {}, "clientInfo": info}
    times: dict[str, Any] = {}
    await server.request("initialize", params, limit_s)
    times["initialize_s"] = server.since_spawn()
    await server.notify("notifications/initialized")
    listed = await server.request("tools/list", {}, limit_s)
    times["tools_list_s"] = server.since_spawn()
    times["tools"] = sorted(tool["name"] for tool in listed.get("tools", []))
    found = await server.request("tools/call", {"name": "qdrant-find", "arguments": {"query": query}}, limit_s)
    times["first_find_s"] = server.since_spawn()
    if found.get("isError"):
        raise BenchError(f"the first qdrant-find failed: {_text(found)[:300]}")
    times["first_find_hits"] = found_something(_text(found))
    return times


def _text(result: dict[str, Any]) -> str:
    return "\n".join(str(item.get("text", "")) for item in result.get("content", []))
