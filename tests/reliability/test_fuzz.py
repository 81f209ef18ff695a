"""Property-based fuzzing of the tools' arguments over real HTTP, in both protocol eras.

Arguments come from each tool's input schema as tools/list publishes it, each parameter
mixing values that fit the schema, values just outside its bounds, values of the wrong
type, hostile strings (blank, lone surrogates, path tricks) and arbitrary JSON (NaN and
huge integers included); now and then a parameter is left out or an unknown one added, and
often a valid call has just one parameter drawn so. Bodies are built by hand
(reliability_support.Era), so nothing is refused on the client side.

Properties of every answer: no 5xx; a valid JSON-RPC response (a result or an error) to the
request's id; an error is a JSON-RPC error other than -32603 (internal error) or an isError
result, with a non-empty message; arguments that do not fit the tool's published inputSchema
(checked with a JSON Schema validator, after reading the text forms the server takes for
objects and numbers) are refused; and the server's log holds no traceback or ERROR line.
Over the run at least 12.5 % of the calls succeed and at least 60 % are refused as tool
errors (a server that refuses everything, or accepts everything, fails). After the run a
fixed control call (store, then find it) still works.

Size: RELIABILITY_FUZZ_EXAMPLES (default 2000 calls, about 40 s on 2 cores). The examples are
derandomized (the same each run, so CI is reproducible); RELIABILITY_FUZZ_RANDOM=1 explores
new ones. No example database is written (database=None).
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match
from reliability_support import ERAS, Era, LogWatch, dumps, open_era, reply_problems, seed

from support import ServerProcess

pytestmark = pytest.mark.reliability

EXAMPLES = int(os.environ.get("RELIABILITY_FUZZ_EXAMPLES", "2000"))
RANDOM = bool(os.environ.get("RELIABILITY_FUZZ_RANDOM"))
COLLECTIONS = ["fuzz", "fuzz-b"]

# -- values -------------------------------------------------------------------------------

HOSTILE_STRINGS = [
    "",
    " ",
    "\u3000",
    "\u00a0",
    "\u2028",
    "\t\n",
    "\x00",
    "\ud800",
    "a\udfffb",
    "\ud83d",
    "\U0001f9e0",
    "NaN",
    "Infinity",
    "1e3",
    " 7",
    "0x10",
    "-1",
    "\u0661\u0662\u0663",
    "\u00b2",
    "18446744073709551616",
    "..",
    "../etc/passwd",
    "a/b",
    "C:\\x",
    "{",
    '{"a": 1',
    "[1, 2]",
    "null",
    "true",
    "5f0c7a52-3a4b-4c8e-9d3e-2b1a6c9e8f70",
]
EXTREME_INTS = [0, -1, 1, 100, 101, 2**31, 2**53 + 1, 2**63 - 1, 2**63, -(2**63) - 1, 2**64 - 1, 2**64, 10**30, 10**400]
EXTREME_FLOATS = [0.0, -0.0, 1.0, -1.0, 1.0000001, -1.0000001, 1.5, 1e308, -1e308, 5e-324]

texts = st.one_of(
    st.text(max_size=24),
    st.text(st.characters(codec="utf-8"), max_size=12),
    st.sampled_from(HOSTILE_STRINGS),
    st.builds(lambda a, b: a + b, st.sampled_from(HOSTILE_STRINGS), st.text(max_size=8)),
)
integers = st.one_of(st.integers(-(2**70), 2**70), st.sampled_from(EXTREME_INTS), st.integers(10**300, 10**310))
floats = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.sampled_from(EXTREME_FLOATS))
scalars = st.one_of(st.none(), st.booleans(), integers, floats, texts)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(texts, children, max_size=4)),
    max_leaves=10,
)

# Raw Qdrant filters: mostly the right shape, so the checks past the first level are reached.
filter_keys = st.one_of(st.sampled_from(["metadata.n", "metadata.topic", "metadata.tags[]", "", "metadata["]), texts)
match = st.one_of(
    st.fixed_dictionaries({"value": scalars}),
    st.fixed_dictionaries({"any": st.lists(scalars, max_size=4)}),
    st.fixed_dictionaries({"except": st.lists(scalars, max_size=4)}),
    st.fixed_dictionaries({"text": texts}),
    json_values,
)
bounds = st.dictionaries(
    st.sampled_from(["gt", "gte", "lt", "lte", "eq"]),
    st.one_of(integers, floats, st.sampled_from(["2020-01-01T00:00:00Z", "2020-13-45", "yesterday"]), scalars),
    max_size=3,
)


def conditions(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.fixed_dictionaries({"key": filter_keys, "match": match}),
        st.fixed_dictionaries({"key": filter_keys, "range": bounds}),
        st.fixed_dictionaries({"has_id": st.lists(st.one_of(integers, texts, scalars), max_size=3)}),
        st.fixed_dictionaries({"is_empty": st.fixed_dictionaries({"key": filter_keys})}),
        st.fixed_dictionaries({"is_null": json_values}),
        st.fixed_dictionaries({"nested": st.fixed_dictionaries({"key": filter_keys, "filter": children})}),
        children,
        json_values,
    )


filters = st.recursive(
    st.fixed_dictionaries({}),
    lambda children: st.fixed_dictionaries(
        {},
        optional={
            "must": st.one_of(st.lists(conditions(children), max_size=3), json_values),
            "should": st.lists(conditions(children), max_size=3),
            "must_not": st.lists(conditions(children), max_size=3),
            "min_should": st.fixed_dictionaries(
                {"conditions": st.lists(conditions(children), max_size=2), "min_count": st.one_of(integers, scalars)}
            ),
        },
    ),
    max_leaves=6,
)

# Parameters by name: values that reach past the first check.
HINTS: dict[str, st.SearchStrategy[Any]] = {
    "collection_name": st.one_of(st.sampled_from(COLLECTIONS), st.sampled_from(COLLECTIONS), texts),
    "query_filter": st.one_of(filters, filters.map(json.dumps)),
    "metadata": st.one_of(st.dictionaries(texts, json_values, max_size=4), json_values.map(str)),
    "metadata_match": st.dictionaries(st.sampled_from(["n", "topic", "flag", ""]), json_values, max_size=3),
    "id": st.one_of(integers, st.sampled_from(HOSTILE_STRINGS), st.uuids().map(str)),
    "limit": st.one_of(integers, floats, st.sampled_from(["10", " 5", "1e2", True])),
    "score_threshold": st.one_of(floats, integers, st.sampled_from(["0.5", "nan", "1e999"])),
}


# -- strategies from the input schemas ----------------------------------------------------


def from_schema(schema: dict[str, Any], defs: dict[str, Any], name: str = "") -> st.SearchStrategy[Any]:
    """Values for one parameter: what the schema allows, its edges, wrong types and arbitrary JSON."""
    if "$ref" in schema:
        schema = defs[schema["$ref"].rsplit("/", 1)[-1]]
    options: list[st.SearchStrategy[Any]] = []
    for sub in schema.get("anyOf", []):
        options.append(from_schema(sub, defs, name))
    kind = schema.get("type")
    if kind == "string":
        low, high = schema.get("minLength", 0), schema.get("maxLength", 64)
        options += [
            st.text(min_size=low, max_size=min(high, 40)),
            texts,
            st.sampled_from([max(high, 1) + 1, max(high, 1)]).map(lambda n: "x" * n),
        ]
    elif kind == "integer":
        low, high = schema.get("minimum", -(2**63)), schema.get("maximum", 2**64)
        options += [st.integers(low - 2, min(high + 2, 2**70)), st.sampled_from([low - 1, high + 1]), integers]
    elif kind == "number":
        options += [st.floats(schema.get("minimum", -1e9) - 0.5, schema.get("maximum", 1e9) + 0.5), floats]
    elif kind == "null":
        options.append(st.none())
    elif kind == "array":
        items = from_schema(schema.get("items", {}), defs)
        high = schema.get("maxItems", 8)
        # One over the bound, made of a few drawn items repeated (cheap to generate at 1001).
        over = st.lists(items, min_size=1, max_size=3).map(lambda drawn, n=high + 1: (drawn * n)[:n])
        options += [st.lists(items, max_size=min(high, 4)), over]
    elif kind == "object":
        properties = schema.get("properties")
        if properties:
            options.append(arguments_for(schema, defs))
        else:
            options.append(st.dictionaries(texts, json_values, max_size=4))
    fitting = st.one_of(options) if options else json_values
    if name in HINTS:
        return st.one_of(HINTS[name], HINTS[name], fitting, json_values)
    return st.one_of(fitting, fitting, fitting, json_values)


def arguments_for(schema: dict[str, Any], defs: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """An arguments object: each parameter present or not, now and then an unknown one."""
    properties = schema.get("properties", {})
    # No COLLECTION_NAME is configured: collection_name is needed in practice (with_missing drops it).
    required = set(schema.get("required", [])) | ({"collection_name"} & set(properties))
    fields = {name: from_schema(spec, defs, name) for name, spec in properties.items()}
    optional = {name: strategy for name, strategy in fields.items() if name not in required}
    mandatory = {name: strategy for name, strategy in fields.items() if name in required}
    base = st.fixed_dictionaries(mandatory, optional=optional)
    with_missing = st.fixed_dictionaries({}, optional=fields)
    with_extra = st.builds(lambda a, b: {**b, **a}, base, st.dictionaries(texts, json_values, min_size=1, max_size=2))
    return st.one_of(base, base, base, with_missing, with_extra)


# -- the target ---------------------------------------------------------------------------


class FuzzTarget:
    def __init__(self, server: ServerProcess, client: httpx.Client) -> None:
        self.server = server
        self.eras: dict[str, Era] = {name: open_era(name, server.mcp_url, client) for name in ERAS}
        tools = self.eras["modern"].list_tools()
        self.schemas = {tool["name"]: tool["inputSchema"] for tool in tools}
        self.validators = {name: Draft202012Validator(schema) for name, schema in self.schemas.items()}
        for collection in COLLECTIONS:  # filters reach the engine only on a collection that exists
            seed(self.eras["modern"], collection)
        self.log = LogWatch(server.log_path)
        self.examples = 0
        self.outcomes: dict[str, int] = {}


@pytest.fixture(scope="module")
def target(arbitrary_server: ServerProcess) -> Iterator[FuzzTarget]:
    with httpx.Client() as client:
        yield FuzzTarget(arbitrary_server, client)


# A valid call of each tool, into a collection that exists.
VALID_ARGUMENTS = {
    "qdrant-find": {"query": "fuzz", "collection_name": COLLECTIONS[0]},
    "qdrant-store": {"information": "fuzz note", "collection_name": COLLECTIONS[0]},
    "qdrant-store-many": {"collection_name": COLLECTIONS[0], "entries": [{"information": "fuzz entry"}]},
    "qdrant-delete": {"collection_name": COLLECTIONS[0], "ids": [424242]},
    "qdrant-collection-info": {"collection_name": COLLECTIONS[0]},
}


def one_parameter_off(target: FuzzTarget) -> st.SearchStrategy[tuple[str, Any]]:
    """A valid call with one parameter drawn from its schema (in bounds, at and past its edges, of the
    wrong type): an argument set that is out of the schema by that parameter alone must still be refused."""
    options = []
    for tool, valid in VALID_ARGUMENTS.items():
        schema = target.schemas[tool]
        for name, spec in schema.get("properties", {}).items():
            values = from_schema(spec, schema.get("$defs", {}), name)
            options.append(st.tuples(st.just(tool), values.map(lambda value, v=valid, n=name: {**v, n: value})))
    return st.one_of(options)


def calls(target: FuzzTarget) -> st.SearchStrategy[tuple[str, Any, Any]]:
    """(era, tool name, arguments) with the arguments drawn from that tool's schema."""
    per_tool = [
        st.tuples(st.just(name), arguments_for(schema, schema.get("$defs", {})))
        for name, schema in sorted(target.schemas.items())
    ]
    odd_tool = st.tuples(st.one_of(texts, json_values), json_values)
    odd_arguments = st.tuples(st.sampled_from(sorted(target.schemas)), json_values)
    # Calls valid but for one parameter, so the checks deep inside it (and the engine) are reached.
    collection = st.sampled_from(COLLECTIONS)
    focused = [
        st.tuples(
            st.just("qdrant-find"),
            st.fixed_dictionaries(
                {"query": st.just("fuzz"), "collection_name": collection, "query_filter": filters},
                optional={"limit": st.integers(1, 100)},
            ),
        ),
        st.tuples(
            st.just("qdrant-store"),
            st.fixed_dictionaries(
                {"information": st.text(min_size=1, max_size=30).filter(str.strip), "collection_name": collection},
                optional={"metadata": HINTS["metadata"], "id": HINTS["id"]},
            ),
        ),
        st.tuples(
            st.just("qdrant-delete"),
            st.one_of(
                st.fixed_dictionaries({"collection_name": collection, "ids": st.lists(HINTS["id"], max_size=3)}),
                st.fixed_dictionaries({"collection_name": collection, "metadata_match": HINTS["metadata_match"]}),
            ),
        ),
    ]
    everything = st.one_of(*per_tool, *per_tool, *focused, one_parameter_off(target), odd_tool, odd_arguments)
    return st.tuples(st.sampled_from(ERAS), everything).map(lambda drawn: (drawn[0], *drawn[1]))


