"""Raw JSON-RPC over HTTP in both protocol eras, the bad-call corpus, the server log and a data fingerprint.

The SDK's client refuses to encode some of what a hostile or buggy client sends (lone
surrogates, NaN, bodies nested past its serializer's limit), so every request here is a
body built by hand and sent with httpx, shaped exactly as the SDK's own client shapes it:

- 2025-11-25: an `initialize` handshake opens a session (`Mcp-Session-Id`), then each
  request carries the session and `Mcp-Protocol-Version`.
- 2026-07-28: stateless; each request carries `Mcp-Protocol-Version`, `Mcp-Method`,
  `Mcp-Name` (tools/call) and the envelope in `params._meta`.
"""

from __future__ import annotations

import contextlib
import copy
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from mcp.shared.inbound import encode_header_value

LEGACY = "2025-11-25"
MODERN = "2026-07-28"
ERAS = ("legacy", "modern")
CALL_TIMEOUT_S = 30.0
ACCEPT = "application/json, text/event-stream"
CLIENT_INFO = {"name": "reliability", "version": "1"}
MODERN_META = {
    "io.modelcontextprotocol/protocolVersion": MODERN,
    "io.modelcontextprotocol/clientInfo": CLIENT_INFO,
    "io.modelcontextprotocol/clientCapabilities": {},
}
CORPUS_PATH = Path(__file__).with_name("bad_tool_calls.json")
# The collection every corpus case aims at (bad_tool_calls.json's "collection").
CORPUS_COLLECTION = "reliability"


def dumps(value: Any) -> str:
    """JSON text as a client writes it: lone surrogates leave as `\\udXXX` escapes (ensure_ascii).

    Values nested deeper than the json module can encode (thousands of levels) are written
    without recursion."""
    try:
        return json.dumps(value, ensure_ascii=True, allow_nan=True, separators=(",", ":"))
    except RecursionError:
        return _dumps_flat(value)


def _dumps_flat(value: Any) -> str:
    parts: list[str] = []
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, _Text):
            parts.append(item.text)
        elif isinstance(item, dict):
            stack.append(_Text("}"))
            for index, (key, member) in reversed(list(enumerate(item.items()))):
                stack.extend([member, _Text(("," if index else "") + json.dumps(str(key)) + ":")])
            stack.append(_Text("{"))
        elif isinstance(item, list):
            stack.append(_Text("]"))
            for index, member in reversed(list(enumerate(item))):
                stack.extend([member, _Text("," if index else "")])
            stack.append(_Text("["))
        else:
            parts.append(json.dumps(item, allow_nan=True))
    return "".join(parts)


@dataclass(frozen=True)
class _Text:
    text: str


# -- replies ------------------------------------------------------------------------------


@dataclass
class Reply:
    """One HTTP answer to one POSTed JSON-RPC message."""

    status: int
    headers: httpx.Headers
    text: str
    request_id: int | None

    @property
    def payload(self) -> Any:
        try:
            return json.loads(self.text)
        except ValueError:
            return None

    @property
    def is_jsonrpc(self) -> bool:
        message = self.payload
        return (
            isinstance(message, dict)
            and message.get("jsonrpc") == "2.0"
            and ("result" in message) != ("error" in message)
            and "id" in message
        )

    @property
    def error(self) -> dict[str, Any] | None:
        message = self.payload
        return message.get("error") if isinstance(message, dict) else None

    @property
    def result(self) -> dict[str, Any] | None:
        message = self.payload
        return message.get("result") if isinstance(message, dict) else None

    @property
    def is_tool_error(self) -> bool:
        return isinstance(self.result, dict) and self.result.get("isError") is True

    @property
    def refusal(self) -> str | None:
        """The words a caller reads: a JSON-RPC error's message (and data), or an isError result's text."""
        if isinstance(self.error, dict):
            data = self.error.get("data")
            return f"{self.error.get('message', '')} {data if isinstance(data, str) else ''}".strip()
        if self.is_tool_error:
            return "\n".join(
                block.get("text", "") for block in self.result.get("content", []) if isinstance(block, dict)
            )
        return None

    @property
    def structured(self) -> Any:
        return self.result.get("structuredContent") if isinstance(self.result, dict) else None

    def describe(self) -> str:
        return f"HTTP {self.status}: {self.text[:600]}"


