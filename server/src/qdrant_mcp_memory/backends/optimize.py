"""Child process of the embedded engine: build the HNSW index of a shard (a copy of a live one).

Run as `python -m qdrant_mcp_memory.backends.optimize PARENT_PID SHARD_PATH`. Exit 0 when the
index was built, 3 when there was nothing to build, 1 on failure (the reason on stderr). It
runs at a lower CPU priority, so searches and embedding in the server keep their share.

It dies with the server: on Linux the kernel sends it SIGKILL when its parent ends
(PR_SET_PDEATHSIG), and if the parent is already gone when that is set up, it exits at once.
It only ever writes inside SHARD_PATH, a folder made for this one build, so an orphan that
outlived its server (on a platform without a parent-death signal) cannot touch what a
restarted server builds.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

from . import checkpoints

NOTHING_TO_DO = 3
PARENT_GONE = 4
_PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int) -> bool:
    """Ask for SIGKILL when the parent ends; False if it has ended already."""
    if sys.platform == "linux":
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    # Checked after prctl: a parent that died before it ran never sends the signal.
    return os.getppid() == parent


def main(argv: list[str]) -> int:
    if len(argv) != 2 or not argv[0].isdigit():
        print("usage: python -m qdrant_mcp_memory.backends.optimize PARENT_PID SHARD_PATH", file=sys.stderr)
        return 2
    if not die_with_parent(int(argv[0])):
        return PARENT_GONE
    os.nice(10)
    import qdrant_edge

    shard = qdrant_edge.EdgeShard.load(argv[1])
    try:
        checkpoints.reached("child-loaded")
        changed = shard.optimize()
        checkpoints.reached("child-optimized")
        shard.flush()
    finally:
        shard.close()
    return 0 if changed else NOTHING_TO_DO


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
