"""The answer to a stdio client's first line, given before the MCP SDK is imported, or None.

The answer is sent before the SDK has seen the line and cannot be taken back, so it is given
only where the SDK is sure to give the same one: a single line (as the SDK's reader splits
lines: universal newlines, UTF-8) holding one JSON-RPC `initialize` request for a revision of
the handshake era, whose every field the SDK's models read (mcp_types' InitializeRequest) is
of a shape they accept. The check is narrower than those models (no type coercion, no
snake_case aliases, `icons` left out): whatever it refuses, even a valid request, is only
answered later, by the SDK itself. tests/server/test_stdio_handshake.py holds both sides.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from ..identity import HANDSHAKE_VERSIONS, initialize_result

# The fields of mcp_types' ClientCapabilities, by wire name: a nested mapping is a model (its
# other keys are ignored by the SDK, unless they spell a field in snake_case), BOOL a
# `bool | None`, OBJECTS a `dict[str, dict[str, Any]] | None`. Every field is optional.
BOOL = "bool"
OBJECTS = "objects"
CAPABILITIES: dict[str, Any] = {
    "experimental": OBJECTS,
    "extensions": OBJECTS,
    "sampling": {"context": {}, "tools": {}},
    "elicitation": {"form": {}, "url": {}},
    "roots": {"listChanged": BOOL},
    "tasks": {
        "list": {},
        "cancel": {},
        "requests": {"sampling": {"createMessage": {}}, "elicitation": {"create": {}}},
    },
}
CLIENT_INFO_TEXT = ("title", "description", "websiteUrl")  # Implementation's optional strings
CAMEL_HUMP = re.compile(r"(?<!^)(?=[A-Z])")


def early_answer(line: bytes) -> dict[str, Any] | None:
    """The answer to `line` if the SDK is sure to answer it so (see above), else None."""
    message = _one_json_object(line)
    if message is None or set(message) != {"jsonrpc", "id", "method", "params"}:
        return None
    request_id, params = message["id"], message["params"]
    if message["jsonrpc"] != "2.0" or message["method"] != "initialize":
        return None
    if isinstance(request_id, bool) or not isinstance(request_id, int | str) or not isinstance(params, dict):
        return None
    if not (
        set(params) <= {"protocolVersion", "capabilities", "clientInfo", "_meta"}
        and params.get("protocolVersion") in HANDSHAKE_VERSIONS
        and _meta_fits(params.get("_meta"))
        and _client_info_fits(params.get("clientInfo"))
        and isinstance(params.get("capabilities"), dict)
        and _model_fits(params["capabilities"], CAPABILITIES)
    ):
        return None
    return {"jsonrpc": "2.0", "id": request_id, "result": initialize_result(params["protocolVersion"])}


def _one_json_object(line: bytes) -> dict[str, Any] | None:
    """`line` as the one JSON object the SDK's reader would read from it, else None: strict UTF-8
    (the SDK replaces bad bytes), no carriage return but a final CRLF's (the SDK's reader ends a
    line at either), plain JSON (no NaN, no repeated key, no lone surrogate, no BOM)."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        return None
    text = text.removesuffix("\n").removesuffix("\r")
    if "\r" in text or "\n" in text:
        return None
    try:
        message = json.loads(text, parse_constant=_refuse, object_pairs_hook=_unique_keys)
        json.dumps(message, ensure_ascii=False).encode("utf-8")  # a lone surrogate does not encode
    except (ValueError, UnicodeError, RecursionError):  # RecursionError: nesting too deep
        return None
    return message if isinstance(message, dict) else None


def _refuse(constant: str) -> None:
    raise ValueError(f"{constant} is not JSON")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    if len({key for key, _ in pairs}) != len(pairs):
        raise ValueError("a repeated key")
    return dict(pairs)


def _meta_fits(meta: object) -> bool:
    """RequestParamsMeta: an open mapping whose progressToken, if any, is a string or an integer."""
    if meta is None:
        return True
    if not isinstance(meta, dict) or "progress_token" in meta:
        return False
    token = meta.get("progressToken", "")
    return isinstance(token, str) or (isinstance(token, int) and not isinstance(token, bool))


def _client_info_fits(info: object) -> bool:
    """Implementation: a name, a version, the optional strings; no icons (other keys are ignored)."""
    if not isinstance(info, dict) or "icons" in info or "website_url" in info:
        return False
    return (
        isinstance(info.get("name"), str)
        and isinstance(info.get("version"), str)
        and all(isinstance(info.get(key), str | None) for key in CLIENT_INFO_TEXT)
    )


def _model_fits(value: Mapping[str, Any], fields: Mapping[str, Any]) -> bool:
    for key, item in value.items():
        shape = fields.get(key)
        if shape is None:  # an unknown key is ignored, one spelled like a field's snake_case is read
            if any(_snake(name) == key for name in fields):
                return False
        elif item is None:
            continue
        elif shape == BOOL:
            if not isinstance(item, bool):
                return False
        elif shape == OBJECTS:
            if not isinstance(item, dict) or not all(isinstance(inner, dict) for inner in item.values()):
                return False
        elif not isinstance(item, dict) or not _model_fits(item, shape):
            return False
    return True


def _snake(name: str) -> str:
    return CAMEL_HUMP.sub("_", name).lower()