# Text the server reads as the typed value the schema publishes, as several clients send it:
# JSON text for an object (blank text: none), decimal text for a number
# (validation.metadata, filters.parse_filter, validation.plain_int and plain_float).
DECIMAL_INTEGER = re.compile(r"-?[0-9]+", re.ASCII)
DECIMAL_NUMBER = re.compile(r"-?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?", re.ASCII)


def as_published(value: Any, schema: dict[str, Any], defs: dict[str, Any]) -> Any:
    """`value` with such text read the way the server reads it, down through objects and arrays."""
    if "$ref" in schema:
        schema = defs[schema["$ref"].rsplit("/", 1)[-1]]
    branches = [schema, *schema.get("anyOf", [])]
    types = {branch.get("type") for branch in branches}
    if isinstance(value, str):
        return _read_text(value, types)
    if isinstance(value, dict):
        properties = {name: spec for branch in branches for name, spec in branch.get("properties", {}).items()}
        return {name: as_published(item, properties.get(name, {}), defs) for name, item in value.items()}
    if isinstance(value, list):
        items = next((branch["items"] for branch in branches if "items" in branch), {})
        return [as_published(item, items, defs) for item in value]
    return value


def _read_text(text: str, types: set[Any]) -> Any:
    if "object" in types and not text.strip():
        return None
    if "object" in types:
        try:
            return json.loads(text)
        except (ValueError, RecursionError):
            return text
    if "integer" in types and DECIMAL_INTEGER.fullmatch(text):
        return int(text)
    if "number" in types and DECIMAL_NUMBER.fullmatch(text):
        return float(text)
    return text


