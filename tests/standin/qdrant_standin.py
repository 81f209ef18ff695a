"""A Qdrant REST API stand-in for tests: Qdrant's own engine (Qdrant Edge) behind Qdrant's REST API.

TEST INFRASTRUCTURE ONLY. It stands in for the `qdrant/qdrant` image where that image cannot
be pulled (a machine without Docker Hub): the pipeline runs the same tests against the real
image (`QDRANT_TEST_URL`). Never ship it, never point a user at it.

Storage, filtering and search are the real engine, in-process: `qdrant_edge` (Qdrant's
segments, WAL, payload indexes, IDF-weighted sparse vectors, RRF fusion). What is the
stand-in's own is the HTTP layer: routing, JSON <-> engine types, and Qdrant's response
envelopes (`{"result", "status", "time"}`; errors `{"status": {"error"}}` with Qdrant's
status codes: 400 wrong input, 401/403 API key, 404 missing collection, 409 existing one).
Every answer parses with qdrant-client's own pydantic models.

Endpoints (exactly what qdrant-client 1.20 calls for the server's RemoteBackend, plus probes):

    GET    /  /healthz  /livez  /readyz            version info and probes (probes need no key)
    GET    /metrics                                Prometheus text: the collections and points held
    GET    /collections                            list
    GET    /collections/{name}                     info (CollectionInfo)
    GET    /collections/{name}/exists
    PUT    /collections/{name}                     create: named or unnamed dense vectors, sparse
                                                   vectors (IDF modifier); shard_number,
                                                   replication_factor, write_consistency_factor kept
    DELETE /collections/{name}
    PUT    /collections/{name}/index               payload index
    PUT    /collections/{name}/points              upsert (`points` or `batch`)
    POST   /collections/{name}/points              retrieve by ids
    POST   /collections/{name}/points/query        nearest (dense or sparse, with MMR), prefetch + fusion (RRF,
                                                   DBSF), formula (standin_formula.py)
    POST   /collections/{name}/points/count
    POST   /collections/{name}/points/delete       by ids or by filter
    POST   /collections/{name}/points/scroll       in id order, or order_by a payload key
    PUT    /collections/{name}/points/payload      overwrite the payload (POST: set keys) by ids or filter

Anything else answers 501 naming the stand-in, so a test that strays fails loudly. Filters
arrive in Qdrant's JSON syntax and become engine filters (must/should/must_not/min_should,
match value/any/except/text/text_any/phrase/prefix, range (numbers or datetimes), is_empty,
is_null, has_id, has_vector, nested, values_count). Collection info reports the engine's own
counts and index schema; HNSW, optimizer and WAL sections report Qdrant's defaults (the
engine builds no index in the background here: segments stay plain and searches are exact).

Fault injection, for tests only (never in a real Qdrant; no API key needed):

    POST   /__standin/faults    {"status": 503, "count": 2}: the next 2 requests fail with 503.
                                Optional: "method", "path" (a regex searched in the path),
                                "delay" (seconds to hold the request, once received; with
                                "status": null it then proceeds normally), "after": true
                                (carry the request out first, then hold the answer for
                                "delay" and send it, or the fault instead: a lost answer),
                                "error" (the message).
    DELETE /__standin/faults    clear them
    GET    /__standin/requests  {"count": N, "requests": [{"seq", "method", "path", "status", "fault"}]}
    DELETE /__standin/requests  reset the log

API keys as Qdrant's: the full key may do anything; the read-only key reads (GET, and the POSTs
that query, count, scroll or retrieve points) and gets 403 for anything else. Like Qdrant, the
keys can come from QDRANT__SERVICE__API_KEY and QDRANT__SERVICE__READ_ONLY_API_KEY.

Run:  python tests/standin/qdrant_standin.py --port 6333 [--api-key KEY] [--read-only-api-key KEY]
      [--storage DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import hmac
import json
import os
import re
import shutil
import signal
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy
import qdrant_edge as qe
import uvicorn
from standin_formula import formula_in
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

API_VERSION = "1.19.0"  # the REST API mirrored: the version compose.yaml pins
ENGINE_VERSION = version("qdrant-edge-py")
OPEN_PATHS = frozenset({"/healthz", "/livez", "/readyz"})
# What Qdrant's read-only key may POST: searches, counts, scrolls and retrieval by id.
READ_POSTS = re.compile(r"^/collections/[^/]+/points(/query|/count|/scroll)?$")
ADMIN = "/__standin"
DEFAULT_RRF_K = 2  # Qdrant's default for {"fusion": "rrf"} (lib/segment reciprocal_rank_fusion.rs)
_DISTANCES = {"Cosine": qe.Distance.Cosine, "Euclid": qe.Distance.Euclid, "Dot": qe.Distance.Dot,
              "Manhattan": qe.Distance.Manhattan}  # fmt: skip
_SCHEMAS = {"keyword": qe.PayloadSchemaType.Keyword, "integer": qe.PayloadSchemaType.Integer,
            "float": qe.PayloadSchemaType.Float, "geo": qe.PayloadSchemaType.Geo,
            "text": qe.PayloadSchemaType.Text, "bool": qe.PayloadSchemaType.Bool,
            "datetime": qe.PayloadSchemaType.Datetime, "uuid": qe.PayloadSchemaType.Uuid}  # fmt: skip
# Qdrant's defaults, reported in collection info (the engine keeps no such settings of its own).
HNSW_DEFAULTS = {"m": 16, "ef_construct": 100, "full_scan_threshold": 10000, "max_indexing_threads": 0,
                 "on_disk": False}  # fmt: skip
OPTIMIZER_DEFAULTS = {"deleted_threshold": 0.2, "vacuum_min_vector_number": 1000, "default_segment_number": 0,
                      "max_segment_size": None, "memmap_threshold": None, "indexing_threshold": 10000,
                      "flush_interval_sec": 5, "max_optimization_threads": None}  # fmt: skip
WAL_DEFAULTS = {"wal_capacity_mb": 32, "wal_segments_ahead": 0}


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def wrong_input(message: str) -> ApiError:
    return ApiError(400, f"Wrong input: {message}")


def format_error(message: str) -> ApiError:
    return ApiError(400, f"Format error in JSON body: {message}")


# -- storage -------------------------------------------------------------------------------


@dataclass(eq=False)
class Collection:
    name: str
    folder: Path
    params: dict[str, Any]  # the collection's params as Qdrant reports them
    created_at: str
    shard: qe.EdgeShard
    operations: int = 0

    def next_operation(self) -> int:
        self.operations += 1
        return self.operations


class Storage:
    """Collections, each one engine shard in a folder of its own (the name's hash keeps names apart)."""

    def __init__(self, root: Path | None) -> None:
        self.temporary = root is None
        self.root = Path(tempfile.mkdtemp(prefix="qdrant-standin-")) if root is None else root
        self.collections: dict[str, Collection] = {}

    def open(self) -> None:
        (self.root / "collections").mkdir(parents=True, exist_ok=True)
        for folder in sorted((self.root / "collections").iterdir()):
            meta_path = folder / "meta.json"
            if meta_path.is_file():
                meta = json.loads(meta_path.read_text())
                shard = qe.EdgeShard.load(str(folder / "shard"))
                self.collections[meta["name"]] = Collection(
                    meta["name"], folder, meta["params"], meta["created_at"], shard
                )

    def close(self) -> None:
        for collection in self.collections.values():
            collection.shard.flush()
            collection.shard.close()
        self.collections.clear()
        if self.temporary:
            shutil.rmtree(self.root, ignore_errors=True)

    def get(self, name: str) -> Collection:
        found = self.collections.get(name)
        if found is None:
            raise ApiError(404, f"Not found: Collection `{name}` doesn't exist!")
        return found

    def create(self, name: str, body: dict[str, Any]) -> None:
        if name in self.collections:
            raise ApiError(409, f"Wrong input: Collection `{name}` already exists!")
        if not name or len(name) > 255 or any(c in name for c in "/\\\0"):
            raise wrong_input(f"Collection name `{name}` is not allowed")
        params, config = _collection_params(body)
        folder = self.root / "collections" / hashlib.sha256(name.encode()).hexdigest()[:24]
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        shard = _engine(lambda: qe.EdgeShard.create(str(folder / "shard"), config))
        created_at = datetime.now(UTC).isoformat()
        (folder / "meta.json").write_text(json.dumps({"name": name, "params": params, "created_at": created_at}))
        self.collections[name] = Collection(name, folder, params, created_at, shard)

    def delete(self, name: str) -> bool:
        found = self.collections.pop(name, None)
        if found is None:
            return False
        found.shard.close()
        shutil.rmtree(found.folder, ignore_errors=True)
        return True


def _collection_params(body: dict[str, Any]) -> tuple[dict[str, Any], qe.EdgeConfig]:
    def dense(spec: Any, where: str) -> tuple[dict[str, Any], qe.EdgeVectorParams]:
        if not isinstance(spec, dict) or not isinstance(spec.get("size"), int) or spec["size"] < 1:
            raise format_error(f"{where}: expected {{size, distance}}")
        distance = spec.get("distance")
        if distance not in _DISTANCES:
            raise format_error(f"{where}.distance: unknown variant `{distance}`")
        if spec.get("multivector_config"):
            raise ApiError(501, "the Qdrant stand-in does not implement multivectors")
        return {"size": spec["size"], "distance": distance}, qe.EdgeVectorParams(
            size=spec["size"], distance=_DISTANCES[distance]
        )

    vectors = body.get("vectors")
    reported_vectors: dict[str, Any] | None
    if vectors is None or vectors == {}:
        reported_vectors, edge_vectors = {}, {}
    elif isinstance(vectors, dict) and "size" in vectors:  # one unnamed vector
        reported_vectors, edge_vectors = dense(vectors, "vectors")
    elif isinstance(vectors, dict):
        pairs = {name: dense(spec, f"vectors.{name}") for name, spec in vectors.items()}
        reported_vectors = {name: pair[0] for name, pair in pairs.items()}
        edge_vectors = {name: pair[1] for name, pair in pairs.items()}
    else:
        raise format_error("vectors: expected an object")
    sparse_in = body.get("sparse_vectors") or {}
    sparse_reported: dict[str, Any] = {}
    sparse_edge: dict[str, qe.EdgeSparseVectorParams] = {}
    for name, spec in sparse_in.items():
        modifier = (spec or {}).get("modifier")
        if modifier not in (None, "none", "idf"):
            raise format_error(f"sparse_vectors.{name}.modifier: unknown variant `{modifier}`")
        sparse_reported[name] = {"modifier": modifier} if modifier else {}
        sparse_edge[name] = qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf if modifier == "idf" else None)
    for key in ("shard_number", "replication_factor", "write_consistency_factor"):
        value = body.get(key)
        if value is not None and (not isinstance(value, int) or value < 1):
            raise ApiError(422, f"Validation error in JSON body: {key}: value {value} invalid, must be 1 or more")
    params = {
        "vectors": reported_vectors,
        "shard_number": body.get("shard_number") or 1,
        "replication_factor": body.get("replication_factor") or 1,
        "write_consistency_factor": body.get("write_consistency_factor") or 1,
        "on_disk_payload": body.get("on_disk_payload", True),
        **({"sparse_vectors": sparse_reported} if sparse_reported else {}),
    }
    config = qe.EdgeConfig(vectors=edge_vectors or None, sparse_vectors=sparse_edge or None)
    return params, config


