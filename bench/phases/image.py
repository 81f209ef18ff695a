"""Image: the server image's size with the model baked in, and what of its venv the server loads.

The image is built as the stack tests build it (`docker compose build mcp-server`, the model
baked from model-cache/, on `--image-base`, by default the local bookworm stand-in), or
`--image` names one built already. It then runs under a workload while importing with
PYTHONPROFILEIMPORTTIME: over HTTP on the embedded engine with hybrid search, a filterable
field, a token and every telemetry exporter on (OTLP over gRPC and over HTTP to an address
that refuses, Prometheus), every tool and the collections resource; then over stdio. The
modules imported and the libraries mapped are the census; each file of the venv counts as
loaded (a module's source and bytecode, its extension, a mapped library) or never loaded.
Quick runs skip the phase unless `--image` names an image (a build takes minutes).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from .. import image
from ..context import Context
from ..errors import BenchError
from ..progress import log
from ..provenance import source_fingerprint
from ..rawclient import RawClient
from ..report import at_most, number, table, target_row, targets_table
from ..stdioclient import StdioServer

NAME = "image"
SUMMARY = "the server image: docker image inspect size with the model baked in; the modules and libraries it loads"
TARGET_MB = 450.0
TOKEN = "bench-image-token-0123456789"  # noqa: S105  # a throwaway container's, on loopback
HTTP_ENV = {
    "MCP_AUTH_TOKEN": TOKEN,
    "QDRANT_HYBRID_SEARCH": "true",
    "FILTERABLE_FIELDS": json.dumps(
        [{"name": "topic", "description": "a topic", "field_type": "keyword", "condition": "=="}]
    ),
    "OTEL_TRACES_EXPORTER": "otlp",
    "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc",
    "OTEL_METRICS_EXPORTER": "otlp,prometheus",
    "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL": "http/protobuf",
    "OTEL_LOGS_EXPORTER": "otlp",
    "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL": "grpc",
    "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9",  # refuses: the exporters load, then fail quietly
    "OTEL_EXPORTER_PROMETHEUS_HOST": "0.0.0.0",  # noqa: S104  # inside the container, not published
}
STDIO_ENV = {"QDRANT_URL": ":memory:"}
STDIO_INITIALIZE = {
    "protocolVersion": "2025-06-18",
    "capabilities": {},
    "clientInfo": {"name": "bench", "version": "0"},
}
READY_LIMIT_S = 300.0
CALL_LIMIT_S = 600.0  # a store-many of 600 documents on a loaded 2-core machine
SETTLE_S = 5.0  # after the workload: the engine's index build (a child process) and the exporters run
TOP = 15


async def run(context: Context) -> dict[str, Any]:
    options = context.options
    if context.quick and not options.image:
        return {
            "skipped": "quick run: building the image takes minutes (--image TAG measures one built already)",
            "errors": 0,
            "fatal": None,
        }
    result: dict[str, Any] = {"errors": 0, "fatal": None, "source": source_fingerprint()}
    tag = options.image
    if tag is None:
        base = await asyncio.to_thread(image.base_image, options.image_base)
        tag = f"qdrant-mcp-bench:image-{result['source']['server_src_sha256'][:12]}"
        log(f"image: building {tag} on {base} ...")
        result.update(
            base=base, build_s=await asyncio.to_thread(image.build, tag, base, context.model_cache, os.environ)
        )
        result["base_mb"] = round(image.image_bytes(base) / 1e6, 1)
    result["image"] = tag
    result["image_mb"] = round(image.image_bytes(tag) / 1e6, 1)
    if result.get("base_mb") is not None:
        result["over_base_mb"] = round(result["image_mb"] - result["base_mb"], 1)
    census = image.Census()
    result["http"] = await _http_workload(tag, census)
    result["stdio"] = await _stdio_workload(tag, census, context.out_dir)
    result["errors"] = result["http"]["errors"] + result["stdio"]["errors"]
    files = {path: size for path, size in image.venv_files(tag).items() if ".dist-info/" not in path}
    result.update(_accounting(files, census))
    result["targets"] = [
        target_row(
            "image size, model baked in (MB, docker image inspect)",
            result["image_mb"],
            f"≤ {TARGET_MB:g} MB",
            at_most(result["image_mb"], TARGET_MB),
        )
    ]
    return result


async def _http_workload(tag: str, census: image.Census) -> dict[str, Any]:
    """Every tool and the collections resource over HTTP; what failed."""
    outcome: dict[str, Any] = {"errors": 0, "failures": []}
    try:
        await _calls(tag, census, outcome)
    except (httpx.HTTPError, RuntimeError) as exc:
        raise BenchError(f"the HTTP workload failed: {type(exc).__name__}: {exc}") from exc
    outcome["errors"] = len(outcome["failures"])
    return outcome


async def _calls(tag: str, census: image.Census, outcome: dict[str, Any]) -> None:
    with image.running(tag, HTTP_ENV, census) as container:
        await _ready(container.base_url)
        auth = {"Authorization": f"Bearer {TOKEN}"}
        async with RawClient(container.base_url + "/mcp", read_timeout_seconds=CALL_LIMIT_S, headers=auth) as client:
            tools = {tool.name for tool in (await client.list_tools()).tools}
            entries = [
                {"information": f"document {i} " + "word " * 40, "metadata": {"topic": "bulk"}} for i in range(600)
            ]
            calls: list[tuple[str, dict[str, Any]]] = [
                ("qdrant-store", {"information": "one memory", "metadata": {"topic": "one"}, "collection_name": "c"}),
                ("qdrant-store-many", {"entries": entries, "collection_name": "c"}),
                ("qdrant-find", {"query": "a memory", "topic": "one", "collection_name": "c"}),
                ("qdrant-collection-info", {"collection_name": "c"}),
                ("qdrant-list-collections", {}),
                ("qdrant-delete", {"metadata_match": {"topic": "one"}, "collection_name": "c"}),
            ]
            outcome["tools"] = sorted(tools)
            for name, arguments in calls:
                answer = await client.call_tool(name, arguments)
                if answer.is_error:
                    outcome["failures"].append(f"{name}: {answer.content[0].text if answer.content else ''}"[:300])
            listed = await client.request("resources/list")
            for resource in listed.get("resources", []):
                await client.request("resources/read", {"uri": resource["uri"]})
        await asyncio.sleep(SETTLE_S)


async def _stdio_workload(tag: str, census: image.Census, log_dir: Path) -> dict[str, Any]:
    """initialize, a store and a find over stdio, each sent once the previous is answered; what failed."""
    failures = []
    name = image.container_name()
    server = StdioServer(image.stdio_argv(tag, STDIO_ENV, name), os.environ, log_dir, log_dir / "image-stdio.log")
    try:
        async with server:
            await server.request("initialize", STDIO_INITIALIZE, CALL_LIMIT_S)
            await server.notify("notifications/initialized")
            for tool, arguments in (
                ("qdrant-store", {"information": "stdio", "collection_name": "s"}),
                ("qdrant-find", {"query": "stdio", "collection_name": "s"}),
            ):
                answer = await server.request("tools/call", {"name": tool, "arguments": arguments}, CALL_LIMIT_S)
                if answer.get("isError"):
                    failures.append(f"{tool}: {answer.get('content')}"[:300])
    except BenchError as exc:
        failures.append(str(exc)[:300])
    finally:
        await asyncio.to_thread(image.remove, name)
    census.add(server.log())
    return {"errors": len(failures), "failures": failures}


async def _ready(base_url: str) -> None:
    deadline = time.monotonic() + READY_LIMIT_S
    async with httpx.AsyncClient(timeout=2.0) as http:
        while time.monotonic() < deadline:
            try:
                if (await http.get(base_url + "/readyz")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.2)
    raise BenchError(f"the container at {base_url} was not ready within {READY_LIMIT_S} s")


def _accounting(files: dict[str, int], census: image.Census) -> dict[str, Any]:
    """The venv's bytes loaded and never loaded, by top-level package and by file."""
    loaded = image.loaded_files(files, census)
    never = {path: size for path, size in files.items() if path not in loaded}
    packages: Counter[str] = Counter()
    for path, size in never.items():
        parts = path.split("/")
        packages[parts[2] if len(parts) > 3 and parts[1] == "site-packages" else "/".join(parts[:2])] += size
    return {
        "modules_imported": len(census.modules),
        "libraries_mapped": len(census.libraries),
        "venv_mb": round(sum(files.values()) / 1e6, 1),
        "loaded_mb": round(sum(files[path] for path in loaded) / 1e6, 1),
        "never_loaded_mb": round(sum(never.values()) / 1e6, 1),
        "never_loaded_packages": [[name, round(size / 1e6, 2)] for name, size in packages.most_common(TOP)],
        "never_loaded_files": [
            [path, round(size / 1e6, 2)] for path, size in sorted(never.items(), key=lambda kv: -kv[1])[:TOP]
        ],
        "modules": sorted(census.modules),
        "libraries": sorted(census.libraries),
    }


