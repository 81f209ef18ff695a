"""Named steps of an index build, where the fault suite stops a process to kill it there.

Inert in production: `reached` reads one environment variable and returns. With
QDRANT_MCP_TEST_STEPS=DIR set (tests/server/test_build_faults.py), reaching step S writes
DIR/S.reached holding the process id, then, while DIR/S.hold exists, the process waits:
the test kills it there, or fills a disk and removes the hold to let the step fail for real.

Steps, in order: copying (the first file of the copy is written), child-loaded and
child-optimized (in the build's child process), built (the child exited), replayed (the new
generation is open, holds the writes made during the build and is flushed; the pointer
still names the old one), pointer-written, switched (served from the new generation; the
old one not closed yet), cleaning (removing an old generation: its first entry is gone).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

STEPS_ENV = "QDRANT_MCP_TEST_STEPS"


def reached(step: str) -> None:
    folder = os.environ.get(STEPS_ENV)
    if not folder:
        return
    marker = Path(folder) / f"{step}.reached"
    marker.with_suffix(".tmp").write_text(str(os.getpid()))
    marker.with_suffix(".tmp").replace(marker)
    while (Path(folder) / f"{step}.hold").exists():
        time.sleep(0.02)