def schema_misfit(target: FuzzTarget, tool: Any, arguments: Any) -> str | None:
    """Why (tool, arguments) does not fit what tools/list publishes, or None when it does."""
    validator = target.validators.get(tool) if isinstance(tool, str) else None
    if validator is None:
        return f"no tool {tool!r}"
    schema = target.schemas[tool]
    error = best_match(validator.iter_errors(as_published(arguments, schema, schema.get("$defs", {}))))
    return None if error is None else f"{error.json_path}: {error.message[:200]}"


def check(target: FuzzTarget, era_name: str, tool: Any, arguments: Any) -> None:
    era = target.eras[era_name]
    reply = era.post("tools/call", dumps({"name": tool, "arguments": arguments}), tool)
    target.examples += 1
    if reply.status == 404 and era_name == "legacy":
        era.open()
        raise AssertionError(f"the call ended the session: {reply.describe()}")
    problems = reply_problems(reply)
    assert not problems, "\n".join(problems)
    misfit = schema_misfit(target, tool, arguments)
    if reply.error is not None:
        assert isinstance(reply.error.get("code"), int), reply.describe()
        outcome = f"json-rpc error {reply.error['code']}"
    elif reply.is_tool_error:
        outcome = "tool error"
    else:
        assert misfit is None, f"accepted arguments outside the published inputSchema ({misfit}): {reply.describe()}"
        assert reply.result and reply.result.get("content"), f"a result without content: {reply.describe()}"
        outcome = "success"
    target.outcomes[outcome] = target.outcomes.get(outcome, 0) + 1
    problems = target.log.problems()
    assert not problems, "the server logged an error or traceback:\n" + "\n".join(problems)