def _engine(call: Callable[[], Any]) -> Any:
    """One engine call; its refusals become Qdrant's 400 (or 500 for the engine's own failures)."""
    try:
        return call()
    except ApiError:
        raise
    except Exception as exc:
        message = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        if message.startswith("Service internal error"):
            raise ApiError(500, message) from exc
        raise wrong_input(message.removeprefix("Wrong input: ")) from exc


# -- JSON -> engine --------------------------------------------------------------------------


def point_id(value: Any) -> int | str:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise format_error(f"value {value!r} is not a valid point ID, valid values are either an unsigned integer "
                           "or a UUID")  # fmt: skip
    if isinstance(value, int):
        if value < 0:
            raise format_error(f"value {value} is not a valid point ID: expected an unsigned integer")
        return value
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise format_error(f"value {value} is not a valid point ID, valid values are either an unsigned integer "
                           "or a UUID") from None  # fmt: skip


def id_out(value: Any) -> int | str:
    return value if isinstance(value, int) else str(value)


def parse_filter(spec: Any) -> qe.Filter | None:
    if spec is None:
        return None
    if not isinstance(spec, dict):
        raise format_error("filter: expected an object")

    def conditions(items: Any) -> list[Any] | None:
        if items is None:
            return None
        return [condition(item) for item in (items if isinstance(items, list) else [items])]

    min_should = None
    if spec.get("min_should") is not None:
        ms = spec["min_should"]
        min_should = qe.MinShould(conditions=conditions(ms.get("conditions")) or [], min_count=int(ms["min_count"]))
    return qe.Filter(
        must=conditions(spec.get("must")),
        should=conditions(spec.get("should")),
        must_not=conditions(spec.get("must_not")),
        min_should=min_should,
    )