class Era:
    """One protocol era over one httpx client; subclasses shape the messages."""

    name: str

    def __init__(self, url: str, client: httpx.Client) -> None:
        self.url = url
        self.client = client
        self._next_id = 100

    def next_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def headers(self, method: str, name: Any = None) -> dict[str, str]:
        raise NotImplementedError

    def params_text(self, params_text: str | None) -> str | None:
        """The params as sent: the modern era adds its envelope `_meta` to an object."""
        return params_text

    def post(self, method: str, params_text: str | None, name: Any = None, request_id: Any = None) -> Reply:
        """POST one request whose params are raw JSON text (None: no params member)."""
        rid = self.next_id() if request_id is None else request_id
        params = self.params_text(params_text)
        body = f'{{"jsonrpc":"2.0","id":{dumps(rid)},"method":{dumps(method)}'
        body += f',"params":{params}}}' if params is not None else "}"
        response = self.client.post(
            self.url, content=body.encode("utf-8"), headers=self.headers(method, name), timeout=CALL_TIMEOUT_S
        )
        return Reply(response.status_code, response.headers, response.text, rid if isinstance(rid, int) else None)

    def call_tool(self, name: Any, arguments_text: str | None) -> Reply:
        """tools/call with `arguments` as raw JSON text (None: the member is left out)."""
        members = [f'"name":{dumps(name)}']
        if arguments_text is not None:
            members.append(f'"arguments":{arguments_text}')
        return self.post("tools/call", "{" + ",".join(members) + "}", name)

    def call(self, name: str, arguments: dict[str, Any]) -> Reply:
        return self.call_tool(name, dumps(arguments))

    def list_tools(self) -> list[dict[str, Any]]:
        reply = self.post("tools/list", "{}")
        assert reply.status == 200 and isinstance(reply.result, dict), reply.describe()
        return list(reply.result["tools"])


class LegacyEra(Era):
    """2025-11-25: a session opened by the initialize handshake."""

    name = "legacy"

    def __init__(self, url: str, client: httpx.Client) -> None:
        super().__init__(url, client)
        self.session_id = ""
        self.open()

    def open(self) -> None:
        initialize = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {"protocolVersion": LEGACY, "capabilities": {}, "clientInfo": CLIENT_INFO},
        }
        response = self.client.post(
            self.url, json=initialize, headers={"Accept": ACCEPT, "Content-Type": "application/json"}
        )
        assert response.status_code == 200, response.text
        self.session_id = response.headers["mcp-session-id"]
        initialized = {"jsonrpc": "2.0", "method": "notifications/initialized"}
        response = self.client.post(self.url, json=initialized, headers=self.headers("notifications/initialized"))
        assert response.status_code == 202, response.text

    def headers(self, method: str, name: Any = None) -> dict[str, str]:
        return {
            "Accept": ACCEPT,
            "Content-Type": "application/json",
            "Mcp-Session-Id": self.session_id,
            "Mcp-Protocol-Version": LEGACY,
        }


class ModernEra(Era):
    """2026-07-28: stateless requests with the envelope in every message."""

    name = "modern"

    def headers(self, method: str, name: Any = None) -> dict[str, str]:
        headers = {
            "Accept": ACCEPT,
            "Content-Type": "application/json",
            "Mcp-Protocol-Version": MODERN,
            "Mcp-Method": method,
        }
        if isinstance(name, str):
            # A lone surrogate has no UTF-8 form: no header can carry it.
            with contextlib.suppress(UnicodeEncodeError):
                headers["Mcp-Name"] = encode_header_value(name)
        return headers

    def params_text(self, params_text: str | None) -> str | None:
        if params_text is None or not params_text.lstrip().startswith("{"):
            return params_text
        inner = params_text.strip()[1:-1].strip()
        meta = f'"_meta":{dumps(MODERN_META)}'
        return "{" + (f"{inner},{meta}" if inner else meta) + "}"


