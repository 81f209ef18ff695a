#!/usr/bin/env python3
"""Side-by-side benchmark: our `qdrant_mcp_memory` server against the official `mcp-server-qdrant==0.8.1`.

Run with the repo venv's python (it has the `mcp` 2.3.0 client SDK):

    .venv/bin/python bench/run.py                 # full run (N=1000 stores, M=1000 finds, store-many 1000)
    .venv/bin/python bench/run.py --quick         # CI smoke: small counts, exits non-zero on any error
    .venv/bin/python bench/run.py --only ours     # one server only (no official venv needed)
    .venv/bin/python bench/run.py --profile       # also profile each server under 8-client finds (py-spy)

Each server is spawned as a subprocess on 127.0.0.1, one at a time, with embedded in-memory Qdrant
(`QDRANT_URL=:memory:`), the same offline fastembed model cache and streamable HTTP. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import fcntl
import glob
import importlib.metadata
import json
import logging
import math
import os
import platform
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

from words import VERBS, WORDS  # noqa: E402

OFFICIAL_PIN = "mcp-server-qdrant==0.8.1"
MODEL = "sentence-transformers/all-MiniLM-L6-v2"
MODEL_DIR = "models--Qdrant--all-MiniLM-L6-v2-onnx"
MODERN = "2026-07-28"
COLLECTION = "bench"

# Servers' own env knobs that must not leak in from the caller's shell.
SCRUB_PREFIXES = ("QDRANT_", "FASTMCP_", "MCP_", "OTEL_", "EMBEDDING_", "TOOL_", "LOG_")
SCRUB_NAMES = ("COLLECTION_NAME", "FILTERABLE_FIELDS", "LOG_LEVEL", "LOG_FORMAT")


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class BenchError(RuntimeError):
    pass


# --------------------------------------------------------------------------------------------
# Environment: caches, official venv, model cache, tool venv
# --------------------------------------------------------------------------------------------


def cache_dir() -> Path:
    d = Path(os.environ.get("BENCH_CACHE") or Path.home() / ".cache" / "qdrant-mcp-bench")
    d.mkdir(parents=True, exist_ok=True)
    return d


@contextlib.contextmanager
def file_lock(path: Path):
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def base_python() -> str:
    """The interpreter new venvs are made from: the repo venv's base python (same version as ours)."""
    return os.environ.get("BENCH_OFFICIAL_PYTHON") or getattr(sys, "_base_executable", None) or sys.executable


def ensure_venv(path: Path, requirements: list[str], marker_text: str, what: str) -> Path:
    """Create (once) a throwaway venv with `requirements`; marker file written last = complete."""
    marker = path / ".bench-complete"
    with file_lock(path.parent / f".{path.name}.lock"):
        if marker.is_file() and marker.read_text() == marker_text:
            return path
        t0 = time.perf_counter()
        log(f"creating {what} venv at {path} ({' '.join(requirements)}) ...")
        shutil.rmtree(path, ignore_errors=True)
        try:
            subprocess.run([base_python(), "-m", "venv", str(path)], check=True, timeout=300)
            out = subprocess.run(
                [
                    str(path / "bin" / "python"),
                    "-m",
                    "pip",
                    "install",
                    "--disable-pip-version-check",
                    "-q",
                    *requirements,
                ],
                capture_output=True,
                text=True,
                timeout=900,
            )
        except (subprocess.SubprocessError, OSError) as exc:
            shutil.rmtree(path, ignore_errors=True)
            raise BenchError(f"could not create the {what} venv at {path}: {exc}") from exc
        if out.returncode != 0:
            shutil.rmtree(path, ignore_errors=True)
            tail = "\n".join(line for line in (out.stdout + out.stderr).splitlines() if "is ignored" not in line)
            raise BenchError(
                f"could not create the {what} venv at {path}: pip install {' '.join(requirements)} "
                f"exited {out.returncode} (no network to PyPI?)\n{tail[-3000:]}"
            )
        marker.write_text(marker_text)
        log(f"{what} venv ready in {time.perf_counter() - t0:.1f} s")
        return path


def ensure_official_venv() -> Path:
    venv = ensure_venv(cache_dir() / "official-venv", [OFFICIAL_PIN], OFFICIAL_PIN, "official server")
    exe = venv / "bin" / "mcp-server-qdrant"
    if not exe.exists():
        raise BenchError(f"{exe} missing after install")
    return venv


def ensure_pyspy() -> Path:
    explicit = os.environ.get("BENCH_PYSPY")
    if explicit:
        return Path(explicit)
    found = shutil.which("py-spy")
    if found:
        return Path(found)
    venv = ensure_venv(cache_dir() / "tools-venv", ["py-spy"], "py-spy", "profiler tool")
    return venv / "bin" / "py-spy"


def model_cache_ok(d: Path) -> bool:
    return bool(glob.glob(str(d / MODEL_DIR / "snapshots" / "*" / "model.onnx")))


def resolve_model_cache() -> Path:
    env = os.environ.get("FASTEMBED_CACHE_PATH")
    if env:
        if not model_cache_ok(Path(env)):
            raise BenchError(f"FASTEMBED_CACHE_PATH={env} has no {MODEL_DIR}/snapshots/*/model.onnx")
        return Path(env)
    candidates = [cache_dir() / "fastembed", Path("/work/cache/fastembed")]
    for c in candidates:
        if model_cache_ok(c):
            return c
    builder = REPO.parent / "shared" / "offline-models" / "build-fastembed-cache"
    target = cache_dir() / "fastembed"
    if not builder.exists():
        raise BenchError(f"no fastembed model cache: set FASTEMBED_CACHE_PATH, or provide {builder} to build one")
    log(f"building the offline model cache in {target} ...")
    subprocess.run(["bash", str(builder), str(target)], check=True, timeout=900)
    if not model_cache_ok(target):
        raise BenchError(f"{builder} did not produce a model in {target}")
    return target


def source_fingerprint() -> dict[str, Any]:
    """Identify the exact server code benchmarked (the tree may be uncommitted work in progress)."""
    import hashlib

    h = hashlib.sha256()
    files = sorted((REPO / "server" / "src").rglob("*.py"))
    newest = 0.0
    for f in files:
        h.update(str(f.relative_to(REPO)).encode())
        h.update(f.read_bytes())
        newest = max(newest, f.stat().st_mtime)
    out: dict[str, Any] = {
        "server_src_sha256": h.hexdigest()[:16],
        "files": len(files),
        "newest_mtime": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(newest)) if files else None,
    }
    with contextlib.suppress(Exception):
        r = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10
        )
        out["git_head"] = r.stdout.strip() or None
    return out


def pkg_versions(python: str, names: list[str]) -> dict[str, str]:
    code = (
        "import importlib.metadata as m, json, sys\n"
        "out = {}\n"
        "for n in sys.argv[1:]:\n"
        "    try: out[n] = m.version(n)\n"
        "    except Exception: pass\n"
        "print(json.dumps(out))\n"
    )
    try:
        r = subprocess.run([python, "-c", code, *names], capture_output=True, text=True, timeout=60)
        return json.loads(r.stdout)
    except Exception:
        return {}


VERSION_PKGS = [
    "mcp-server-qdrant",
    "qdrant-mcp",
    "fastmcp",
    "mcp",
    "qdrant-client",
    "fastembed",
    "onnxruntime",
    "tokenizers",
    "pydantic",
    "uvicorn",
    "starlette",
    "numpy",
]


# --------------------------------------------------------------------------------------------
# Workload generation (seeded, identical for both servers)
# --------------------------------------------------------------------------------------------