def condition(spec: Any) -> Any:
    if not isinstance(spec, dict):
        raise format_error(f"condition: expected an object, got {spec!r}")
    if "key" in spec:
        return field_condition(spec)
    if "is_empty" in spec:
        return qe.IsEmptyCondition(key=spec["is_empty"]["key"])
    if "is_null" in spec:
        return qe.IsNullCondition(key=spec["is_null"]["key"])
    if "has_id" in spec:
        return qe.HasIdCondition(point_ids={point_id(i) for i in spec["has_id"]})
    if "has_vector" in spec:
        return qe.HasVectorCondition(spec["has_vector"])
    if "nested" in spec:
        nested = spec["nested"]
        return qe.NestedCondition(key=nested["key"], filter=parse_filter(nested["filter"]))
    if any(key in spec for key in ("must", "should", "must_not", "min_should")) or not spec:
        return parse_filter(spec)
    raise format_error(f"data did not match any variant of untagged enum Condition: {json.dumps(spec)[:200]}")


def field_condition(spec: dict[str, Any]) -> Any:
    key = spec["key"]
    checks: dict[str, Any] = {}
    match = spec.get("match")
    if match is not None:
        checks["match"] = match_condition(match)
    bounds = spec.get("range")
    if bounds is not None:
        values = {k: bounds.get(k) for k in ("gt", "gte", "lt", "lte")}
        if any(isinstance(v, str) for v in values.values()):
            checks["range"] = qe.RangeDateTime(**values)
        else:
            checks["range"] = qe.RangeFloat(**values)
    if spec.get("values_count") is not None:
        counts = spec["values_count"]
        checks["values_count"] = qe.ValuesCount(**{k: counts.get(k) for k in ("gt", "gte", "lt", "lte")})
    if spec.get("is_empty") is not None:
        checks["is_empty"] = bool(spec["is_empty"])
    if spec.get("is_null") is not None:
        checks["is_null"] = bool(spec["is_null"])
    if any(spec.get(k) is not None for k in ("geo_bounding_box", "geo_radius", "geo_polygon")):
        raise ApiError(501, "the Qdrant stand-in does not implement geo conditions")
    if not checks:
        raise format_error(f"field condition on `{key}` has no condition")
    return qe.FieldCondition(key=key, **checks)