def open_era(name: str, url: str, client: httpx.Client) -> Era:
    return LegacyEra(url, client) if name == "legacy" else ModernEra(url, client)


# -- the corpus ---------------------------------------------------------------------------


@dataclass(frozen=True)
class BadCall:
    """One malformed or hostile tool call from bad_tool_calls.json."""

    id: str
    category: str
    tool: Any
    param: str
    expect: tuple[str, ...]
    servers: tuple[str, ...]
    arguments: Any = None
    raw_arguments: str | None = None
    params: Any = None
    note: str = ""
    spec: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def raw(self) -> bool:
        """Whether only a hand-built body can carry it (NaN tokens, lone surrogates, an odd envelope)."""
        return (
            self.raw_arguments is not None
            or self.params is not None
            or "arguments" not in self.spec
            or has_lone_surrogate(self.arguments)
            or not isinstance(self.tool, str)
        )

    def send(self, era: Era) -> Reply:
        if self.params is not None:
            params = expand(self.params)
            name = params.get("name") if isinstance(params, dict) else None
            return era.post("tools/call", dumps(params), name)
        if self.raw_arguments is not None:
            return era.call_tool(self.tool, self.raw_arguments)
        if "arguments" not in self.spec:
            return era.call_tool(self.tool, None)
        return era.call_tool(self.tool, dumps(expand(self.arguments)))


def load_corpus(path: Path = CORPUS_PATH) -> list[BadCall]:
    document = json.loads(path.read_text(encoding="utf-8"))
    calls = []
    for spec in document["cases"]:
        calls.append(
            BadCall(
                id=spec["id"],
                category=spec["category"],
                tool=spec.get("tool"),
                param=spec["param"],
                expect=tuple(spec.get("expect", ())),
                servers=tuple(spec.get("servers", ("arbitrary",))),
                arguments=spec.get("arguments"),
                raw_arguments=spec.get("raw_arguments"),
                params=spec.get("params"),
                note=spec.get("note", ""),
                spec=spec,
            )
        )
    return calls