def _rng(seed: int, label: str) -> random.Random:
    return random.Random(seed * 1_000_003 + zlib.crc32(label.encode()))


def gen_documents(seed: int, label: str, n: int) -> list[dict[str, Any]]:
    rng = _rng(seed, "docs:" + label)
    tags = ["work", "home", "travel", "health", "finance", "hobby"]
    docs = []
    for i in range(n):
        k = rng.randint(12, 40)
        words = [rng.choice(WORDS) for _ in range(k)]
        words.insert(rng.randint(0, 3), rng.choice(VERBS))
        text = " ".join(words[:k])
        text = text[0].upper() + text[1:] + "."
        docs.append(
            {"information": text, "metadata": {"source": "bench", "phase": label, "i": i, "tag": rng.choice(tags)}}
        )
    return docs


def gen_queries(seed: int, label: str, n: int, avoid: set[str]) -> list[str]:
    rng = _rng(seed, "queries:" + label)
    out: list[str] = []
    tries = 0
    while len(out) < n:
        tries += 1
        if tries > n * 100:
            raise BenchError("could not generate enough distinct queries")
        q = " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 6)))
        if q in avoid:
            continue
        avoid.add(q)
        out.append(q)
    return out


# --------------------------------------------------------------------------------------------
# Process helpers (/proc)
# --------------------------------------------------------------------------------------------

CLK_TCK = os.sysconf("SC_CLK_TCK")


def _children_map() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            data = Path(stat).read_text()
        except OSError:
            continue
        rest = data[data.rfind(")") + 2 :].split()
        pid = int(stat.split("/")[2])
        kids.setdefault(int(rest[1]), []).append(pid)
    return kids


def proc_tree(pid: int) -> list[int]:
    kids = _children_map()
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def tree_rss_kb(pid: int) -> tuple[int, int]:
    """(sum of VmRSS, sum of VmHWM) over pid and its descendants, in kB."""
    rss = hwm = 0
    for p in proc_tree(pid):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    rss += int(line.split()[1])
                elif line.startswith("VmHWM:"):
                    hwm += int(line.split()[1])
        except OSError:
            pass
    return rss, hwm


def tree_cpu_s(pid: int) -> float:
    total = 0
    for p in proc_tree(pid):
        try:
            data = Path(f"/proc/{p}/stat").read_text()
        except OSError:
            continue
        rest = data[data.rfind(")") + 2 :].split()
        total += int(rest[11]) + int(rest[12]) + int(rest[13]) + int(rest[14])
    return total / CLK_TCK


def thread_cpu_s(pid: int, tid: int) -> float:
    try:
        data = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
    except OSError:
        return 0.0
    rest = data[data.rfind(")") + 2 :].split()
    return (int(rest[11]) + int(rest[12])) / CLK_TCK


def machine_busy_s() -> float:
    """CPU seconds spent busy on the whole machine (all cores), from /proc/stat."""
    with open("/proc/stat") as fh:
        vals = [int(x) for x in fh.readline().split()[1:]]
    idle = vals[3] + (vals[4] if len(vals) > 4 else 0)
    return (sum(vals[:8]) - idle) / CLK_TCK


def tree_threads(pid: int) -> int:
    n = 0
    for p in proc_tree(pid):
        try:
            n += len(os.listdir(f"/proc/{p}/task"))
        except OSError:
            pass
    return n


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        try:
            s.connect(("127.0.0.1", port))
            return True
        except OSError:
            return False


# --------------------------------------------------------------------------------------------
# Servers
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass
class ServerSpec:
    name: str
    argv: list[str]
    env: dict[str, str]
    url: str
    readyz: str | None
    python: str
    modes: list[str]