def match_condition(match: dict[str, Any]) -> Any:
    if "value" in match:
        value = match["value"]
        # qdrant-edge 0.9.0 turns a Python bool into the integer 1/0; numpy's bool stays a boolean.
        return qe.MatchValue(numpy.bool_(value) if isinstance(value, bool) else value)
    if "any" in match:
        return qe.MatchAny(any=list(match["any"]))
    if "except" in match:
        return qe.MatchExcept(list(match["except"]))
    if "text" in match:
        return qe.MatchText(text=match["text"])
    if "text_any" in match:
        return qe.MatchTextAny(text_any=match["text_any"])
    if "phrase" in match:
        return qe.MatchPhrase(phrase=match["phrase"])
    if "prefix" in match:
        return qe.MatchPrefix(match["prefix"])
    raise format_error(f"data did not match any variant of untagged enum Match: {json.dumps(match)[:200]}")


def vector_in(value: Any, where: str) -> Any:
    if isinstance(value, dict) and "indices" in value:
        indices, values = value.get("indices") or [], value.get("values") or []
        if len(indices) != len(values):
            raise ApiError(422, f"Validation error in JSON body: {where}: indices and values must be the same length")
        return qe.SparseVector(indices=[int(i) for i in indices], values=[float(v) for v in values])
    if isinstance(value, list) and all(isinstance(x, int | float) and not isinstance(x, bool) for x in value):
        return [float(x) for x in value]
    if isinstance(value, list) and value and all(isinstance(x, list) for x in value):
        raise ApiError(501, "the Qdrant stand-in does not implement multivectors")
    raise format_error(f"{where}: expected a dense vector (list of numbers) or a sparse one ({{indices, values}})")


def vectors_in(value: Any) -> Any:
    if isinstance(value, dict) and "indices" not in value:
        return {name: vector_in(v, f"vector.{name}") for name, v in value.items()}
    return vector_in(value, "vector")


def vector_out(value: Any) -> Any:
    if isinstance(value, qe.SparseVector):
        return {"indices": list(value.indices), "values": list(value.values)}
    if isinstance(value, dict):
        return {name: vector_out(v) for name, v in value.items()}
    return value


def with_payload_in(value: Any, default: bool) -> Any:
    if value is None:
        return default
    if isinstance(value, bool | list):
        return value
    if isinstance(value, dict) and "include" in value:
        return qe.PayloadSelector.Include(list(value["include"]))
    if isinstance(value, dict) and "exclude" in value:
        return qe.PayloadSelector.Exclude(list(value["exclude"]))
    raise format_error("with_payload: expected a bool, a list of keys, {include} or {exclude}")


def order_by_in(spec: Any) -> qe.OrderBy | None:
    """Qdrant's order_by: a key, or {key, direction ("asc" / "desc"), start_from (a number or a datetime)}."""
    if spec is None:
        return None
    if isinstance(spec, str):
        return qe.OrderBy(spec)
    if not isinstance(spec, dict) or not isinstance(spec.get("key"), str):
        raise format_error("order_by: expected a key or {key, direction, start_from}")
    direction = {None: None, "asc": qe.Direction.Asc, "desc": qe.Direction.Desc}.get(spec.get("direction"), False)
    if direction is False:
        raise format_error(f"order_by.direction: unknown variant `{spec.get('direction')}`")
    return qe.OrderBy(spec["key"], direction, start_from=spec.get("start_from"))


def with_vector_in(value: Any) -> Any:
    if value is None:
        return False
    if isinstance(value, bool | list):
        return value
    raise format_error("with_vector: expected a bool or a list of vector names")


def search_params(spec: Any) -> qe.SearchParams | None:
    if not spec:
        return None
    return qe.SearchParams(hnsw_ef=spec.get("hnsw_ef"), exact=bool(spec.get("exact", False)),
                           indexed_only=bool(spec.get("indexed_only", False)))  # fmt: skip


