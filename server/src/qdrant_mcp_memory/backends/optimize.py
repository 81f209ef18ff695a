"""Child process of the embedded engine: build the HNSW index of a shard (a copy of a live one).

Run as `python -m qdrant_mcp_memory.backends.optimize SHARD_PATH`. Exit 0 when the index was
built, 3 when there was nothing to build, 1 on failure (the reason on stderr). It runs at
a lower CPU priority, so searches and embedding in the server keep their share.
"""

from __future__ import annotations

import os
import sys

NOTHING_TO_DO = 3


def main(argv: list[str]) -> int:
    import qdrant_edge

    if len(argv) != 1:
        print("usage: python -m qdrant_mcp_memory.backends.optimize SHARD_PATH", file=sys.stderr)
        return 2
    os.nice(10)
    shard = qdrant_edge.EdgeShard.load(argv[0])
    try:
        changed = shard.optimize()
        shard.flush()
    finally:
        shard.close()
    return 0 if changed else NOTHING_TO_DO


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