def base_env(model_cache: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(SCRUB_PREFIXES) and k not in SCRUB_NAMES}
    env.update(
        {
            "QDRANT_URL": ":memory:",
            "COLLECTION_NAME": COLLECTION,
            "FASTEMBED_CACHE_PATH": str(model_cache),
            "HF_HUB_OFFLINE": "1",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def official_spec(venv: Path, model_cache: Path, port: int) -> ServerSpec:
    env = base_env(model_cache)
    env.update({"FASTMCP_SERVER_HOST": "127.0.0.1", "FASTMCP_SERVER_PORT": str(port)})
    return ServerSpec(
        name="official",
        argv=[str(venv / "bin" / "mcp-server-qdrant"), "--transport", "streamable-http"],
        env=env,
        url=f"http://127.0.0.1:{port}/mcp/",  # /mcp answers 307 -> /mcp/
        readyz=None,
        python=str(venv / "bin" / "python"),
        modes=["legacy"],
    )


def ours_spec(python: str, model_cache: Path, port: int, modern: bool, extra_env: list[str] = ()) -> ServerSpec:
    env = base_env(model_cache)
    env.update({"OTEL_SDK_DISABLED": "true", "MCP_HOST": "127.0.0.1"})
    for kv in extra_env:
        k, sep, v = kv.partition("=")
        if not sep:
            raise BenchError(f"--ours-env wants K=V, got {kv!r}")
        env[k] = v
    return ServerSpec(
        name="ours",
        argv=[python, "-m", "qdrant_mcp_memory", "--transport", "streamable-http", "--port", str(port)],
        env=env,
        url=f"http://127.0.0.1:{port}/mcp",
        readyz=f"http://127.0.0.1:{port}/readyz",
        python=python,
        modes=["legacy", MODERN] if modern else ["legacy"],
    )


class RunningServer:
    def __init__(self, spec: ServerSpec, port: int, log_path: Path):
        self.spec = spec
        self.port = port
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None
        self.t_spawn = 0.0
        self.workdir = tempfile.mkdtemp(prefix=f"bench-{spec.name}-")

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._logf = open(self.log_path, "wb")
        self.t_spawn = time.perf_counter()
        # cwd: an empty temp dir, so no stray .env is read; own session so we can kill the group.
        self.proc = subprocess.Popen(
            self.spec.argv,
            env=self.spec.env,
            cwd=self.workdir,
            stdin=subprocess.DEVNULL,
            stdout=self._logf,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def log_tail(self, n: int = 40) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-n:])

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def sigterm(self, timeout: float = 10.0) -> dict[str, Any]:
        assert self.proc is not None
        if self.proc.poll() is not None:
            return {"returncode": self.proc.returncode, "exited_before_sigterm": True, "shutdown_s": 0.0}
        t0 = time.perf_counter()
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
            res = {"returncode": rc, "timed_out": False}
        except subprocess.TimeoutExpired:
            self.kill()
            res = {"returncode": None, "timed_out": True, "killed_rc": self.proc.returncode}
        res["shutdown_s"] = round(time.perf_counter() - t0, 3)
        return res

    def kill(self) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(Exception):
            self.proc.wait(5)

    def close(self) -> None:
        if self.proc is not None:
            # leftovers in the server's own process group (the server itself already reaped)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            if self.proc.poll() is None:
                self.kill()
        with contextlib.suppress(Exception):
            self._logf.close()
        shutil.rmtree(self.workdir, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# MCP client workload
# --------------------------------------------------------------------------------------------


def pct(sorted_vals: list[float], q: float) -> float:
    if not sorted_vals:
        return float("nan")
    if len(sorted_vals) == 1:
        return sorted_vals[0]
    pos = (len(sorted_vals) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return sorted_vals[lo] + (sorted_vals[hi] - sorted_vals[lo]) * (pos - lo)


def _err_text(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup):
        return " | ".join(_err_text(e) for e in exc.exceptions[:3])
    return f"{type(exc).__name__}: {exc}"[:300]


def _result_text(res: Any) -> str:
    parts = []
    for c in getattr(res, "content", None) or []:
        t = getattr(c, "text", None)
        if t:
            parts.append(t)
    return "\n".join(parts)


class RawClient:
    """A minimal streamable-HTTP MCP client (legacy handshake) on plain httpx, for `--client raw`.

    Cross-check only: it shows how much of the measured cost is the SDK client's own CPU, which
    shares the 2 cores with the server. The default `--client sdk` is the real `mcp` client.
    """

    def __init__(self, url: str, mode: str = "legacy", read_timeout_seconds: float = 60.0):
        import httpx

        if mode != "legacy":
            raise BenchError("--client raw speaks the legacy handshake only")
        self.url = url
        self.http = httpx.AsyncClient(timeout=read_timeout_seconds)
        self.sid: str | None = None
        self.proto = "2025-06-18"
        self.next_id = 0

    async def _post(self, payload: dict[str, Any]) -> Any:
        headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
        if self.sid:
            headers["mcp-session-id"] = self.sid
            headers["mcp-protocol-version"] = self.proto
        r = await self.http.post(self.url, content=json.dumps(payload), headers=headers)
        if r.headers.get("mcp-session-id"):
            self.sid = r.headers["mcp-session-id"]
        r.raise_for_status()
        if "id" not in payload:
            return None
        if r.headers.get("content-type", "").startswith("text/event-stream"):
            for line in r.text.splitlines():
                if line.startswith("data:"):
                    msg = json.loads(line[5:])
                    if msg.get("id") == payload["id"]:
                        break
            else:
                raise RuntimeError("no response in the SSE stream")
        else:
            msg = r.json()
        if "error" in msg:
            raise RuntimeError(f"JSON-RPC error {msg['error']}")
        return msg["result"]

    async def request(self, method: str, params: dict[str, Any] | None = None) -> Any:
        self.next_id += 1
        return await self._post({"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params or {}})

    async def __aenter__(self) -> RawClient:
        res = await self.request(
            "initialize",
            {
                "protocolVersion": self.proto,
                "capabilities": {},
                "clientInfo": {"name": "qdrant-mcp-bench-raw", "version": "0"},
            },
        )
        self.proto = res.get("protocolVersion", self.proto)
        await self._post({"jsonrpc": "2.0", "method": "notifications/initialized"})
        return self

    async def __aexit__(self, *exc: Any) -> None:
        with contextlib.suppress(Exception):
            if self.sid:
                await self.http.delete(self.url, headers={"mcp-session-id": self.sid})
        await self.http.aclose()

    async def list_tools(self, cache_mode: str = "bypass") -> Any:
        from types import SimpleNamespace

        res = await self.request("tools/list")
        return SimpleNamespace(tools=[SimpleNamespace(name=t["name"]) for t in res.get("tools", [])])

    async def call_tool(self, name: str, arguments: dict[str, Any], read_timeout_seconds: float | None = None) -> Any:
        from types import SimpleNamespace

        res = await self.request("tools/call", {"name": name, "arguments": arguments})
        return SimpleNamespace(
            is_error=bool(res.get("isError")),
            content=[SimpleNamespace(text=c.get("text")) for c in res.get("content", [])],
        )


CLIENT_KIND = "sdk"


def make_client(url: str, mode: str, read_timeout_seconds: float) -> Any:
    if CLIENT_KIND == "raw":
        return RawClient(url, mode, read_timeout_seconds)
    from mcp.client import Client

    return Client(url, mode=mode, read_timeout_seconds=read_timeout_seconds)


async def run_phase(
    server: RunningServer,
    mode: str,
    phase: str,
    clients: int,
    ops: list[tuple[str, Any]],
    *,
    call_timeout: float = 60.0,
    phase_timeout: float = 600.0,
    per_doc: int = 1,
) -> dict[str, Any]:
    """Run `ops` ((tool, args) or ("tools/list", None)) over `clients` concurrent sessions."""

    lat: list[float] = []
    errors = 0
    error_samples: list[str] = []
    empty = 0
    next_i = 0

    def take() -> int | None:
        nonlocal next_i
        if next_i >= len(ops):
            return None
        i = next_i
        next_i += 1
        return i

    async def worker(c: Any) -> None:
        nonlocal errors, empty
        while (i := take()) is not None:
            tool, args = ops[i]
            t = time.perf_counter()
            try:
                if tool == "tools/list":
                    r = await c.list_tools(cache_mode="bypass")
                    bad = not r.tools
                    msg = "empty tools/list"
                else:
                    r = await c.call_tool(tool, args, read_timeout_seconds=call_timeout)
                    bad = bool(getattr(r, "is_error", False))
                    msg = "isError: " + _result_text(r)[:200]
                    if not bad and tool == "qdrant-find" and "<entry>" not in _result_text(r):
                        empty += 1
            except Exception as exc:  # noqa: BLE001 - every failure counts as an error
                bad, msg = True, _err_text(exc)
            lat.append(time.perf_counter() - t)
            if bad:
                errors += 1
                if len(error_samples) < 5:
                    error_samples.append(msg)

    result: dict[str, Any] = {"phase": phase, "mode": mode, "clients": clients, "n": len(ops) * per_doc}
    async with contextlib.AsyncExitStack() as stack:
        sessions = []
        try:
            for _ in range(clients):
                c = make_client(server.spec.url, mode, call_timeout)
                sessions.append(await asyncio.wait_for(stack.enter_async_context(c), 30))
        except Exception as exc:  # noqa: BLE001
            result.update(
                errors=len(ops) * per_doc, error_samples=[f"connect: {_err_text(exc)}"], wall_s=0.0, connect_failed=True
            )
            return result
        pid = server.proc.pid
        srv_cpu0, main_cpu0, mach0 = tree_cpu_s(pid), thread_cpu_s(pid, pid), machine_busy_s()
        cli_cpu0 = time.process_time()
        t0 = time.perf_counter()
        try:
            await asyncio.wait_for(asyncio.gather(*(worker(s) for s in sessions)), phase_timeout)
        except asyncio.TimeoutError:
            missing = len(ops) - len(lat)
            errors += missing
            error_samples.append(f"phase timeout after {phase_timeout} s ({missing} ops not done)")
        wall = time.perf_counter() - t0
        cli_cpu = time.process_time() - cli_cpu0
        srv_cpu = tree_cpu_s(pid) - srv_cpu0
        main_cpu = thread_cpu_s(pid, pid) - main_cpu0
        mach = machine_busy_s() - mach0
        rss_kb, _ = tree_rss_kb(pid)
    lat.sort()
    ms = [x * 1000 for x in lat]
    n_ops = len(ops)
    result.update(
        {
            "errors": errors * per_doc if per_doc > 1 else errors,
            "error_samples": error_samples,
            "empty_results": empty,
            "wall_s": round(wall, 4),
            "throughput": round(n_ops * per_doc / wall, 2) if wall > 0 else None,
            "p50_ms": round(pct(ms, 0.50), 3),
            "p95_ms": round(pct(ms, 0.95), 3),
            "p99_ms": round(pct(ms, 0.99), 3),
            "mean_ms": round(sum(ms) / len(ms), 3) if ms else None,
            "max_ms": round(ms[-1], 3) if ms else None,
            "client_cpu_util": round(cli_cpu / wall, 3) if wall > 0 else None,
            "server_cpu_util": round(srv_cpu / wall, 3) if wall > 0 else None,
            "server_cpu_ms_per_op": round(srv_cpu * 1000 / (n_ops * per_doc), 3) if n_ops else None,
            # the server's main thread runs the event loop (HTTP, MCP SDK, JSON/pydantic, anything not offloaded)
            "server_main_thread_util": round(main_cpu / wall, 3) if wall > 0 else None,
            "server_main_thread_ms_per_op": round(main_cpu * 1000 / (n_ops * per_doc), 3) if n_ops else None,
            # cores used by everything else on the machine (other users' builds/tests): the noise indicator
            "other_cpu_util": round(max(0.0, mach - srv_cpu - cli_cpu) / wall, 2) if wall > 0 else None,
            "server_rss_mb": round(rss_kb / 1024, 1),
            "client_cpu_ms_per_op": round(cli_cpu * 1000 / (n_ops * per_doc), 3) if n_ops else None,
        }
    )
    return result


async def wait_ready(server: RunningServer, timeout: float) -> dict[str, Any]:
    """Spawn -> port open -> first answered tools/list (legacy handshake); also /readyz 200 if any."""
    import httpx
    from mcp.client import Client

    deadline = server.t_spawn + timeout
    out: dict[str, Any] = {}
    while not port_open(server.port):
        if not server.alive():
            raise BenchError(
                f"{server.spec.name} exited with {server.proc.returncode} before listening:\n{server.log_tail()}"
            )
        if time.perf_counter() > deadline:
            raise BenchError(f"{server.spec.name} did not listen within {timeout} s:\n{server.log_tail()}")
        await asyncio.sleep(0.005)
    out["port_open_s"] = round(time.perf_counter() - server.t_spawn, 3)

    async def readyz() -> None:
        if not server.spec.readyz:
            return
        async with httpx.AsyncClient(timeout=2.0) as http:
            last = None
            while time.perf_counter() < deadline:
                try:
                    r = await http.get(server.spec.readyz)
                    last = r.status_code
                    if r.status_code == 200:
                        out["readyz_s"] = round(time.perf_counter() - server.t_spawn, 3)
                        return
                except httpx.HTTPError as exc:
                    last = type(exc).__name__
                await asyncio.sleep(0.01)
            out["readyz_s"] = None
            out["readyz_last"] = last

    async def tools_list() -> None:
        last_err = None
        while time.perf_counter() < deadline:
            if not server.alive():
                raise BenchError(f"{server.spec.name} exited with {server.proc.returncode}:\n{server.log_tail()}")
            try:
                async with Client(server.spec.url, mode="legacy") as c:
                    r = await asyncio.wait_for(c.list_tools(cache_mode="bypass"), 10)
                    out["ready_s"] = round(time.perf_counter() - server.t_spawn, 3)
                    out["tools"] = sorted(t.name for t in r.tools)
                    return
            except Exception as exc:  # noqa: BLE001
                last_err = _err_text(exc)
                await asyncio.sleep(0.01)
        raise BenchError(
            f"{server.spec.name}: no tools/list answer within {timeout} s ({last_err}):\n{server.log_tail()}"
        )

    await asyncio.gather(tools_list(), readyz())
    return out


# --------------------------------------------------------------------------------------------
# Profiling (py-spy)
# --------------------------------------------------------------------------------------------

# First match walking a stack from the leaf towards the root decides the category.
# py-spy prints paths relative to site-packages / the stdlib ("anyio/streams/memory.py", "threading.py").
PROFILE_CATEGORIES: list[tuple[str, tuple[str, ...]]] = [
    ("ONNX inference (onnxruntime Session.run)", ("onnxruntime/",)),
    ("tokenization (tokenizers)", ("tokenizers/",)),
    ("qdrant-client local mode (search/upsert, payload copies)", ("qdrant_client/local/",)),
    ("qdrant-client (async wrapper, conversions)", ("qdrant_client/",)),
    ("fastembed (pre/post-processing, pooling, normalize)", ("fastembed/",)),
    ("pydantic validation/serialization", ("pydantic/", "pydantic_core/", "pydantic_settings/")),
    ("JSON encode/decode", ("json/", "orjson/")),
    ("OpenTelemetry", ("opentelemetry/",)),
    ("logging", ("logging/", "structlog/")),
    ("HTTP server (uvicorn/h11/httptools)", ("uvicorn/", "h11/", "httptools/")),
    ("ASGI/SSE (starlette, sse_starlette)", ("starlette/", "sse_starlette/")),
    ("MCP SDK (session, dispatch, streamable HTTP transport)", ("mcp/", "mcp_types/", "fastmcp/")),
    ("server code (tool handlers)", ("qdrant_mcp_memory/", "mcp_server_qdrant/")),
    ("anyio (task groups, streams, to_thread)", ("anyio/",)),
    ("asyncio event loop + socket I/O", ("asyncio/", "selectors.py")),
    ("thread pool / threading", ("concurrent/", "threading.py", "queue.py")),
]

# Leaves where a thread is blocked waiting, not working. py-spy's own idle detection does not hold on
# this machine (a thread woken but waiting for a CPU shows as active), so such samples are dropped here.
IDLE_LEAVES = (
    "Condition.wait (threading.py",
    "Event.wait (threading.py",
    "Thread._wait_for_tstate_lock (threading.py",
    "Queue.get (queue.py",
    "_worker (concurrent/futures/thread.py",
    "EpollSelector.select (selectors.py",
    "select (selectors.py",
    "sleep (",
    "Semaphore.acquire (threading.py",
    "Lock.acquire (",
)


def _frame_file(frame: str) -> str:
    # py-spy raw frame: "function (path/to/file.py:123)"
    lp = frame.rfind(" (")
    return frame[lp + 2 : -1] if lp >= 0 and frame.endswith(")") else frame


def _short_frame(frame: str) -> str:
    lp = frame.rfind(" (")
    if lp < 0:
        return frame
    func, loc = frame[:lp], frame[lp + 2 : -1]
    path = loc.rsplit(":", 1)[0]
    for marker in ("site-packages/", "lib/python3.12/", "src/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{func} ({path})"


def _category(frames: list[str]) -> str:
    for f in reversed(frames):
        file = "/" + _frame_file(f)
        for name, pats in PROFILE_CATEGORIES:
            if any("/" + p in file for p in pats):
                return name
    return "other: " + _short_frame(frames[-1])


def summarize_profile(raw_path: Path, top: int = 10) -> dict[str, Any]:
    """Summarize py-spy `--format raw --threads` output: busy samples by category, leaf, and thread."""
    cats: dict[str, int] = {}
    selfs: dict[str, int] = {}
    threads: dict[str, int] = {}
    per_thread_cats: dict[str, dict[str, int]] = {}
    total = busy = 0
    for line in raw_path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = stack.split(";")
        thread = "?"
        while frames and frames[0].startswith(("process ", "thread (")):
            if frames[0].startswith("thread ("):
                name = frames[0].split(":", 1)[1].strip().strip('"') if ":" in frames[0] else frames[0]
                thread = "MainThread (event loop)" if name == "MainThread" else name
            frames = frames[1:]
        if not frames or frames[-1].startswith(IDLE_LEAVES):
            continue
        busy += n
        leaf = _short_frame(frames[-1])
        selfs[leaf] = selfs.get(leaf, 0) + n
        cat = _category(frames)
        cats[cat] = cats.get(cat, 0) + n
        threads[thread] = threads.get(thread, 0) + n
        tc = per_thread_cats.setdefault(thread, {})
        tc[cat] = tc.get(cat, 0) + n

    def topn(d: dict[str, int], k: int = top) -> list[dict[str, Any]]:
        return [
            {"item": key, "samples": v, "pct": round(100 * v / busy, 1) if busy else 0.0}
            for key, v in sorted(d.items(), key=lambda kv: -kv[1])[:k]
        ]

    return {
        "total_samples": total,
        "busy_samples": busy,
        "idle_pct": round(100 * (total - busy) / total, 1) if total else 0.0,
        "categories": topn(cats),
        "self": topn(selfs),
        "threads": topn(threads, 20),
        "per_thread_categories": {t: topn(c, 12) for t, c in per_thread_cats.items()},
    }


async def profile_server(
    server: RunningServer, ops: list[tuple[str, Any]], clients: int, out_dir: Path, rate: int, top_n_weighted: int = 10
) -> dict[str, Any]:
    pyspy = ensure_pyspy()
    raw = out_dir / f"profile-{server.spec.name}.txt"
    raw.unlink(missing_ok=True)
    cmd = [
        str(pyspy),
        "record",
        "--pid",
        str(server.proc.pid),
        "--format",
        "raw",
        "--rate",
        str(rate),
        "--subprocesses",
        "--threads",
        "--output",
        str(raw),
    ]
    spy_log = out_dir / f"profile-{server.spec.name}.pyspy.log"
    with open(spy_log, "wb") as lf:
        spy = subprocess.Popen(cmd, stdout=lf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        await asyncio.sleep(1.0)  # let py-spy attach
        if spy.poll() is not None:
            raise BenchError(f"py-spy exited {spy.returncode}: {spy_log.read_text(errors='replace')[-2000:]}")
        phase = await run_phase(server, "legacy", f"find_c{clients}_profiled", clients, ops)
    finally:
        if spy.poll() is None:
            spy.send_signal(signal.SIGINT)
            try:
                spy.wait(30)
            except subprocess.TimeoutExpired:
                spy.kill()
                spy.wait()
    if not raw.exists():
        raise BenchError(f"py-spy wrote no profile: {spy_log.read_text(errors='replace')[-2000:]}")
    summary = summarize_profile(raw)
    summary["raw_path"] = str(raw)
    summary["phase"] = phase
    summary["command"] = " ".join(cmd)
    summary["rate"] = rate
    # py-spy samples are wall-clock (a runnable thread waiting for a core counts as busy), so weight them
    # with the CPU each thread really used in this phase (from /proc): main thread = the event loop; the
    # rest = the embedding worker thread(s) plus onnxruntime's native pool threads, invisible to py-spy.
    total, main = phase.get("server_cpu_util") or 0.0, phase.get("server_main_thread_util") or 0.0
    main_cats = summary["per_thread_categories"].get("MainThread (event loop)", [])
    main_samples = sum(c["samples"] for c in main_cats) or 1
    weighted = [
        {
            "item": "embedding: worker thread + onnxruntime native threads (non-main threads)",
            "cores": round(max(0.0, total - main), 3),
        }
    ]
    weighted += [
        {"item": f"event loop: {c['item']}", "cores": round(main * c["samples"] / main_samples, 3)} for c in main_cats
    ]
    weighted.sort(key=lambda r: -r["cores"])
    for r in weighted:
        r["pct"] = round(100 * r["cores"] / total, 1) if total else 0.0
    summary["cpu_weighted"] = weighted[:top_n_weighted]
    return summary


# --------------------------------------------------------------------------------------------
# Orchestration
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Plan:
    n_stores: int
    m_finds: int
    many: int
    noop: int
    warmup: int
    high: int
    seed: int
    profile_finds: int


def store_ops(docs: list[dict[str, Any]]) -> list[tuple[str, Any]]:
    return [("qdrant-store", d) for d in docs]


def find_ops(queries: list[str]) -> list[tuple[str, Any]]:
    return [("qdrant-find", {"query": q}) for q in queries]


async def bench_server(make_spec: Any, plan: Plan, args: argparse.Namespace, out_dir: Path) -> dict[str, Any]:
    """Benchmark one server: a fresh process per protocol era (legacy first, the primary one)."""
    spec0: ServerSpec = make_spec(free_port())
    res: dict[str, Any] = {"name": spec0.name, "argv": spec0.argv, "url": spec0.url, "phases": [], "instances": []}
    res["env"] = {
        k: spec0.env[k]
        for k in sorted(spec0.env)
        if k.startswith(("QDRANT_", "FASTMCP_", "MCP_", "OTEL_", "COLLECTION", "FASTEMBED", "HF_"))
    }
    res["versions"] = pkg_versions(spec0.python, VERSION_PKGS)
    if spec0.name == "ours":
        res["source"] = source_fingerprint()
    used_queries: set[str] = set()

    def add(phase: dict[str, Any]) -> None:
        res["phases"].append(phase)
        log(
            f"  {spec0.name:8s} {phase['mode']:10s} {phase['phase']:18s} c={phase['clients']} n={phase['n']} "
            f"err={phase['errors']} p50={phase.get('p50_ms')}ms p99={phase.get('p99_ms')}ms "
            f"thr={phase.get('throughput')}/s cli_cpu={phase.get('client_cpu_util')} "
            f"srv_cpu={phase.get('server_cpu_util')} main={phase.get('server_main_thread_util')} "
            f"other={phase.get('other_cpu_util')}"
        )

    for idx, mode in enumerate(spec0.modes):
        spec = spec0 if idx == 0 else make_spec(free_port())
        primary = idx == 0
        sfx = "" if mode == "legacy" else "_modern"
        port = int(spec.url.split(":")[2].split("/")[0])
        server = RunningServer(spec, port, out_dir / "logs" / f"{spec.name}{sfx}.log")
        inst: dict[str, Any] = {"mode": mode, "log": str(server.log_path), "port": port}
        res["instances"].append(inst)
        log(f"starting {spec.name} ({mode}): {' '.join(spec.argv)}")
        server.start()
        try:
            inst["startup"] = await wait_ready(server, args.ready_timeout)
            inst["startup"]["rss_ready_mb"] = round(tree_rss_kb(server.proc.pid)[0] / 1024, 1)
            log(f"  {spec.name} ready: {inst['startup']}")
            tools = inst["startup"].get("tools", [])
            lbl = lambda p, sfx=sfx: p + sfx  # noqa: E731
            noop = [("tools/list", None)] * plan.noop
            add(await run_phase(server, mode, lbl("noop_c1"), 1, noop))
            add(await run_phase(server, mode, lbl(f"noop_c{plan.high}"), plan.high, noop))
            warm_docs = gen_documents(plan.seed, "warmup", plan.warmup)
            warm_q = gen_queries(plan.seed, lbl("warmup"), plan.warmup, used_queries)
            add(await run_phase(server, mode, lbl("warmup"), 1, store_ops(warm_docs) + find_ops(warm_q)))
            # the same documents in every instance, so each era searches an identical collection
            add(
                await run_phase(
                    server, mode, lbl("store_c1"), 1, store_ops(gen_documents(plan.seed, "store_c1", plan.n_stores))
                )
            )
            add(
                await run_phase(
                    server,
                    mode,
                    lbl("find_c1"),
                    1,
                    find_ops(gen_queries(plan.seed, lbl("find_c1"), plan.m_finds, used_queries)),
                )
            )
            add(
                await run_phase(
                    server,
                    mode,
                    lbl(f"store_c{plan.high}"),
                    plan.high,
                    store_ops(gen_documents(plan.seed, f"store_c{plan.high}", plan.n_stores)),
                )
            )
            add(
                await run_phase(
                    server,
                    mode,
                    lbl(f"find_c{plan.high}"),
                    plan.high,
                    find_ops(gen_queries(plan.seed, lbl(f"find_c{plan.high}"), plan.m_finds, used_queries)),
                )
            )
            if primary and args.profile:
                q = gen_queries(plan.seed, "profile", plan.profile_finds, used_queries)
                log(f"  profiling {spec.name} under {plan.high}-client finds ({len(q)} queries) with py-spy ...")
                res["profile"] = await profile_server(server, find_ops(q), plan.high, out_dir, args.profile_rate)
                add(res["profile"]["phase"])
            if primary and "qdrant-store-many" in tools and plan.many:
                docs = gen_documents(plan.seed, "store_many", plan.many)
                add(
                    await run_phase(
                        server,
                        mode,
                        "store_many",
                        1,
                        [("qdrant-store-many", {"entries": docs})],
                        call_timeout=600,
                        phase_timeout=900,
                        per_doc=plan.many,
                    )
                )
            rss, hwm = tree_rss_kb(server.proc.pid)
            inst["rss_mb"] = round(rss / 1024, 1)
            inst["hwm_mb"] = round(hwm / 1024, 1)
            inst["threads"] = tree_threads(server.proc.pid)
            inst["processes"] = len(proc_tree(server.proc.pid))
            inst["sigterm"] = server.sigterm(10.0)
            log(
                f"  {spec.name} ({mode}) rss={inst['rss_mb']} MB hwm={inst['hwm_mb']} MB "
                f"threads={inst['threads']} sigterm={inst['sigterm']}"
            )
        except BenchError as exc:
            inst["fatal"] = str(exc)
            log(f"  {spec.name} ({mode}) FAILED: {exc}")
        except Exception as exc:  # noqa: BLE001
            inst["fatal"] = f"{_err_text(exc)}\n{server.log_tail()}"
            log(f"  {spec.name} ({mode}) FAILED: {inst['fatal']}")
        finally:
            server.close()
        if primary:
            for k in ("startup", "rss_mb", "hwm_mb", "threads", "processes", "sigterm", "fatal"):
                if k in inst:
                    res[k] = inst[k]
        elif inst.get("fatal"):
            res["fatal"] = f"{mode} instance: {inst['fatal']}"
    res["errors"] = sum(p.get("errors", 0) for p in res["phases"])
    return res


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------


def phase_of(res: dict[str, Any] | None, name: str) -> dict[str, Any] | None:
    if not res:
        return None
    for p in res.get("phases", []):
        if p["phase"] == name:
            return p
    return None


def fmt(v: Any, nd: int = 2) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        if math.isnan(v):
            return "—"
        return f"{v:.{nd}f}"
    return str(v)


def ratio(a: Any, b: Any) -> float | None:
    if a is None or b is None or not isinstance(a, (int, float)) or not isinstance(b, (int, float)) or b == 0:
        return None
    return a / b


def build_targets(off: dict | None, ours: dict | None, plan: Plan, quick: bool) -> list[dict[str, Any]]:
    h = plan.high

    def val(res, phase, key):
        p = phase_of(res, phase)
        return p.get(key) if p else None

    rows = []

    def add(metric, o, u, target, ok, unit="", ratio_v=None, note=""):
        rows.append(
            {
                "metric": metric,
                "official": o,
                "ours": u,
                "ratio": ratio_v,
                "target": target,
                "met": ok,
                "unit": unit,
                "note": note,
            }
        )

    o_r = (off or {}).get("startup", {}).get("ready_s")
    u_r = (ours or {}).get("startup", {}).get("ready_s")
    add(
        "ready: spawn → first tools/list (s)",
        o_r,
        u_r,
        "≤ 1.0 s",
        None if u_r is None else u_r <= 1.0,
        ratio_v=ratio(u_r, o_r),
    )
    u_rz = (ours or {}).get("startup", {}).get("readyz_s")
    add("ready: spawn → /readyz 200 (s)", None, u_rz, "", None)
    for ph in ("noop_c1", f"noop_c{h}"):
        o, u = val(off, ph, "p50_ms"), val(ours, ph, "p50_ms")
        add(f"no-op baseline tools/list p50 @{ph.split('_c')[1]} (ms)", o, u, "", None, ratio_v=ratio(u, o))
    o, u = val(off, "store_c1", "p50_ms"), val(ours, "store_c1", "p50_ms")
    add("store p50 @1 (ms)", o, u, "≤ 8 ms", None if u is None else u <= 8.0, ratio_v=ratio(u, o))
    o, u = val(off, "find_c1", "p50_ms"), val(ours, "find_c1", "p50_ms")
    add("find p50 @1 (ms)", o, u, "≤ 5 ms", None if u is None else u <= 5.0, ratio_v=ratio(u, o))
    for ph in ("store_c1", "find_c1"):
        o, u = val(off, ph, "throughput"), val(ours, ph, "throughput")
        add(f"{ph.split('_')[0]} throughput @1 (ops/s)", o, u, "", None, ratio_v=ratio(u, o))
    o, u = val(off, f"store_c{h}", "throughput"), val(ours, f"store_c{h}", "throughput")
    r = ratio(u, o)
    add(f"store throughput @{h} (ops/s)", o, u, "≥ 2.5× official", None if r is None else r >= 2.5, ratio_v=r)
    o, u = val(off, f"find_c{h}", "throughput"), val(ours, f"find_c{h}", "throughput")
    r = ratio(u, o)
    add(f"find throughput @{h} (ops/s)", o, u, "≥ 3× official", None if r is None else r >= 3.0, ratio_v=r)
    for ph in (f"store_c{h}", f"find_c{h}"):
        o, u = val(off, ph, "p50_ms"), val(ours, ph, "p50_ms")
        add(f"{ph.split('_')[0]} p50 @{h} (ms)", o, u, "", None, ratio_v=ratio(u, o))
    for ph in ("store_c1", "find_c1", f"store_c{h}", f"find_c{h}"):
        o, u = val(off, ph, "server_cpu_ms_per_op"), val(ours, ph, "server_cpu_ms_per_op")
        add(
            f"server CPU per op, {ph.replace('_c', ' @')} (ms; less noisy than wall time)",
            o,
            u,
            "",
            None,
            ratio_v=ratio(u, o),
        )
    o, u = val(off, f"find_c{h}", "server_main_thread_util"), val(ours, f"find_c{h}", "server_main_thread_util")
    add(f"server main-thread (event loop) CPU share during find @{h} (cores)", o, u, "", None)
    sm = phase_of(ours, "store_many")
    u = sm.get("throughput") if sm else None
    o = val(off, f"store_c{h}", "throughput")
    add(
        f"store-many {plan.many} docs in 1 call (docs/s)",
        None,
        u,
        "≥ 150 docs/s",
        None if u is None else u >= 150.0,
        ratio_v=ratio(u, o),
        note=f"ratio is vs official store throughput @{h}" + ("; quick run, target is for 1000 docs" if quick else ""),
    )
    o_m, u_m = (off or {}).get("rss_mb"), (ours or {}).get("rss_mb")
    o_i, u_i = (off or {}).get("startup", {}).get("rss_ready_mb"), (ours or {}).get("startup", {}).get("rss_ready_mb")
    add("RSS right after ready, idle (MB)", o_i, u_i, "", None, ratio_v=ratio(u_i, o_i))
    add(
        "RSS after run, incl. children (MB)",
        o_m,
        u_m,
        "≤ 250 MB",
        None if u_m is None else u_m <= 250.0,
        ratio_v=ratio(u_m, o_m),
    )
    o_s = (off or {}).get("sigterm", {}).get("returncode")
    u_sig = (ours or {}).get("sigterm")
    u_s = u_sig.get("returncode") if u_sig else None
    add("exit status on SIGTERM (≤10 s)", o_s, u_s, "0", None if not u_sig else u_s == 0)
    add(
        "shutdown time after SIGTERM (s)",
        (off or {}).get("sigterm", {}).get("shutdown_s"),
        (u_sig or {}).get("shutdown_s"),
        "",
        None,
    )
    o_e, u_e = (off or {}).get("errors"), (ours or {}).get("errors")
    add("errors (all phases)", o_e, u_e, "0", None if ours is None else u_e == 0)
    return rows


def md_targets(rows: list[dict[str, Any]], have_off: bool, have_ours: bool) -> str:
    out = ["| metric | official | ours | ours/official | target | check |", "|---|---:|---:|---:|---|---|"]
    for r in rows:
        check = "" if r["met"] is None else ("met" if r["met"] else "**not met**")
        if r["target"] and r["met"] is None:
            check = "n/a"
        tgt = r["target"]
        metric = r["metric"] + (f" — {r['note']}" if r["note"] else "")
        out.append(f"| {metric} | {fmt(r['official'])} | {fmt(r['ours'])} | {fmt(r['ratio'])} | {tgt} | {check} |")
    return "\n".join(out)


def md_phases(results: list[dict[str, Any]]) -> str:
    out = [
        "| server | mode | phase | clients | n | errors | p50 ms | p95 ms | p99 ms | max ms | ops/s | "
        "client CPU | client CPU ms/op | server CPU | server CPU ms/op | server main thread | other load | RSS MB |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for res in results:
        for p in res.get("phases", []):
            out.append(
                f"| {res['name']} | {p['mode']} | {p['phase']} | {p['clients']} | {p['n']} | {p['errors']} | "
                f"{fmt(p.get('p50_ms'))} | {fmt(p.get('p95_ms'))} | {fmt(p.get('p99_ms'))} | "
                f"{fmt(p.get('max_ms'))} | {fmt(p.get('throughput'), 1)} | "
                f"{fmt(100 * p['client_cpu_util'], 0) + '%' if p.get('client_cpu_util') is not None else '—'} | "
                f"{fmt(p.get('client_cpu_ms_per_op'))} | "
                f"{fmt(100 * p['server_cpu_util'], 0) + '%' if p.get('server_cpu_util') is not None else '—'} | "
                f"{fmt(p.get('server_cpu_ms_per_op'))} | "
                f"{fmt(100 * p['server_main_thread_util'], 0) + '%' if p.get('server_main_thread_util') is not None else '—'} | "
                f"{fmt(p.get('other_cpu_util'))} | {fmt(p.get('server_rss_mb'), 0)} |"
            )
    return "\n".join(out)


def md_compare(off: dict, ours: dict) -> str:
    out = [
        "| phase | official p50 | ours p50 | p50 ratio | official p99 | ours p99 | p99 ratio | "
        "official ops/s | ours ops/s | ops/s ratio |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    rows = [(p, phase_of(ours, p["phase"]), p["phase"]) for p in off.get("phases", [])]
    rows += [
        (p, phase_of(ours, p["phase"] + "_modern"), p["phase"] + " (ours in 2026-07-28 era)")
        for p in off.get("phases", [])
    ]
    for p, q, label in rows:
        if not q:
            continue
        out.append(
            f"| {label} | {fmt(p.get('p50_ms'))} | {fmt(q.get('p50_ms'))} | "
            f"{fmt(ratio(q.get('p50_ms'), p.get('p50_ms')))} | {fmt(p.get('p99_ms'))} | "
            f"{fmt(q.get('p99_ms'))} | {fmt(ratio(q.get('p99_ms'), p.get('p99_ms')))} | "
            f"{fmt(p.get('throughput'), 1)} | {fmt(q.get('throughput'), 1)} | "
            f"{fmt(ratio(q.get('throughput'), p.get('throughput')))} |"
        )
    return "\n".join(out)


def md_profile(res: dict[str, Any]) -> str:
    prof = res.get("profile")
    if not prof:
        return ""
    ph = prof["phase"]
    lines = [
        f"#### Profile: {res['name']} under {ph['clients']}-client finds",
        "",
        f"py-spy at {prof.get('rate')} Hz: {prof['total_samples']} samples over all Python threads, "
        f"{prof['idle_pct']} % of them blocked waiting (dropped); shares below are of the "
        f"{prof['busy_samples']} busy samples. Native threads of onnxruntime are invisible to py-spy: "
        "their time shows as the Python thread sitting in `Session.run`. During the profiled phase: "
        f"{fmt(ph.get('throughput'), 1)} finds/s (slowed by sampling), server CPU "
        f"{fmt(ph.get('server_cpu_util'))} cores of which main thread {fmt(ph.get('server_main_thread_util'))}, "
        f"other load {fmt(ph.get('other_cpu_util'))} cores. Raw stacks: `{prof['raw_path']}`.",
        "",
        "**Where the server's CPU goes** (top 10; /proc CPU per thread, the event loop's share split by its "
        "py-spy samples):",
        "",
        "| # | item | cores | % of server CPU |",
        "|---:|---|---:|---:|",
    ]
    for i, c in enumerate(prof.get("cpu_weighted", []), 1):
        lines.append(f"| {i} | {c['item']} | {fmt(c['cores'])} | {c['pct']} |")
    lines += [
        "",
        "py-spy busy samples (wall-clock, all Python threads), each attributed to the innermost recognised library:",
        "",
        "| # | category | % busy samples |",
        "|---:|---|---:|",
    ]
    for i, c in enumerate(prof["categories"], 1):
        lines.append(f"| {i} | {c['item']} | {c['pct']} |")
    lines += ["", "Top self (leaf) functions:", "", "| # | function (file) | % busy samples |", "|---:|---|---:|"]
    for i, c in enumerate(prof["self"], 1):
        lines.append(f"| {i} | `{c['item']}` | {c['pct']} |")
    lines += [
        "",
        "By thread: "
        + "; ".join(
            f"{t['item']} {t['pct']} % ("
            + ", ".join(
                f"{c['item'].split(' (')[0]} {round(100 * c['samples'] / max(1, t['samples']))} %"
                for c in prof["per_thread_categories"].get(t["item"], [])[:4]
            )
            + ")"
            for t in prof["threads"][:4]
        ),
    ]
    return "\n".join(lines)


def render(report: dict[str, Any]) -> str:
    results = [r for r in (report["servers"].get("official"), report["servers"].get("ours")) if r]
    off, ours = report["servers"].get("official"), report["servers"].get("ours")
    m = report["meta"]
    parts = [
        f"## qdrant-mcp benchmark ({'quick' if m['quick'] else 'full'}) — {m['started']}",
        "",
        f"Machine: {m['cpus']} CPUs, load average before run {m['loadavg_before']}, after {m['loadavg_after']}. "
        f"Workload: N={m['plan']['n_stores']} stores, M={m['plan']['m_finds']} finds per phase, "
        f"clients 1 and {m['plan']['high']}, store-many {m['plan']['many']} docs, seed {m['plan']['seed']}. "
        + (
            f"Client: mcp {m['client_versions'].get('mcp')} SDK `Client`"
            if m.get("client", "sdk") == "sdk"
            else "Client: raw httpx JSON-RPC (`--client raw`, not the SDK)"
        )
        + " (in-process asyncio, one session per client), "
        "streamable HTTP on 127.0.0.1, `QDRANT_URL=:memory:`, model "
        f"{MODEL} from `{m['model_cache']}`.",
        "",
    ]
    for r in results:
        v = r.get("versions", {})
        src = r.get("source")
        parts.append(
            f"- **{r['name']}**: `{' '.join(r['argv'])}` — "
            + ", ".join(f"{k} {v[k]}" for k in VERSION_PKGS if k in v)
            + (
                f"; server/src sha256 {src['server_src_sha256']} (git HEAD {src.get('git_head')}, newest file "
                f"{src['newest_mtime']})"
                if src
                else ""
            )
        )
        if r.get("fatal"):
            parts.append(f"  - **FAILED**: {r['fatal'].splitlines()[0]}")
    parts += [
        "",
        "### Summary and targets",
        "",
        md_targets(report["targets"], bool(off), bool(ours)),
        "",
        "### Phases",
        "",
        md_phases(results),
        "",
    ]
    if off and ours:
        parts += [
            "### Ours / official per phase (latency ratio < 1 and throughput ratio > 1 favour ours)",
            "",
            md_compare(off, ours),
            "",
        ]
    for r in results:
        for p in r.get("phases", []):
            if p.get("error_samples"):
                parts.append(f"- errors in {r['name']} {p['phase']}: " + "; ".join(p["error_samples"][:3]))
    sat = [
        (r["name"], p["phase"]) for r in results for p in r.get("phases", []) if (p.get("client_cpu_util") or 0) >= 0.85
    ]
    parts.append("")
    if sat:
        parts.append(
            "**Client harness saturated a core (client CPU ≥ 85 %) in: "
            + ", ".join(f"{n}/{p}" for n, p in sat)
            + "** — on 2 cores it competes with the server, so those throughputs are a lower bound."
        )
    else:
        parts.append("Client harness stayed below 85 % of one core in every phase.")
    for r in results:
        if r.get("profile"):
            parts += ["", md_profile(r)]
    parts += ["", f"Result: **{'PASS' if report['ok'] else 'FAIL'}** (errors must be 0; speed is not asserted)."]
    return "\n".join(parts)


# --------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="CI mode: N=40, M=40, store-many 100; fails on errors")
    ap.add_argument("--only", choices=["ours", "official"], help="benchmark one server only")
    ap.add_argument("--json-out", default=str(HERE / "results" / "latest.json"))
    ap.add_argument("--md-out", default=None, help="also write the markdown report here")
    ap.add_argument("--stores", type=int, help="N stores per store phase (default 1000, quick 40)")
    ap.add_argument("--finds", type=int, help="M finds per find phase (default 1000, quick 40)")
    ap.add_argument("--many", type=int, help="docs in the single store-many call (default 1000, quick 100)")
    ap.add_argument("--noop", type=int, help="tools/list calls per no-op baseline phase (default 300, quick 40)")
    ap.add_argument("--clients", type=int, default=8, help="the high concurrency level (default 8)")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--no-modern", action="store_true", help=f"skip the {MODERN} era phases for ours")
    ap.add_argument("--order", default="official,ours", help="server order (default official,ours)")
    ap.add_argument(
        "--profile",
        action="store_true",
        help="after the measured phases, profile each server with py-spy under the high-client finds",
    )
    ap.add_argument("--profile-finds", type=int, help="finds in the profiled phase (default 2000, quick 200)")
    ap.add_argument("--profile-rate", type=int, default=200, help="py-spy samples per second")
    ap.add_argument(
        "--client",
        choices=["sdk", "raw"],
        default="sdk",
        help="sdk: the mcp 2.3.0 Client (default); raw: a minimal httpx JSON-RPC client "
        "(legacy only) to cross-check how much the SDK client's CPU weighs",
    )
    ap.add_argument(
        "--ours-env",
        action="append",
        default=[],
        metavar="K=V",
        help="extra env for our server only, e.g. EMBEDDING_THREADS=1 (repeatable; for experiments)",
    )
    ap.add_argument("--ready-timeout", type=float, default=120.0)
    ap.add_argument(
        "--ours-python", default=os.environ.get("BENCH_OURS_PYTHON", str(REPO / ".venv" / "bin" / "python"))
    )
    return ap.parse_args(argv)


async def amain(args: argparse.Namespace) -> int:
    logging.getLogger("mcp").setLevel(logging.CRITICAL)  # SSE teardown noise on session close
    global CLIENT_KIND
    CLIENT_KIND = args.client
    q = args.quick
    plan = Plan(
        n_stores=args.stores or (40 if q else 1000),
        m_finds=args.finds or (40 if q else 1000),
        many=args.many if args.many is not None else (100 if q else 1000),
        noop=args.noop or (40 if q else 300),
        warmup=5,
        high=args.clients,
        seed=args.seed,
        profile_finds=args.profile_finds or (200 if q else 2000),
    )
    json_out = Path(args.json_out)
    out_dir = json_out.parent
    out_dir.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    report: dict[str, Any] = {
        "meta": {
            "started": time.strftime("%Y-%m-%d %H:%M:%S"),
            "quick": q,
            "cpus": os.cpu_count(),
            "loadavg_before": [round(x, 2) for x in os.getloadavg()],
            "plan": dataclasses.asdict(plan),
            "python": platform.python_version(),
            "argv": sys.argv,
            "client_versions": {n: importlib.metadata.version(n) for n in ("mcp", "httpx")},
            "client": args.client,
        },
        "servers": {},
    }

    model_cache = resolve_model_cache()
    report["meta"]["model_cache"] = str(model_cache)
    order = [s.strip() for s in args.order.split(",") if s.strip()]
    if args.only:
        order = [args.only]
    specs: list[Any] = []  # factories: port -> ServerSpec
    for name in order:
        if name == "official":
            t0 = time.perf_counter()
            venv = ensure_official_venv()  # raises BenchError loudly if it cannot be created
            report["meta"]["official_venv"] = str(venv)
            report["meta"]["official_venv_s"] = round(time.perf_counter() - t0, 2)
            specs.append(lambda port, venv=venv: official_spec(venv, model_cache, port))
        elif name == "ours":
            if not Path(args.ours_python).exists():
                raise BenchError(f"{args.ours_python} not found (set --ours-python or BENCH_OURS_PYTHON)")
            modern = not args.no_modern and args.client == "sdk"
            specs.append(
                lambda port, modern=modern: ours_spec(args.ours_python, model_cache, port, modern, args.ours_env)
            )
        else:
            raise BenchError(f"unknown server {name!r} in --order")

    for make_spec in specs:
        r = await bench_server(make_spec, plan, args, out_dir)
        report["servers"][r["name"]] = r

    off, ours = report["servers"].get("official"), report["servers"].get("ours")
    report["targets"] = build_targets(off, ours, plan, q)
    report["meta"]["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    report["meta"]["total_s"] = round(time.perf_counter() - t_start, 1)
    ok = True
    for r in report["servers"].values():
        if r.get("fatal") or r.get("errors", 0) != 0:
            ok = False
    report["ok"] = ok
    text = render(report)
    text += f"\n\nTotal bench time {report['meta']['total_s']} s. JSON: `{json_out}`\n"
    json_out.write_text(json.dumps(report, indent=2, default=str))
    if args.md_out:
        Path(args.md_out).write_text(text)
    print(text, flush=True)
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return asyncio.run(amain(args))
    except BenchError as exc:
        log(f"FATAL: {exc}")
        return 2
    except KeyboardInterrupt:
        log("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