def query_in(spec: Any, using: str | None, limit: int) -> Any:
    """Qdrant's QueryInterface: a vector (nearest), {nearest} (with mmr), {fusion}, {rrf}, {formula};
    others are not implemented."""
    if spec is None:
        return None
    if isinstance(spec, list) or (isinstance(spec, dict) and "indices" in spec):
        return qe.Query.Nearest(vector_in(spec, "query"), using=using)
    if isinstance(spec, dict) and "nearest" in spec:
        vector = vector_in(spec["nearest"], "query.nearest")
        mmr = spec.get("mmr")
        if mmr:  # Qdrant's diversity is 1 - the engine's lambda; candidates default to the limit
            diversity = mmr.get("diversity")
            relevance = 1.0 - (0.5 if diversity is None else float(diversity))
            return qe.Mmr(vector, relevance, int(mmr.get("candidates_limit") or limit), using=using)
        return qe.Query.Nearest(vector, using=using)
    if isinstance(spec, dict) and "formula" in spec:
        return formula_in(spec, condition)
    if isinstance(spec, dict) and "fusion" in spec:
        if spec["fusion"] == "rrf":
            return qe.Fusion.Rrf(k=DEFAULT_RRF_K)
        if spec["fusion"] == "dbsf":
            return qe.Fusion.Dbsf()
        raise format_error(f"query.fusion: unknown variant `{spec['fusion']}`")
    if isinstance(spec, dict) and "rrf" in spec:
        rrf = spec["rrf"] or {}
        return qe.Fusion.Rrf(k=int(rrf.get("k") or DEFAULT_RRF_K), weights=rrf.get("weights"))
    kind = next(iter(spec), "?") if isinstance(spec, dict) else type(spec).__name__
    raise ApiError(501, f"the Qdrant stand-in does not implement `{kind}` queries")


