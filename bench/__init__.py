"""The benchmark of the qdrant-mcp-memory server, run as `python -m bench` (see bench/README.md).

Importing the package does nothing: every module loads what it needs when it is called,
so tests can import `bench.serverproc` without the benchmark's dependencies.
"""
