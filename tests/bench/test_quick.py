"""The benchmark's quick mode, so it never rots: every phase runs (but the image build), both servers, zero errors.

Speed is not asserted here (bench/README.md has the numbers); only that the benchmark runs.

Time limits: the benchmark gets QUICK_LIMIT_S (it normally takes 1-2 minutes, plus a few
the first time, when it installs the official server into its cached venv). When that
passes, it is sent SIGTERM, so it stops the servers it started and the test fails with its
output. pytest-timeout (300 s for every other test) is raised for this one test to above
that limit plus the grace for stopping: it stays a backstop that never fires first.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from support import REPO

pytestmark = pytest.mark.bench

QUICK_LIMIT_S = 600
STOP_GRACE_S = 30
PHASES = {
    "compare",
    "startup",
    "scale",
    "worst-call",
    "head-of-line",
    "bulk-store",
    "durability",
    "providers",
    "query-path",
    "lifecycle",
    "image",
}


def run_quick_benchmark(out: Path) -> tuple[int, str, str]:
    command = [sys.executable, "-m", "bench", "--quick", "--json-out", str(out)]
    bench = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        stdout, stderr = bench.communicate(timeout=QUICK_LIMIT_S)
    except subprocess.TimeoutExpired:
        bench.send_signal(signal.SIGTERM)
        try:
            stdout, stderr = bench.communicate(timeout=STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            bench.kill()
            stdout, stderr = bench.communicate()
        pytest.fail(f"the quick benchmark took over {QUICK_LIMIT_S} s:\n{stdout[-3000:]}{stderr[-3000:]}")
    return bench.returncode, stdout, stderr


@pytest.mark.timeout(QUICK_LIMIT_S + STOP_GRACE_S + 60)
def test_quick_benchmark_runs_every_phase_without_errors(tmp_path: Path) -> None:
    out = tmp_path / "quick.json"
    code, stdout, stderr = run_quick_benchmark(out)
    assert code == 0, stdout[-3000:] + stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["ok"] is True
    assert set(report["phases"]) == PHASES
    for name, phase in report["phases"].items():
        assert not phase.get("fatal"), (name, phase.get("fatal"))
        assert phase["errors"] == 0, name
    compared = report["phases"]["compare"]["servers"]
    assert set(compared) == {"official", "ours"}
    for name, server in compared.items():
        assert server["errors"] == 0, name
        assert server["phases"], name
    # A quick run builds no image (minutes): the phase says so, in the JSON and in the report.
    skipped = report["phases"]["image"]["skipped"]
    assert skipped.startswith("quick run"), skipped
    assert f"Skipped: {skipped}." in stdout
    print(stdout[-2500:])
