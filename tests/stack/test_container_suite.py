"""The server's test suite, run inside an image built from the runtime's own layers (`--target test`).

Run as root, the suite's own user: these start no Compose stack and mount no file of a user, so
the engine runs the containers the same for root and for a member of the docker group. Built
from the stack user's checkout, as the server image is (conftest's `server_image`: the
context's file modes are in BuildKit's cache keys), so the stages they share are not built again.
The stack as a user runs it: test_compose_up.py and test_scripts_up.py."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from stack_support import RESULTS_DIR, RUN_ID, StackUser, record, run

pytestmark = [pytest.mark.stack, pytest.mark.timeout(1200)]
HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")  # HTTPS to PyPI inside the build (a BuildKit secret)
# Inside the container: the in-process suites and the HTTP/stdio/SSE server tests.
SUITE = [
    "tests/server/test_store.py",
    "tests/server/test_lifecycle.py",
    "tests/server/test_listing.py",
    "tests/server/test_embeddings.py",
    "tests/server/test_edge.py",
    "tests/server/test_hybrid.py",
    "tests/server/test_http.py",
    "tests/telemetry",
]


def test_the_suite_passes_inside_the_image(
    server_image: str, base_image: str, secrets_dir: Path, stack_user: StackUser
) -> None:
    tag = f"qdrant-mcp-stack/mcp-server-tests:{RUN_ID}"
    with stack_user.model_in_context():
        build = run(
            [
                "docker",
                "compose",
                "-f",
                "compose.yaml",
                "-f",
                str(Path(__file__).with_name("compose.test-stage.yaml")),
                "-p",
                f"stacktests-{RUN_ID}",
                "--progress",
                "plain",
                "build",
                "server-tests",
            ],
            env={
                "TEST_IMAGE": tag,
                "SECRETS_DIR": str(secrets_dir),
                "PYTHON_IMAGE": base_image,
                "BUILD_CA_FILE": str(HOST_CA if HOST_CA.is_file() else "/dev/null"),
            },
            timeout=1200,
            cwd=stack_user.checkout,
        )
    (RESULTS_DIR / "test-stage-build.log").write_text(build.stdout + build.stderr)
    started = time.monotonic()
    result = run(
        ["docker", "run", "--rm", "--network", "none", tag, *SUITE],
        check=False,
        timeout=1100,
    )
    record("container_suite_s", round(time.monotonic() - started, 1))
    (RESULTS_DIR / "container-suite.log").write_text(result.stdout + result.stderr)
    summary = (result.stdout.strip().splitlines() or [""])[-1]
    record("container_suite", summary)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert re.search(r"\d+ passed", summary) and "failed" not in summary and "error" not in summary
    # The runtime image has none of it: no pytest, no tests.
    probe = "import importlib.util, os; print(importlib.util.find_spec('pytest'), os.path.exists('/src/tests'))"
    inside = run(["docker", "run", "--rm", "--network", "none", "--entrypoint", "python", server_image, "-c", probe])
    assert inside.stdout.split() == ["None", "False"]
    run(["docker", "image", "rm", "-f", tag], check=False)
