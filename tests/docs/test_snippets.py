"""The client configurations the docs hand out: valid, complete for their client, and token-free.

Every ```json block in README.md and docs/*.md must parse as written. Its client comes from a
marker line just before the fence (`<!-- client: vscode -->`, `cursor`, `claude-desktop`) or,
without one, from its shape (`servers` is VS Code's; `mcpServers` with a `url` is Cursor's,
with a `command` a stdio client's such as Claude Desktop). `.vscode/mcp.json` is checked as
VS Code's. No block may hold a token-looking value; a marked block is meant to be copied as it
is, so its Authorization header must take the token from a variable (a password prompt or the
environment), not from a `<placeholder>` the reader replaces by hand.

Every `claude mcp add` line in a shell block must parse with shlex, use `--transport http`
and send the token in an Authorization header read at run time.

The `docker run -i … --transport stdio` path of the Claude Desktop snippet is exercised
against the built image by tests/stack/test_image.py::test_stdio_for_desktop_clients.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from support import REPO

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(?P<lang>[\w-]*)[ \t]*\n(?P<body>.*?)^```[ \t]*$", re.M | re.S)
MARKER = re.compile(r"^<!--\s*client:\s*(?P<client>[\w-]+)\s*-->$")
CLIENTS = {"vscode", "cursor", "claude-desktop"}
TOKENISH = re.compile(r"(?<![0-9A-Fa-f])[0-9A-Fa-f]{32,}(?![0-9A-Fa-f])")
VARIABLE = re.compile(r"\$\{[^}]+\}")
INPUT_REF = re.compile(r"\$\{input:([^}]+)\}")
PLACEHOLDER = re.compile(r"<[^<>]+>")
SECRET_ENV = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD)(?!.*_FILE$)", re.I)


@dataclass
class Block:
    path: Path
    line: int
    lang: str
    body: str
    marker: str | None

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(REPO)}:{self.line}"


def blocks(path: Path) -> list[Block]:
    text = path.read_text(encoding="utf-8")
    found = []
    for match in FENCE.finditer(text):
        before = text[: match.start()].rstrip("\n").splitlines()
        marker = MARKER.match(before[-1].strip()) if before else None
        line = text.count("\n", 0, match.start()) + 1
        found.append(Block(path, line, match["lang"], match["body"], marker["client"] if marker else None))
    return found


JSON_BLOCKS = [block for path in DOCS for block in blocks(path) if block.lang == "json"]
SHELL_BLOCKS = [block for path in DOCS for block in blocks(path) if block.lang in ("bash", "sh", "shell", "console")]


def client_of(block: Block, data: Any) -> str | None:
    if block.marker:
        return block.marker
    if isinstance(data, dict) and isinstance(data.get("servers"), dict):
        return "vscode"
    if isinstance(data, dict) and isinstance(data.get("mcpServers"), dict):
        servers = list(data["mcpServers"].values())
        if servers and all(isinstance(s, dict) and "url" in s for s in servers):
            return "cursor"
        if servers and all(isinstance(s, dict) and "command" in s for s in servers):
            return "claude-desktop"
    return None


def strings(value: Any, path: str = "") -> list[tuple[str, str]]:
    """Every string in a JSON value, with where it is."""
    if isinstance(value, str):
        return [(path, value)]
    if isinstance(value, dict):
        return [item for key, sub in value.items() for item in strings(sub, f"{path}.{key}")]
    if isinstance(value, list):
        return [item for index, sub in enumerate(value) for item in strings(sub, f"{path}[{index}]")]
    return []


def secret_problems(data: Any, *, strict: bool) -> list[str]:
    """Token-looking values anywhere; Authorization headers and secret-named env values that do not
    come from a variable (or, when not strict, a <placeholder>)."""
    problems = [f"{where}: token-looking value {value!r}" for where, value in strings(data) if TOKENISH.search(value)]
    servers = {**(data.get("servers") or {}), **(data.get("mcpServers") or {})} if isinstance(data, dict) else {}
    for name, server in servers.items():
        if not isinstance(server, dict):
            continue
        for header, value in (server.get("headers") or {}).items():
            if header.lower() != "authorization":
                continue
            credential = value.removeprefix("Bearer ").strip()
            allowed = VARIABLE.fullmatch(credential) or (not strict and PLACEHOLDER.fullmatch(credential))
            if not value.startswith("Bearer ") or not allowed:
                problems.append(f"{name}: Authorization {value!r} does not take the token from a variable")
        for key, value in (server.get("env") or {}).items():
            if SECRET_ENV.search(key) and not (VARIABLE.search(value) or (not strict and PLACEHOLDER.search(value))):
                problems.append(f"{name}: env {key} holds a literal secret (use a variable or {key}_FILE)")
    return problems


def check_vscode(data: dict[str, Any]) -> list[str]:
    problems = []
    servers = data.get("servers")
    if not isinstance(servers, dict) or not servers:
        return ["no `servers` object"]
    for name, server in servers.items():
        kind = server.get("type")
        if "url" in server or kind == "http":
            if kind != "http" or not str(server.get("url", "")).startswith(("http://", "https://")):
                problems.append(f"servers.{name}: an HTTP server needs type 'http' and an http(s) url")
        elif kind != "stdio" or not server.get("command"):
            problems.append(f"servers.{name}: neither an http server (type, url) nor a stdio one (type, command)")
    inputs = {item.get("id"): item for item in data.get("inputs", []) if isinstance(item, dict)}
    for where, value in strings(servers, "servers"):
        for ref in INPUT_REF.findall(value):
            declared = inputs.get(ref)
            if declared is None:
                problems.append(f"{where}: ${{input:{ref}}} is not declared in `inputs`")
            elif declared.get("type") != "promptString" or declared.get("password") is not True:
                problems.append(f"inputs.{ref}: must be a promptString with password: true")
    for ref, item in inputs.items():
        if not re.fullmatch(r"[A-Za-z0-9_]+", str(ref)):  # the id pattern Visual Studio accepts too
            problems.append(f"inputs.{ref}: id should be letters, digits and _")
        if not item.get("description"):
            problems.append(f"inputs.{ref}: no description (it is the prompt's text)")
    return problems


def check_cursor(data: dict[str, Any]) -> list[str]:
    problems = []
    servers = data.get("mcpServers")
    if not isinstance(servers, dict) or not servers:
        return ["no `mcpServers` object"]
    for name, server in servers.items():
        if not str(server.get("url", "")).startswith(("http://", "https://")):
            problems.append(f"mcpServers.{name}: no http(s) url")
        headers = server.get("headers")
        if not isinstance(headers, dict) or "Authorization" not in headers:
            problems.append(f"mcpServers.{name}: no headers with Authorization")
        for where, value in strings(server, f"mcpServers.{name}"):
            if "${" in value and not re.fullmatch(r"[^$]*(\$\{(env:\w+|userHome|workspaceFolder)\}[^$]*)+", value):
                problems.append(f"{where}: Cursor interpolates only ${{env:NAME}}, ${{userHome}}, ${{workspaceFolder}}")
    return problems


def check_claude_desktop(data: dict[str, Any]) -> list[str]:
    problems = []
    servers = data.get("mcpServers")
    if not isinstance(servers, dict) or not servers:
        return ["no `mcpServers` object"]
    for name, server in servers.items():
        if not isinstance(server.get("command"), str) or not server["command"]:
            problems.append(f"mcpServers.{name}: no command")
        args = server.get("args")
        if not isinstance(args, list) or not all(isinstance(arg, str) for arg in args):
            problems.append(f"mcpServers.{name}: args must be a list of strings")
        env = server.get("env", {})
        if not isinstance(env, dict) or not all(isinstance(v, str) for v in env.values()):
            problems.append(f"mcpServers.{name}: env must map names to strings")
        if "url" in server:
            problems.append(f"mcpServers.{name}: a stdio client starts a command; it takes no url")
        if server.get("command") == "docker" and isinstance(args, list):
            if args[:2] != ["run", "-i"] or "-d" in args or "--detach" in args:
                problems.append(f"mcpServers.{name}: `docker run -i` without -d: the client talks over stdin/stdout")
            if args[-2:] != ["--transport", "stdio"]:
                problems.append(f"mcpServers.{name}: the image serves HTTP unless told `--transport stdio`")
    return problems


CHECKS = {"vscode": check_vscode, "cursor": check_cursor, "claude-desktop": check_claude_desktop}


def test_the_docs_have_client_snippets() -> None:
    marked = {block.marker for block in JSON_BLOCKS if block.marker}
    assert marked >= CLIENTS, f"no marked snippet for {CLIENTS - marked}"
    unknown = {block.marker for block in blocks_with_markers()} - CLIENTS
    assert not unknown, f"unknown client markers {unknown}: use one of {sorted(CLIENTS)}"


def blocks_with_markers() -> list[Block]:
    return [block for path in DOCS for block in blocks(path) if block.marker]


@pytest.mark.parametrize("block", JSON_BLOCKS, ids=lambda block: block.where)
def test_json_snippet(block: Block) -> None:
    try:
        data = json.loads(block.body)
    except json.JSONDecodeError as exc:
        pytest.fail(f"{block.where}: not valid JSON as written: {exc}")
    client = client_of(block, data)
    problems = secret_problems(data, strict=block.marker is not None)
    if client is not None:
        problems += CHECKS[client](data)
    assert not problems, f"{block.where} ({client or 'no client'}):\n" + "\n".join(problems)


def test_vscode_workspace_config() -> None:
    data = json.loads((REPO / ".vscode" / "mcp.json").read_text(encoding="utf-8"))
    problems = check_vscode(data) + secret_problems(data, strict=True)
    assert not problems, "\n".join(problems)
    server = data["servers"]["qdrant-memory"]
    assert server["url"] == "http://127.0.0.1:8000/mcp"
    assert INPUT_REF.search(server["headers"]["Authorization"]), "the token must come from an input"


def test_vscode_snippet_in_the_docs_is_the_workspace_file() -> None:
    workspace = json.loads((REPO / ".vscode" / "mcp.json").read_text(encoding="utf-8"))
    documented = [json.loads(block.body) for block in JSON_BLOCKS if block.marker == "vscode"]
    assert workspace in documented, "docs: the VS Code snippet differs from .vscode/mcp.json"


def claude_mcp_add_lines() -> list[tuple[Block, str]]:
    found = []
    for block in SHELL_BLOCKS:
        joined = re.sub(r"\\\n\s*", " ", block.body)  # backslash continuations
        for raw in joined.splitlines():
            line = raw.strip().removeprefix("$ ")
            if line.startswith("claude mcp add"):
                found.append((block, line))
    return found


def test_the_docs_have_a_claude_code_one_liner() -> None:
    assert claude_mcp_add_lines(), "no `claude mcp add` line in README.md or docs/*.md"


@pytest.mark.parametrize(("block", "line"), claude_mcp_add_lines(), ids=[b.where for b, _ in claude_mcp_add_lines()])
def test_claude_mcp_add_line(block: Block, line: str) -> None:
    try:
        argv = shlex.split(line)
    except ValueError as exc:
        pytest.fail(f"{block.where}: shlex cannot parse {line!r}: {exc}")
    assert argv[:3] == ["claude", "mcp", "add"]
    options = argv[3:]
    assert "--transport" in options and options[options.index("--transport") + 1] == "http", line
    header_flags = [i for i, arg in enumerate(options) if arg in ("--header", "-H")]
    assert header_flags, f"{block.where}: no --header: {line}"
    positional, i = [], 0
    while i < len(options):  # options that take a value: --transport, --scope, --header (variadic: last)
        if options[i] in ("--transport", "-t", "--scope", "-s"):
            i += 2
        elif options[i] in ("--header", "-H"):
            break
        else:
            positional.append(options[i])
            i += 1
    assert len(positional) == 2 and positional[1].startswith(("http://", "https://")), (
        f"{block.where}: expected <name> <url> before --header (it takes several values): {line}"
    )
    headers = [options[j + 1] for j in header_flags]
    auth = [h for h in headers if h.lower().startswith("authorization:")]
    assert auth, f"{block.where}: no Authorization header: {line}"
    credential = auth[0].split(":", 1)[1].strip().removeprefix("Bearer ").strip()
    assert re.fullmatch(r"\$\(cat [^)]+\)|\$\{\w+\}|\$\w+", credential), (
        f"{block.where}: the token must be read at run time (a $(cat file) or a variable), not written: {line}"
    )
    assert not TOKENISH.search(line), line


def test_published_versions_in_the_docs_are_current() -> None:
    """The pinned image tag and package version the snippets hand out are the release in
    server/pyproject.toml; the Inspector the docs name is the one compose.yaml runs."""
    version = tomllib.loads((REPO / "server" / "pyproject.toml").read_text())["project"]["version"]
    inspector = re.search(r"ghcr\.io/modelcontextprotocol/inspector:([\w.]+)", (REPO / "compose.core.yaml").read_text())
    assert inspector
    for path in DOCS:
        text = path.read_text(encoding="utf-8")
        for pinned in re.findall(r"qdrant-mcp-memory[:@](\d+\.\d+\.\d+)", text):
            assert pinned == version, f"{path.name}: qdrant-mcp-memory {pinned}, but the release is {version}"
        for pinned in re.findall(r"@modelcontextprotocol/inspector@([\w.]+)", text):
            assert pinned == inspector[1], f"{path.name}: Inspector {pinned}, compose.core.yaml runs {inspector[1]}"


def test_the_checks_catch_what_they_claim() -> None:
    """The checker itself: a pasted token, an undeclared or visible input, a wrong shape."""
    leaked = {"mcpServers": {"m": {"url": "http://x/mcp", "headers": {"Authorization": "Bearer " + "ab12" * 8}}}}
    assert secret_problems(leaked, strict=False)
    assert secret_problems({"servers": {"m": {"headers": {"Authorization": "Bearer <token>"}}}}, strict=True)
    assert not secret_problems({"servers": {"m": {"headers": {"Authorization": "Bearer <token>"}}}}, strict=False)
    assert secret_problems({"mcpServers": {"m": {"command": "x", "env": {"QDRANT_API_KEY": "k"}}}}, strict=False)
    assert not secret_problems(
        {"mcpServers": {"m": {"command": "x", "env": {"QDRANT_API_KEY_FILE": "/k"}}}}, strict=True
    )
    server = {"type": "http", "url": "http://x/mcp", "headers": {"Authorization": "Bearer ${input:t}"}}
    assert check_vscode({"servers": {"m": server}})  # t not declared
    visible = {"type": "promptString", "id": "t", "description": "d", "password": False}
    assert check_vscode({"inputs": [visible], "servers": {"m": server}})
    assert not check_vscode({"inputs": [{**visible, "password": True}], "servers": {"m": server}})
    assert check_cursor({"mcpServers": {"m": {"url": "http://x/mcp", "headers": {"Authorization": "Bearer ${T}"}}}})
    assert check_claude_desktop({"mcpServers": {"m": {"command": "docker", "args": ["run", "-d", "img"]}}})


CLONE = "/path/to/qdrant-mcp-memory"  # the placeholder the docs use for the reader's clone


def desktop_snippets() -> list[tuple[Block, dict[str, Any]]]:
    found = []
    for block in JSON_BLOCKS:
        data = json.loads(block.body)
        if client_of(block, data) == "claude-desktop":
            found.extend((block, server) for server in data["mcpServers"].values())
    return found


def test_desktop_snippets_run_from_a_clone() -> None:
    """Nothing is released yet, so every stdio snippet must run what a clone has: the image
    scripts/up builds (compose.core.yaml's default MCP_IMAGE) or uvx --from the clone's server/."""
    local_image = re.search(r"\$\{MCP_IMAGE:-([^}]+)\}", (REPO / "compose.core.yaml").read_text())
    assert local_image
    kinds = set()
    for block, server in desktop_snippets():
        args = server["args"]
        if server["command"] == "docker":
            assert local_image[1] in args, f"{block.where}: not the image scripts/up builds ({local_image[1]})"
            kinds.add("image")
        elif server["command"] == "uvx":
            assert args == ["--from", f"{CLONE}/server", "qdrant-mcp-memory"], f"{block.where}: {args}"
            kinds.add("uvx")
        else:
            pytest.fail(f"{block.where}: command {server['command']!r}: neither the local image nor uvx --from")
    assert kinds == {"image", "uvx"}, kinds


@pytest.mark.anyio
@pytest.mark.timeout(600)
async def test_the_uvx_snippet_serves_from_this_clone(tmp_path: Path, offline_model: Path) -> None:
    """The uvx snippet as Claude Desktop runs it (uv from the project's venv, the clone's path put in),
    over stdio: uv builds the package from server/ and the server stores and finds."""
    import shutil

    import anyio
    from mcp.client import Client
    from mcp.client.stdio import StdioServerParameters, stdio_client

    (block, server), *_ = [(b, s) for b, s in desktop_snippets() if s["command"] == "uvx"]
    uvx = shutil.which("uvx", path=str(Path(os.environ.get("VENV", REPO / ".venv")) / "bin"))
    assert uvx, "uvx comes with uv in the project's venv (scripts/bootstrap)"
    args = [arg.replace(CLONE, str(REPO)) for arg in server["args"]]
    env = {
        **server["env"],
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", str(tmp_path)),
        "FASTEMBED_CACHE_PATH": str(offline_model),  # the model, offline
        "HF_HUB_OFFLINE": "1",
        "QDRANT_LOCAL_PATH": str(tmp_path / "qdrant"),  # not the user's ~/.local/share
        "UV_SYSTEM_CERTS": os.environ.get("UV_SYSTEM_CERTS", "1"),
    }
    params = StdioServerParameters(command=uvx, args=args, env=env)
    stderr = tmp_path / "stderr"
    try:
        with stderr.open("w") as errlog, anyio.fail_after(540):
            async with Client(stdio_client(params, errlog=errlog), mode="legacy") as client:
                stored = await client.call_tool("qdrant-store", {"information": "from the clone, through uvx"})
                found = await client.call_tool("qdrant-find", {"query": "uvx"})
    except Exception as exc:  # what uvx or the server said is the useful part
        pytest.fail(f"{block.where}: uvx {' '.join(args)} failed ({exc!r}):\n{stderr.read_text()[-3000:]}")
    assert not stored.is_error, stored
    result = found.structured_content
    assert result and result["collection"] == server["env"]["COLLECTION_NAME"], (block.where, result)
    assert result["hits"][0]["document"] == "from the clone, through uvx", result