def prefetch_in(spec: dict[str, Any]) -> qe.Prefetch:
    limit = int(spec.get("limit") or 10)
    return qe.Prefetch(
        limit=limit,
        query=query_in(spec.get("query"), spec.get("using"), limit),
        prefetches=[prefetch_in(p) for p in _as_list(spec.get("prefetch"))] or None,
        params=search_params(spec.get("params")),
        filter=parse_filter(spec.get("filter")),
        score_threshold=spec.get("score_threshold"),
    )


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def record_out(record: Any, *, with_payload: bool, with_vector: bool, score: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {"id": id_out(record.id)}
    if score:
        out["version"] = int(record.version)
        out["score"] = float(record.score)
    if with_payload:
        out["payload"] = dict(record.payload or {})
    if with_vector:
        out["vector"] = vector_out(record.vector) if record.vector is not None else None
    if getattr(record, "order_value", None) is not None:
        out["order_value"] = record.order_value
    return out


# -- the HTTP API ----------------------------------------------------------------------------


def ok(result: Any, started: float, status: int = 200) -> JSONResponse:
    return JSONResponse({"result": result, "status": "ok", "time": time.perf_counter() - started}, status)


def error_response(status: int, message: str) -> JSONResponse:
    return JSONResponse({"status": {"error": message}, "time": 0.0}, status)


async def body_of(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise format_error(str(exc)) from None
    if not isinstance(body, dict):
        raise format_error("expected a JSON object")
    return body


def update_result(collection: Collection, request: Request) -> dict[str, Any]:
    wait = request.query_params.get("wait", "false").lower() == "true"
    return {"operation_id": collection.next_operation(), "status": "completed" if wait else "acknowledged"}


def build_app(storage: Storage, api_key: str | None, read_only_api_key: str | None = None) -> ASGIApp:
    Handler = Callable[[Request], Awaitable[Response]]

    def endpoint(handler: Callable[[Request, float], Awaitable[Response]]) -> Handler:
        async def run(request: Request) -> Response:
            started = time.perf_counter()
            try:
                return await handler(request, started)
            except ApiError as exc:
                return error_response(exc.status, str(exc))
            except (KeyError, TypeError, ValueError) as exc:  # a body of the wrong shape
                return error_response(400, f"Format error in JSON body: {type(exc).__name__}: {exc}")

        return run

    async def root(request: Request, started: float) -> Response:
        return JSONResponse({"title": f"qdrant - vector search engine (test stand-in on qdrant-edge {ENGINE_VERSION})",
                             "version": API_VERSION, "commit": None})  # fmt: skip

    async def healthz(request: Request, started: float) -> Response:
        return PlainTextResponse("healthz check passed")

    async def readyz(request: Request, started: float) -> Response:
        return PlainTextResponse("all shards are ready")

    async def metrics(request: Request, started: float) -> Response:
        exact = qe.CountRequest(exact=True, filter=None)
        points = sum(_engine(lambda c=c: c.shard.count(exact)) for c in storage.collections.values())
        return PlainTextResponse(
            "# TYPE collections_total gauge\n"
            f"collections_total {len(storage.collections)}\n"
            "# TYPE collections_vector_total gauge\n"
            f"collections_vector_total {points}\n"
        )

    async def list_collections(request: Request, started: float) -> Response:
        return ok({"collections": [{"name": name} for name in storage.collections]}, started)

    async def collection(request: Request, started: float) -> Response:
        name = request.path_params["name"]
        if request.method == "PUT":
            storage.create(name, await body_of(request))
            return ok(True, started)
        if request.method == "DELETE":
            return ok(storage.delete(name), started)
        found = storage.get(name)
        info = _engine(found.shard.info)
        schema = {
            key: {"data_type": str(v.data_type).rsplit(".", 1)[-1].lower(), "points": int(v.points)}
            for key, v in info.payload_schema.items()
        }
        return ok(
            {
                "status": "green",
                "optimizer_status": "ok",
                "indexed_vectors_count": int(info.indexed_vectors_count),
                "points_count": int(info.points_count),
                "segments_count": int(info.segments_count),
                "config": {
                    "params": found.params,
                    "hnsw_config": HNSW_DEFAULTS,
                    "optimizer_config": OPTIMIZER_DEFAULTS,
                    "wal_config": WAL_DEFAULTS,
                    "quantization_config": None,
                    "strict_mode_config": {"enabled": False},
                },
                "payload_schema": schema,
                "created_at": found.created_at,
            },
            started,
        )

    async def exists(request: Request, started: float) -> Response:
        return ok({"exists": request.path_params["name"] in storage.collections}, started)

    async def create_index(request: Request, started: float) -> Response:
        found = storage.get(request.path_params["name"])
        body = await body_of(request)
        schema = body.get("field_schema")
        kind = schema.get("type") if isinstance(schema, dict) else schema
        if not isinstance(body.get("field_name"), str) or kind not in _SCHEMAS:
            raise format_error(f"field_schema: unknown variant `{kind}`")
        operation = qe.UpdateOperation.create_field_index(body["field_name"], _SCHEMAS[kind])
        _engine(lambda: found.shard.update(operation))
        return ok(update_result(found, request), started)

    async def points(request: Request, started: float) -> Response:
        found = storage.get(request.path_params["name"])
        body = await body_of(request)
        if request.method == "PUT":
            return ok(upsert(found, body, request), started)
        ids = [point_id(i) for i in body.get("ids") or []]
        records = _engine(
            lambda: found.shard.retrieve(
                ids, with_payload_in(body.get("with_payload"), True), with_vector_in(body.get("with_vector"))
            )
        )
        want_payload = body.get("with_payload") is not False
        want_vector = bool(body.get("with_vector"))
        return ok([record_out(r, with_payload=want_payload, with_vector=want_vector) for r in records], started)

    def upsert(found: Collection, body: dict[str, Any], request: Request) -> dict[str, Any]:
        if "batch" in body:
            batch = body["batch"]
            ids = batch["ids"]
            vectors = batch.get("vectors") or {}
            payloads = batch.get("payloads") or [None] * len(ids)
            if isinstance(vectors, dict):
                rows = [{name: column[i] for name, column in vectors.items()} for i in range(len(ids))]
            else:
                rows = list(vectors)
            items = [{"id": i, "vector": v, "payload": p} for i, v, p in zip(ids, rows, payloads, strict=True)]
        elif "points" in body:
            items = body["points"]
        else:
            raise format_error("expected `points` or `batch`")
        edge_points = [qe.Point(point_id(p["id"]), vectors_in(p.get("vector") or {}), p.get("payload")) for p in items]
        _engine(lambda: found.shard.update(qe.UpdateOperation.upsert_points(edge_points)))
        return update_result(found, request)

    async def query(request: Request, started: float) -> Response:
        found = storage.get(request.path_params["name"])
        body = await body_of(request)
        if body.get("lookup_from") or body.get("group_by"):
            raise ApiError(501, "the Qdrant stand-in does not implement lookup_from or groups")
        want_payload = body.get("with_payload") not in (None, False)
        want_vector = bool(body.get("with_vector"))
        limit = int(body.get("limit") or 10)
        request_ = qe.QueryRequest(
            limit=limit,
            offset=int(body.get("offset") or 0),
            query=query_in(body.get("query"), body.get("using"), limit),
            prefetches=[prefetch_in(p) for p in _as_list(body.get("prefetch"))] or None,
            with_vector=with_vector_in(body.get("with_vector")),
            with_payload=with_payload_in(body.get("with_payload"), False),
            filter=parse_filter(body.get("filter")),
            score_threshold=body.get("score_threshold"),
            params=search_params(body.get("params")),
        )
        scored = _engine(lambda: found.shard.query(request_))
        hits = [record_out(p, with_payload=want_payload, with_vector=want_vector, score=True) for p in scored]
        return ok({"points": hits}, started)

    async def count(request: Request, started: float) -> Response:
        found = storage.get(request.path_params["name"])
        body = await body_of(request)
        count_request = qe.CountRequest(exact=bool(body.get("exact", True)), filter=parse_filter(body.get("filter")))
        counted = _engine(lambda: found.shard.count(count_request))
        return ok({"count": int(counted)}, started)

    async def delete_points(request: Request, started: float) -> Response:
        found = storage.get(request.path_params["name"])
        body = await body_of(request)
        if body.get("points") is not None:
            operation = qe.UpdateOperation.delete_points([point_id(i) for i in body["points"]])
        elif body.get("filter") is not None:
            operation = qe.UpdateOperation.delete_points_by_filter(parse_filter(body["filter"]))
        else:
            raise format_error("expected `points` or `filter`")
        _engine(lambda: found.shard.update(operation))
        return ok(update_result(found, request), started)

    async def scroll(request: Request, started: float) -> Response:
        found = storage.get(request.path_params["name"])
        body = await body_of(request)
        offset = body.get("offset")
        order_by = order_by_in(body.get("order_by"))
        if order_by is not None and offset is not None:
            raise wrong_input("offset cannot be used together with order_by")
        scroll_request = qe.ScrollRequest(
            offset=point_id(offset) if offset is not None else None,
            limit=int(body.get("limit") or 10),
            filter=parse_filter(body.get("filter")),
            with_payload=with_payload_in(body.get("with_payload"), True),
            with_vector=with_vector_in(body.get("with_vector")),
            order_by=order_by,
        )
        records, next_offset = _engine(lambda: found.shard.scroll(scroll_request))
        want_payload = body.get("with_payload") is not False
        want_vector = bool(body.get("with_vector"))
        return ok(
            {
                "points": [record_out(r, with_payload=want_payload, with_vector=want_vector) for r in records],
                "next_page_offset": id_out(next_offset) if next_offset is not None else None,
            },
            started,
        )

    async def payload(request: Request, started: float) -> Response:
        found = storage.get(request.path_params["name"])
        body = await body_of(request)
        values = body.get("payload")
        if not isinstance(values, dict):
            raise format_error("payload: expected an object")
        key = body.get("key")
        update = qe.UpdateOperation
        overwrite = request.method == "PUT"
        if body.get("points") is not None:
            by_ids = update.overwrite_payload if overwrite else update.set_payload
            operation = by_ids([point_id(i) for i in body["points"]], values, key)
        elif body.get("filter") is not None:
            by_filter = update.overwrite_payload_by_filter if overwrite else update.set_payload_by_filter
            operation = by_filter(parse_filter(body["filter"]), values, key)
        else:
            raise format_error("expected `points` or `filter`")
        try:
            _engine(lambda: found.shard.update(operation))
        except ApiError as exc:
            if "No point with id" in str(exc):  # Qdrant answers 404 for a missing point
                raise ApiError(404, f"Not found: {str(exc).removeprefix('Wrong input: ')}") from None
            raise
        return ok(update_result(found, request), started)

    async def not_implemented(request: Request, exc: Exception) -> Response:
        return error_response(501, f"the Qdrant stand-in does not implement {request.method} {request.url.path}")

    name = "/collections/{name}"
    routes = [
        Route("/", endpoint(root), methods=["GET"]),
        Route("/healthz", endpoint(healthz), methods=["GET"]),
        Route("/livez", endpoint(healthz), methods=["GET"]),
        Route("/readyz", endpoint(readyz), methods=["GET"]),
        Route("/metrics", endpoint(metrics), methods=["GET"]),
        Route("/collections", endpoint(list_collections), methods=["GET"]),
        Route(name, endpoint(collection), methods=["GET", "PUT", "DELETE"]),
        Route(f"{name}/exists", endpoint(exists), methods=["GET"]),
        Route(f"{name}/index", endpoint(create_index), methods=["PUT"]),
        Route(f"{name}/points", endpoint(points), methods=["PUT", "POST"]),
        Route(f"{name}/points/query", endpoint(query), methods=["POST"]),
        Route(f"{name}/points/count", endpoint(count), methods=["POST"]),
        Route(f"{name}/points/delete", endpoint(delete_points), methods=["POST"]),
        Route(f"{name}/points/scroll", endpoint(scroll), methods=["POST"]),
        Route(f"{name}/points/payload", endpoint(payload), methods=["PUT", "POST"]),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        storage.open()
        try:
            yield
        finally:
            count = len(storage.collections)
            storage.close()
            print(f"qdrant stand-in stopped: {count} collections flushed and closed", flush=True)

    api = Starlette(
        routes=routes,
        exception_handlers={404: not_implemented, 405: not_implemented},
        lifespan=lifespan,
    )
    return Faults(ApiKeyCheck(api, api_key, read_only_api_key))


class ApiKeyCheck:
    """Qdrant's static API keys: `api-key: KEY` or `Authorization: Bearer KEY`; probes stay open."""

    def __init__(self, app: ASGIApp, api_key: str | None, read_only_api_key: str | None = None) -> None:
        self.app = app
        self.api_key = api_key
        self.read_only_api_key = read_only_api_key

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.api_key is None or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        given = headers.get("api-key")
        if given is None and headers.get("authorization", "").lower().startswith("bearer "):
            given = headers["authorization"][7:]
        if given is None:
            response: Response = PlainTextResponse("Must provide an API key or an Authorization bearer token", 401)
        elif hmac.compare_digest(given.encode(), self.api_key.encode()) or (
            self.read_only_api_key is not None
            and hmac.compare_digest(given.encode(), self.read_only_api_key.encode())
            and (scope["method"] == "GET" or (scope["method"] == "POST" and READ_POSTS.match(scope["path"])))
        ):
            await self.app(scope, receive, send)
            return
        else:
            response = PlainTextResponse("Invalid API key or JWT", 403)
        await response(scope, receive, send)


@dataclass
class Fault:
    status: int | None = 503
    count: int = 1
    method: str | None = None
    path: str | None = None
    delay: float = 0.0
    after: bool = False
    error: str | None = None

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method.upper() == method) and (
            self.path is None or re.search(self.path, path) is not None
        )


@dataclass
class Faults:
    """Outermost: counts every request, injects the queued faults, and serves the admin endpoints."""

    app: ASGIApp
    queue: list[Fault] = field(default_factory=list)
    log: list[dict[str, Any]] = field(default_factory=list)
    seq: int = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method, path = scope["method"], scope["path"]
        if path.startswith(ADMIN + "/"):
            await self.admin(scope, receive, send)
            return
        self.seq += 1
        entry: dict[str, Any] = {"seq": self.seq, "method": method, "path": path, "status": None, "fault": False}
        self.log.append(entry)
        del self.log[:-1000]
        fault = next((f for f in self.queue if f.matches(method, path)), None)
        if fault is None:
            await self.app(scope, receive, self.recording(entry, send))
            return
        fault.count -= 1
        if fault.count <= 0:
            self.queue.remove(fault)
        receive = await self.received_in_full(receive)  # the request has arrived, whatever happens next
        if not fault.after:
            await asyncio.sleep(fault.delay)
            if fault.status is None:  # only slow
                await self.app(scope, receive, self.recording(entry, send))
            else:
                entry.update(status=fault.status, fault=True)
                await self.fault_response(fault)(scope, receive, send)
            return
        answer: list[Message] = []

        async def capture(message: Message) -> None:
            answer.append(message)

        await self.app(scope, receive, capture)  # carried out; the answer is held, then lost or late
        await asyncio.sleep(fault.delay)
        if fault.status is None:
            entry.update(status=answer[0]["status"] if answer else None)
            for message in answer:
                await send(message)
        else:
            entry.update(status=fault.status, fault=True)
            await self.fault_response(fault)(scope, receive, send)

    @staticmethod
    def recording(entry: dict[str, Any], send: Send) -> Send:
        async def recording_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                entry["status"] = message["status"]
            await send(message)

        return recording_send

    @staticmethod
    async def received_in_full(receive: Receive) -> Receive:
        """Read the whole body now, and hand it on: a request held by a fault still gets carried out."""
        messages: list[Message] = []
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request" or not message.get("more_body"):
                break

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        return replay

    @staticmethod
    def fault_response(fault: Fault) -> Response:
        return error_response(int(fault.status or 500), fault.error or f"injected fault: HTTP {fault.status}")

    async def admin(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        route = (request.method, scope["path"].removeprefix(ADMIN))
        if route == ("POST", "/faults"):
            body = await request.json()
            self.queue.append(Fault(**body))
            response: Response = JSONResponse({"faults": [vars(f) for f in self.queue]})
        elif route == ("DELETE", "/faults"):
            self.queue.clear()
            response = JSONResponse({"faults": []})
        elif route == ("GET", "/requests"):
            response = JSONResponse({"count": self.seq, "requests": self.log})
        elif route == ("DELETE", "/requests"):
            self.log.clear()
            self.seq = 0
            response = JSONResponse({"count": 0, "requests": []})
        else:
            response = error_response(404, f"no admin endpoint {request.method} {scope['path']}")
        await response(scope, receive, send)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Qdrant REST API stand-in on Qdrant Edge, for tests only.")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument(
        "--api-key",
        default=os.environ.get("QDRANT__SERVICE__API_KEY"),
        help="require this key (`api-key` header or bearer token)",
    )
    parser.add_argument(
        "--read-only-api-key",
        default=os.environ.get("QDRANT__SERVICE__READ_ONLY_API_KEY"),
        help="also accept this key, for reads only",
    )
    parser.add_argument("--storage", type=Path, default=None, help="keep collections here (default: a temp folder)")
    args = parser.parse_args(argv)
    app = build_app(Storage(args.storage), args.api_key, args.read_only_api_key)
    # uvicorn re-raises SIGTERM once it has shut down (the lifespan closed every shard): exit 0 then.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False, lifespan="on")


if __name__ == "__main__":
    main()