def markdown(result: dict[str, Any]) -> str:
    built = (
        f"built on `{result['base']}` ({number(result.get('base_mb'), 1)} MB) in {number(result.get('build_s'), 0)} s"
        if result.get("base")
        else "given with --image"
    )
    parts = [
        f"`{result['image']}`, {built}: **{number(result['image_mb'], 1)} MB**"
        + (f" ({number(result['over_base_mb'], 1)} MB over the base)" if result.get("over_base_mb") is not None else "")
        + ".",
        "",
        targets_table(result["targets"]),
        "",
        f"Under the workload the server imported {result['modules_imported']} modules and mapped "
        f"{result['libraries_mapped']} shared libraries. Its venv (metadata aside) holds "
        f"{number(result['venv_mb'], 1)} MB: "
        f"{number(result['loaded_mb'], 1)} MB loaded, {number(result['never_loaded_mb'], 1)} MB never loaded here "
        "(the remote engine, local mode and migrate load some of it: the JSON lists every module).",
        "",
        "Never loaded, by package:",
        "",
        table(["package", "MB"], result["never_loaded_packages"]),
        "",
        "Never loaded, the largest files:",
        "",
        table(["file", "MB"], result["never_loaded_files"]),
    ]
    for side in ("http", "stdio"):
        for failure in result.get(side, {}).get("failures", []):
            parts.append(f"- {side} failure: {failure}")
    return "\n".join(parts)
