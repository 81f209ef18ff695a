"""The benchmark's quick mode, so it never rots: both servers run the workload with zero errors.

Speed is not asserted here (bench/README.md has the numbers); only that the comparison runs.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from support import REPO

pytestmark = pytest.mark.bench


def test_quick_benchmark_runs_both_servers_without_errors(tmp_path: Path) -> None:
    out = tmp_path / "quick.json"
    result = subprocess.run(
        [sys.executable, str(REPO / "bench" / "run.py"), "--quick", "--json-out", str(out)],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["ok"] is True
    assert set(report["servers"]) == {"official", "ours"}
    for name, server in report["servers"].items():
        assert server["errors"] == 0, name
        assert server["phases"], name
    print(result.stdout[-2500:])
