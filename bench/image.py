"""The server image for the image phase: built as the stack tests build it, run under a workload,
and what it loaded meanwhile: the modules imported (`PYTHONPROFILEIMPORTTIME` lines) and the
shared libraries mapped into its processes (/proc/*/maps), set against every file of its venv.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from .errors import BenchError
from .paths import REPO

VENV_LIB = "/opt/venv/lib"  # every site-packages of the image is under it
BASE_SCRIPT = REPO / "tests" / "stack" / "build-base-image.sh"
SECRETS = ("qdrant_api_key", "qdrant_read_only_api_key", "mcp_auth_token", "grafana_admin_password")
IMPORT_LINE = re.compile(r"import time:\s+\d+ \|\s+\d+ \| *(\S+)")
LIST_FILES = (  # run in the image: every regular file under VENV_LIB with its size, as JSON
    "import json, os\n"
    f"root = {VENV_LIB!r}\n"
    "print(json.dumps({os.path.relpath(os.path.join(d, f), root): os.path.getsize(os.path.join(d, f))"
    " for d, _, fs in os.walk(root) for f in fs if not os.path.islink(os.path.join(d, f))}))"
)
# The container as compose runs it: read-only, /tmp and the data volume writable (the container's own /tmp).
RUN_FLAGS = ("--read-only", "--tmpfs", "/tmp", "--tmpfs", "/data:uid=10001,gid=10001")  # noqa: S108


def docker(*args: str, timeout: float = 600, env: Mapping[str, str] | None = None, stdin: str | None = None) -> str:
    """`docker ARGS`, its stdout; BenchError with its stderr when it fails."""
    try:
        done = subprocess.run(
            ["docker", *args], capture_output=True, text=True, timeout=timeout, env=env, input=stdin, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BenchError(f"docker {args[0]}: {exc}") from None
    if done.returncode != 0:
        raise BenchError(f"docker {' '.join(args[:3])} failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    return done.stdout


def base_image(requested: str | None) -> str:
    """The base to build on: `requested`, else the local bookworm stand-in the stack tests build
    (no registry is reachable here; tests/stack/build-base-image.sh makes it once and caches it)."""
    if requested:
        return requested
    try:
        made = subprocess.run([str(BASE_SCRIPT)], capture_output=True, text=True, timeout=1800, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BenchError(f"{BASE_SCRIPT.name}: {exc}") from None
    if made.returncode != 0:
        raise BenchError(f"{BASE_SCRIPT.name} failed: {made.stderr.strip()[-2000:]}")
    return made.stdout.strip().splitlines()[-1]


def build(tag: str, base: str, model_cache: Path, environ: Mapping[str, str]) -> float:
    """`docker compose build mcp-server` as `tag` on `base`, the model baked from model-cache/
    (filled from `model_cache`, as the stack tests do); the seconds it took."""
    for item in model_cache.iterdir():
        if item.is_dir() and item.name.startswith("models--"):
            shutil.copytree(item, REPO / "model-cache" / item.name, dirs_exist_ok=True, symlinks=False)
    with tempfile.TemporaryDirectory(prefix="bench-secrets-") as secrets:
        for name in SECRETS:  # compose reads the files its secrets name, even to build
            (Path(secrets) / name).write_text("unused-by-the-build\n")
        env = {**environ, "MCP_IMAGE": tag, "PYTHON_IMAGE": base, "SECRETS_DIR": secrets}
        started = time.perf_counter()
        docker(
            "compose",
            "-f",
            str(REPO / "compose.yaml"),
            "-p",
            "bench-image",
            "build",
            "mcp-server",
            env=env,
            timeout=3600,
        )
    return round(time.perf_counter() - started, 1)


def image_bytes(tag: str) -> int:
    return int(docker("image", "inspect", "-f", "{{.Size}}", tag).strip())


def venv_files(tag: str) -> dict[str, int]:
    """Every file under the image's VENV_LIB, relative to it, with its size."""
    listed = docker("run", "--rm", "--network", "none", "--entrypoint", "python", tag, "-c", LIST_FILES)
    return {path: int(size) for path, size in json.loads(listed).items()}


@dataclass
class Census:
    """What one or more runs of the image loaded."""

    modules: set[str] = field(default_factory=set)
    libraries: set[str] = field(default_factory=set)  # absolute paths mapped into a process

    def add(self, log: str, maps: str = "") -> None:
        self.modules |= {match.group(1) for match in IMPORT_LINE.finditer(log)}
        for line in maps.splitlines():
            path = line.split()[-1] if line.split() else ""
            if path.startswith("/") and ".so" in path:
                self.libraries.add(path)


@dataclass
class Running:
    name: str
    base_url: str


@contextmanager
def running(tag: str, env: Mapping[str, str], census: Census) -> Iterator[Running]:
    """The image serving HTTP on a published loopback port, importing with PYTHONPROFILEIMPORTTIME; at exit
    what it mapped and imported goes into `census` and the container is removed."""
    name = container_name()
    docker("run", "-d", "--name", name, "-p", "127.0.0.1::8000", *RUN_FLAGS, *_env_flags(env), tag)
    try:
        port = docker("port", name, "8000").strip().splitlines()[0].rsplit(":", 1)[-1]
        yield Running(name, f"http://127.0.0.1:{port}")
        maps = docker("exec", name, "sh", "-c", "cat /proc/[0-9]*/maps 2>/dev/null; true")
        logs = subprocess.run(["docker", "logs", name], capture_output=True, text=True, timeout=60, check=False)
        census.add(logs.stdout + logs.stderr, maps)
    finally:
        remove(name)


def container_name() -> str:
    return f"bench-image-{uuid.uuid4().hex[:8]}"


def stdio_argv(tag: str, env: Mapping[str, str], name: str) -> list[str]:
    """The command that runs the image as a stdio client spawns it, importing with PYTHONPROFILEIMPORTTIME."""
    flags = ("--rm", "-i", "--name", name, "--network", "none", *RUN_FLAGS, *_env_flags(env))
    return ["docker", "run", *flags, tag, "--transport", "stdio"]


def remove(name: str) -> None:
    """The container `name` gone, whatever state it was in."""
    subprocess.run(["docker", "rm", "-f", name], capture_output=True, timeout=60, check=False)


def _env_flags(env: Mapping[str, str]) -> list[str]:
    return [arg for key, value in {**env, "PYTHONPROFILEIMPORTTIME": "1"}.items() for arg in ("-e", f"{key}={value}")]


def loaded_files(files: Mapping[str, int], census: Census) -> set[str]:
    """The files of `files` (paths under VENV_LIB) a census shows loaded: each imported module's
    source and its bytecode, its extension module, and every mapped library."""
    by_module: dict[str, list[str]] = {}
    for path in files:
        parts = path.split("/")
        if len(parts) < 3 or parts[1] != "site-packages":  # python3.X/site-packages/...
            continue
        inner = parts[2:]
        if inner[-2:-1] == ["__pycache__"]:
            inner = [*inner[:-2], inner[-1].split(".")[0]]
        else:
            inner[-1] = inner[-1].split(".")[0]
        if inner[-1] == "__init__":
            inner = inner[:-1]
        by_module.setdefault(".".join(inner), []).append(path)
    loaded = {path for module in census.modules for path in by_module.get(module, [])}
    prefix = VENV_LIB + "/"
    loaded |= {library.removeprefix(prefix) for library in census.libraries if library.startswith(prefix)}
    return loaded & set(files)
