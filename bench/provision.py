"""What the benchmark installs or builds once and caches: throwaway venvs and the model cache.

The official server is installed from PyPI into a venv of its own (it pins other `mcp`
and fastmcp versions than ours), made from the same base interpreter as the repo venv so
both servers run on the same Python. py-spy goes into another venv, for profiling. A venv
counts as complete only once its marker file is written, so an interrupted install is
redone; a file lock keeps two benchmarks from building the same venv at once.
"""

from __future__ import annotations

import fcntl
import glob
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import SetupError
from .paths import REPO, cache_dir
from .progress import log

OFFICIAL_PIN = "mcp-server-qdrant==0.8.1"
MODEL = "sentence-transformers/all-MiniLM-L6-v2"
# fastembed's folder for the model above, inside a FASTEMBED_CACHE_PATH.
MODEL_DIR = "models--Qdrant--all-MiniLM-L6-v2-onnx"
MODEL_BUILDER = REPO.parent / "shared" / "offline-models" / "build-fastembed-cache"


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def base_python() -> str:
    """The interpreter new venvs are made from: the repo venv's base python (same version as ours)."""
    return os.environ.get("BENCH_OFFICIAL_PYTHON") or getattr(sys, "_base_executable", None) or sys.executable


def ensure_venv(path: Path, requirements: list[str], what: str) -> Path:
    """Create `path` (once) with `requirements` installed; the marker, written last, says it is complete."""
    marker = path / ".bench-complete"
    wanted = " ".join(requirements)
    with file_lock(path.parent / f".{path.name}.lock"):
        if marker.is_file() and marker.read_text() == wanted:
            return path
        started = time.perf_counter()
        log(f"creating the {what} venv at {path} ({wanted}) ...")
        shutil.rmtree(path, ignore_errors=True)
        try:
            subprocess.run([base_python(), "-m", "venv", str(path)], check=True, timeout=300)
            pip = [str(path / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
            installed = subprocess.run([*pip, *requirements], capture_output=True, text=True, timeout=900, check=False)
        except (subprocess.SubprocessError, OSError) as exc:
            shutil.rmtree(path, ignore_errors=True)
            raise SetupError(f"could not create the {what} venv at {path}: {exc}") from exc
        if installed.returncode != 0:
            shutil.rmtree(path, ignore_errors=True)
            output = installed.stdout + installed.stderr
            tail = "\n".join(line for line in output.splitlines() if "is ignored" not in line)
            raise SetupError(
                f"could not create the {what} venv at {path}: pip install {wanted} exited "
                f"{installed.returncode} (no network to PyPI?)\n{tail[-3000:]}"
            )
        marker.write_text(wanted)
        log(f"{what} venv ready in {time.perf_counter() - started:.1f} s")
        return path


def official_venv() -> Path:
    """The venv holding `mcp-server-qdrant==0.8.1`; SetupError when it cannot be made (no PyPI)."""
    venv = ensure_venv(cache_dir() / "official-venv", [OFFICIAL_PIN], "official server")
    if not (venv / "bin" / "mcp-server-qdrant").exists():
        raise SetupError(f"{venv}/bin/mcp-server-qdrant missing after install")
    return venv


def pyspy() -> Path:
    """py-spy: `$BENCH_PYSPY`, else one on PATH, else installed once into the tools venv."""
    explicit = os.environ.get("BENCH_PYSPY")
    if explicit:
        return Path(explicit)
    found = shutil.which("py-spy")
    if found:
        return Path(found)
    return ensure_venv(cache_dir() / "tools-venv", ["py-spy"], "profiler tool") / "bin" / "py-spy"


def holds_model(folder: Path) -> bool:
    return bool(glob.glob(str(folder / MODEL_DIR / "snapshots" / "*" / "model.onnx")))


def model_cache() -> Path:
    """A fastembed cache holding the model: FASTEMBED_CACHE_PATH, a cached one, or one built offline."""
    named = os.environ.get("FASTEMBED_CACHE_PATH")
    if named:
        if not holds_model(Path(named)):
            raise SetupError(f"FASTEMBED_CACHE_PATH={named} has no {MODEL_DIR}/snapshots/*/model.onnx")
        return Path(named)
    target = cache_dir() / "fastembed"
    for candidate in (target, Path("/work/cache/fastembed")):
        if holds_model(candidate):
            return candidate
    if not MODEL_BUILDER.exists():
        raise SetupError(f"no fastembed model cache: set FASTEMBED_CACHE_PATH, or provide {MODEL_BUILDER}")
    log(f"building the offline model cache in {target} ...")
    subprocess.run(["bash", str(MODEL_BUILDER), str(target)], check=True, timeout=900)
    if not holds_model(target):
        raise SetupError(f"{MODEL_BUILDER} did not produce a model in {target}")
    return target
