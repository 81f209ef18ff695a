"""Engine folders holding the first N corpus documents, made once and cached, copied per run.

A folder is written by `bench.writers` in the interpreter of the server that opens it
(ours for Qdrant Edge; ours or the official venv's for qdrant-client local mode), and cached
under `$BENCH_CACHE/<kind>-v1-seed<seed>-n<N>-<engine package><version>/data`. Each server
run gets a fresh copy (`working_copy`), so nothing a server writes on open or close (locks,
WAL, index builds) reaches the cache, and every run starts from the same bytes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any, Literal

from . import corpus
from .errors import BenchError
from .paths import REPO, cache_dir
from .progress import log
from .provenance import package_versions
from .provision import file_lock

VERSION = 1
Kind = Literal["edge", "local-mode"]
ENGINE_PACKAGE: dict[Kind, str] = {"edge": "qdrant-edge-py", "local-mode": "qdrant-client"}
WRITE_LIMIT_S = 3 * 3600


def engine_folder(kind: Kind, python: str, seed: int, count: int, model_cache: Path) -> tuple[Path, dict[str, Any]]:
    """The cached folder of `kind` with `count` corpus points, written by `python`; and how it was made."""
    package = ENGINE_PACKAGE[kind]
    version = package_versions(python, (package,)).get(package)
    if version is None:
        raise BenchError(f"{python} has no {package}: it cannot write a {kind} folder")
    entry = cache_dir() / f"{kind}-v{VERSION}-seed{seed}-n{count}-{package}{version}"
    made = entry / "bench.json"
    with file_lock(entry.parent / f".{entry.name}.lock"):
        if made.is_file():
            return entry / "data", json.loads(made.read_text())
        shutil.rmtree(entry, ignore_errors=True)
        entry.mkdir(parents=True)
        vectors = entry / "input.npy"
        _save(vectors, corpus.vectors(seed, count, model_cache))
        log(f"writing a {kind} folder with {count} points ({package} {version}) into {entry} ...")
        started = time.perf_counter()
        command = [python, "-m", "bench.writers", kind, str(entry / "data"), str(vectors), str(seed), str(count)]
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        written = subprocess.run(
            command, cwd=REPO, env=env, capture_output=True, text=True, timeout=WRITE_LIMIT_S, check=False
        )
        vectors.unlink(missing_ok=True)
        if written.returncode != 0:
            shutil.rmtree(entry, ignore_errors=True)
            raise BenchError(f"writing the {kind} folder failed ({written.returncode}):\n{written.stderr[-3000:]}")
        details = json.loads(written.stdout.strip().splitlines()[-1])
        details.update(kind=kind, count=count, seed=seed, engine=f"{package} {version}", python=python)
        details["total_s"] = round(time.perf_counter() - started, 1)
        details["bytes"] = folder_bytes(entry / "data")
        made.write_text(json.dumps(details))
        log(f"  {kind} folder ready: {details}")
        return entry / "data", details


def _save(path: Path, matrix: Any) -> None:
    import numpy

    numpy.save(path, matrix)


def working_copy(source: Path, target: Path) -> float:
    """Copy a cached folder to `target` (replacing it); returns the seconds it took.

    GNU cp keeps the engine's sparse files sparse (Qdrant Edge preallocates 32 MiB files
    that hold a few KiB): shutil would write every hole out as zeros."""
    started = time.perf_counter()
    shutil.rmtree(target, ignore_errors=True)
    subprocess.run(["cp", "-a", "--sparse=always", str(source), str(target)], check=True, timeout=1800)
    return round(time.perf_counter() - started, 2)


def folder_bytes(folder: Path) -> int:
    """Bytes the folder's files really occupy on disk (sparse files count only what they hold)."""
    return sum(path.stat().st_blocks * 512 for path in folder.rglob("*") if path.is_file())
