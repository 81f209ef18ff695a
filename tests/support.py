"""Running the server as users run it: a subprocess on a loopback port; reading the compose files.

The helper lives in bench/serverproc.py, shared with the benchmark (pytest.ini puts the
repository root on sys.path for `import bench`); this module keeps the names tests import.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from bench.serverproc import ServerNotReady, ServerProcess, free_port, spawn_server, wait_for

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"

__all__ = [
    "REPO",
    "SHARED",
    "ServerNotReady",
    "ServerProcess",
    "compose_layers",
    "free_port",
    "spawn_server",
    "wait_for",
]


class ComposeLoader(yaml.SafeLoader):
    """YAML as Compose reads it: `!reset` and `!override` (merge controls) load as their value."""


for _tag in ("!reset", "!override"):
    ComposeLoader.add_constructor(
        _tag,
        lambda loader, node: (
            loader.construct_sequence(node)
            if isinstance(node, yaml.SequenceNode)
            else loader.construct_mapping(node)
            if isinstance(node, yaml.MappingNode)
            else loader.construct_scalar(node) or None
        ),
    )


def compose_layers() -> dict[str, Any]:
    """compose.yaml as written, its included layers merged (services, secrets, volumes), before
    interpolation: for checks of what the files say, where `docker compose config` would
    resolve the very ${...} defaults being checked. A service that `extends` another has the
    other's settings under its own."""
    top = yaml.load((REPO / "compose.yaml").read_text(), ComposeLoader)  # noqa: S506  # a SafeLoader
    merged: dict[str, Any] = {"services": {}, "secrets": {}, "volumes": {}}
    for entry in top.get("include", []):
        path = entry["path"] if isinstance(entry, dict) else entry
        layer = yaml.load((REPO / path).read_text(), ComposeLoader)  # noqa: S506  # a SafeLoader
        for key, values in merged.items():
            values.update(layer.get(key) or {})
    services = merged["services"]
    for name, service in list(services.items()):
        base = service.get("extends")  # `extends: NAME`, or `{file: ..., service: NAME}`
        if base:
            extended = services[base["service"] if isinstance(base, dict) else base]
            inherited = {key: value for key, value in extended.items() if key != "profiles"}
            services[name] = {**inherited, **{key: value for key, value in service.items() if key != "extends"}}
    return merged