def expand(value: Any) -> Any:
    """The corpus's generators, so large values stay small on disk:

    {"$str": [text, n]}                  text repeated n times
    {"$list": [template, n]}             n copies of template; "{i}" in its strings becomes the index
    {"$nest": [depth, template, leaf]}   template nested depth times; its "$hole" holds the next level
    {"$concat": [list, list, ...]}       the lists joined
    {"$json": value}                     the (expanded) value as JSON text
    """
    if isinstance(value, list):
        return [expand(item) for item in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        ((key, spec),) = value.items()
        if key == "$str":
            text, times = spec
            return text * times
        if key == "$list":
            template, times = spec
            return [expand(_indexed(template, index)) for index in range(times)]
        if key == "$nest":
            depth, template, leaf = spec
            built = expand(leaf)
            for _ in range(depth):
                built = _fill(copy.deepcopy(template), built)
            return built
        if key == "$concat":
            return [item for part in spec for item in expand(part)]
        if key == "$json":
            return dumps(expand(spec))
    return {key: expand(item) for key, item in value.items()}


def _indexed(value: Any, index: int) -> Any:
    if isinstance(value, str):
        return value.replace("{i}", str(index))
    if isinstance(value, list):
        return [_indexed(item, index) for item in value]
    if isinstance(value, dict):
        return {_indexed(key, index): _indexed(item, index) for key, item in value.items()}
    return value


def _fill(template: Any, inner: Any) -> Any:
    if template == "$hole":
        return inner
    if isinstance(template, list):
        return [_fill(item, inner) for item in template]
    if isinstance(template, dict):
        return {key: _fill(item, inner) for key, item in template.items()}
    return template


def has_lone_surrogate(value: Any) -> bool:
    if isinstance(value, str):
        return re.search("[\ud800-\udfff]", value) is not None
    if isinstance(value, list):
        return any(has_lone_surrogate(item) for item in value)
    if isinstance(value, dict):
        return any(has_lone_surrogate(key) or has_lone_surrogate(item) for key, item in value.items())
    return False


PARSE_ERROR, INVALID_REQUEST, INTERNAL_ERROR = -32700, -32600, -32603
# The unknown-argument refusal ends by listing every parameter the tool takes: naming one there
# says nothing about which argument was wrong.
ACCEPTED_LIST = re.compile(r"\(it takes: [^)]*\)")


def names(words: str, token: str) -> bool:
    """Whether `words` hold `token` as a whole token (case-insensitive): `id` is not in "invalid",
    `query` is not in `query_filter`; "arguments.ids[3]" does name `ids`."""
    pattern = rf"(?<!\w){re.escape(token.lower())}(?!\w)"
    return re.search(pattern, ACCEPTED_LIST.sub("", words.lower())) is not None


def reply_problems(reply: Reply) -> list[str]:
    """What makes an answer unsound whatever was asked: a 5xx, no JSON-RPC response, an answer
    to another request, an internal error, a refusal without words or with a traceback."""
    if reply.status >= 500:
        return [f"server error {reply.describe()}"]
    if not reply.is_jsonrpc:
        return [f"not a JSON-RPC response: {reply.describe()}"]
    problems = []
    # JSON-RPC 2.0 answers null when the request's id could not be read (a parse error, an
    # invalid request such as a body past the size limit, which the server does not read).
    unread = reply.payload["id"] is None and (reply.error or {}).get("code") in (PARSE_ERROR, INVALID_REQUEST)
    if reply.payload["id"] != reply.request_id and not unread:
        problems.append(f"answered id {reply.payload['id']!r}, not the request's {reply.request_id!r}")
    if reply.error is not None and reply.error.get("code") == INTERNAL_ERROR:
        problems.append(f"an internal error (-32603) is not a clear refusal: {reply.describe()}")
    words = reply.refusal
    if words is not None and not words.strip():
        problems.append(f"empty error message: {reply.describe()}")
    if words is not None and "Traceback" in words:
        problems.append(f"a traceback reached the client: {reply.describe()}")
    return problems


def refusal_problems(reply: Reply, call: BadCall) -> list[str]:
    """What is wrong with the answer to a bad call, if anything."""
    problems = reply_problems(reply)
    if reply.status >= 500 or not reply.is_jsonrpc:
        return problems
    words = reply.refusal
    if words is None:
        return [*problems, f"accepted instead of refused: {reply.describe()}"]
    missing = [word for word in (call.param, *call.expect) if not names(words, word)]
    if missing:
        problems.append(f"message lacks {missing}: {words[:500]!r}")
    return problems


# -- the server's log ---------------------------------------------------------------------


class LogWatch:
    """Reads what the server logged since the last look; flags errors and tracebacks."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.skip()

    def skip(self) -> None:
        self.offset = self.path.stat().st_size

    def new_lines(self) -> list[str]:
        with self.path.open("rb") as log:
            log.seek(self.offset)
            chunk = log.read()
        # Only whole lines: a line still being written is read next time.
        end = chunk.rfind(b"\n") + 1
        self.offset += end
        return chunk[:end].decode("utf-8", "replace").splitlines()

    def problems(self) -> list[str]:
        return [summarize(line) for line in self.new_lines() if is_problem_line(line)]


def summarize(line: str) -> str:
    """A log line in brief: level, logger, message, and for a traceback its root cause and our frame in it."""
    try:
        entry = json.loads(line)
    except ValueError:
        return line[:1000]
    if not isinstance(entry, dict):
        return line[:1000]
    text = f"{entry.get('level')} {entry.get('logger')}: {str(entry.get('message', '')).strip()[:300]}"
    exception = entry.get("exception")
    if isinstance(exception, str):
        root = exception.split("\n\nThe above exception was the direct cause")[0].split("\n\nDuring handling")[0]
        lines = [row for row in root.splitlines() if row.strip()]
        ours = [row.strip() for row in lines if "qdrant_mcp_memory" in row and row.strip().startswith("File")]
        errors = [
            row.strip() for row in lines if re.match(r"[A-Za-z_.]*(Error|Exception|Exit|Interrupt)\b", row.strip())
        ]
        text += f" | {(errors or lines or [''])[-1][:300]}"
        if ours:
            text += f" | at {ours[-1]}"
    return text


def is_problem_line(line: str) -> bool:
    if "Traceback" in line:
        return True
    try:
        entry = json.loads(line)
    except ValueError:
        return "ERROR" in line or "CRITICAL" in line
    return isinstance(entry, dict) and str(entry.get("level", "")).lower() in ("error", "critical", "fatal")


# -- the data a bad call must not change --------------------------------------------------

FINGERPRINT_QUERY = "what is remembered here"
SEED = [
    {
        "information": "Ada Lovelace wrote the first published computer program.",
        "id": 1,
        "metadata": {"person": "ada", "year": 1843, "flag": True, "score": 1.5, "tags": ["math", "poetry"]},
    },
    {"information": "Two is the id a superscript two would become.", "id": 2, "metadata": {"n": 2}},
    {"information": "Seven is the id a padded ' 7' would overwrite.", "id": 7, "metadata": {"n": 7, "flag": False}},
    {"information": "Sixteen is what 0x10 means in hexadecimal.", "id": 16, "metadata": {"n": 16}},
    {"information": "One hundred twenty-three in Arabic-Indic digits.", "id": 123, "metadata": {"n": 123}},
    {"information": "A thousand is what 1e3 means as a float.", "id": 1000, "metadata": {"n": 1000}},
    {
        "information": "Sourdough needs a long, slow fermentation.",
        "id": "5f0c7a52-3a4b-4c8e-9d3e-2b1a6c9e8f70",
        "metadata": {"topic": "food", "flag": True, "year": 2020, "score": 0.5, "done": True, "tags": ["bread"]},
    },
    {
        "information": "The largest point id Qdrant takes is 2^64-1.",
        "id": 2**64 - 1,
        "metadata": {"topic": "limits", "nums": [1, 2, 3], "done": False},
    },
]


@dataclass(frozen=True)
class Fingerprint:
    collections: tuple[str, ...]
    points: int
    contents: frozenset[tuple[str, str, str, str]]

    def differs_from(self, other: Fingerprint) -> str:
        added = sorted(self.contents - other.contents)
        removed = sorted(other.contents - self.contents)
        return (
            f"collections {list(other.collections)} -> {list(self.collections)}; "
            f"points {other.points} -> {self.points}; added {added[:5]}; removed {removed[:5]}"
        )


def fingerprint(era: Era, collection: str) -> Fingerprint:
    """Every collection's name (a bad call aimed at another one must not create it), and for
    `collection` its point count and the (id, document, metadata, expiry) of every hit of a fixed query (limit 100)."""
    listed = era.call("qdrant-list-collections", {})
    assert listed.status == 200 and not listed.is_tool_error and listed.structured, listed.describe()
    found = era.call("qdrant-find", {"query": FINGERPRINT_QUERY, "collection_name": collection, "limit": 100})
    assert found.status == 200 and not found.is_tool_error and found.structured, found.describe()
    info = era.call("qdrant-collection-info", {"collection_name": collection})
    assert info.status == 200 and not info.is_tool_error and info.structured, info.describe()
    contents = frozenset(
        (str(hit["id"]), hit["document"], json.dumps(hit["metadata"], sort_keys=True), hit.get("expires_at") or "")
        for hit in found.structured["hits"]
    )
    return Fingerprint(tuple(sorted(listed.structured["collections"])), info.structured["points_count"], contents)


def seed(era: Era, collection: str) -> None:
    """Write the seed points (upsert: restores any of them a bad call changed)."""
    reply = era.call("qdrant-store-many", {"collection_name": collection, "entries": SEED})
    assert reply.status == 200 and not reply.is_tool_error, reply.describe()


def restore(era: Era, collection: str) -> None:
    """Back to exactly the seed: re-store it and delete whatever else a bad call added."""
    seed(era, collection)
    found = era.call("qdrant-find", {"query": FINGERPRINT_QUERY, "collection_name": collection, "limit": 100})
    known = {str(entry["id"]) for entry in SEED}
    extra = [hit["id"] for hit in found.structured["hits"] if str(hit["id"]) not in known]
    if extra:
        era.call("qdrant-delete", {"collection_name": collection, "ids": extra})