# A failing example can be megabytes (a 1001-entry store-many): its repr must not turn into the error.
@pytest.mark.filterwarnings("ignore:Generating overly large repr:hypothesis.errors.HypothesisWarning")
def test_fuzzed_tool_calls_keep_the_server_sound(target: FuzzTarget, record_property: pytest.RecordProperty) -> None:
    started = time.monotonic()

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=not RANDOM,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )
    @given(call=calls(target))
    def fuzz(call: tuple[str, Any, Any]) -> None:
        check(target, *call)

    try:
        fuzz()
    finally:
        elapsed = time.monotonic() - started
        summary = f"{target.examples} calls in {elapsed:.1f} s; outcomes {target.outcomes}"
        record_property("fuzz", summary)
        print(f"\nfuzz: {summary}")

    # Both ways out are taken often (the derandomized 2000 give about 15 % successes and 68 % tool errors).
    outcomes = target.outcomes
    assert outcomes.get("success", 0) >= target.examples // 8, f"too few calls succeeded: {summary}"
    assert outcomes.get("tool error", 0) >= target.examples * 3 // 5, f"too few calls were tool errors: {summary}"
    # The fixed control call: a store, found again, in both eras.
    for era in target.eras.values():
        stored = era.call("qdrant-store", {"information": "fuzz control memory", "collection_name": "fuzz-control"})
        assert stored.status == 200 and not stored.is_tool_error, stored.describe()
        found = era.call("qdrant-find", {"query": "fuzz control memory", "collection_name": "fuzz-control"})
        assert found.status == 200 and not found.is_tool_error, found.describe()
        assert found.structured["hits"][0]["document"] == "fuzz control memory"
    assert not target.log.problems()
