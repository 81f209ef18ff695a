"""Command line: `qdrant-mcp-memory [options]` serves; `qdrant-mcp-memory migrate ...` copies collections;
`qdrant-mcp-memory purge-expired [--collection NAME]` deletes expired memories now; `qdrant-mcp-memory
export` and `import` write memories to JSON Lines and read them back (exchange.py).

Exit codes: 0 stopped cleanly; 1 could not start or run (model missing, port in use, storage
locked or unreadable); 2 invalid settings or arguments. Every expected failure is one line.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import sys
from pathlib import Path

from pydantic import ValidationError

from . import __version__
from .settings import Settings

log = logging.getLogger("qdrant_mcp_memory")
PROG = "qdrant-mcp-memory"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="MCP server for Qdrant (semantic memory). `qdrant-mcp-memory migrate --help` moves data "
        "between embedded folders and Qdrant servers; `qdrant-mcp-memory purge-expired --help` deletes expired "
        "memories; `export --help` and `import --help` move memories through a JSON Lines file.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    parser.add_argument("--transport", choices=["stdio", "sse", "streamable-http"], help="overrides MCP_TRANSPORT")
    parser.add_argument("--host", help="bind address for HTTP transports (overrides MCP_HOST)")
    parser.add_argument("--port", type=int, help="port for HTTP transports (overrides MCP_PORT)")
    parser.add_argument(
        "--env-file", type=Path, help="read settings from this file too (environment variables win over it)"
    )
    return parser.parse_args(argv)


def load_settings(args: argparse.Namespace) -> Settings:
    overrides = {"MCP_TRANSPORT": args.transport, "MCP_HOST": args.host, "MCP_PORT": args.port}
    given = {key: value for key, value in overrides.items() if value is not None}
    if args.env_file is not None:
        if not args.env_file.is_file():
            raise ValueError(f"--env-file {args.env_file}: no such file")
        return Settings(_env_file=args.env_file, **given)  # type: ignore[call-arg]  # pydantic-settings' init kwarg
    return Settings(**given)


def command_settings(prog: str, env_file: Path | None) -> Settings | None:
    """A subcommand's settings (the server's, from the environment and `env_file`), or None after
    saying on stderr which one is invalid (the command then exits 2)."""
    try:
        return load_settings(argparse.Namespace(transport=None, host=None, port=None, env_file=env_file))
    except ValidationError as exc:
        message = describe(exc)
    except ValueError as exc:
        message = str(exc)
    print(f"{prog}: invalid setting: {message}", file=sys.stderr)
    return None


def expected_failure(exc: BaseException, kinds: tuple[type[BaseException], ...]) -> BaseException | None:
    """The failure meant for the user (one of `kinds`), also when an engine's task group wrapped it."""
    if isinstance(exc, kinds):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        return next((found for inner in exc.exceptions if (found := expected_failure(inner, kinds)) is not None), None)
    return None


def describe(error: ValidationError) -> str:
    """One line naming the variable(s) at fault."""
    parts = []
    for item in error.errors():
        name = ".".join(str(part) for part in item["loc"]) or "settings"
        message = item["msg"].removeprefix("Value error, ")
        parts.append(f"{name}: {message}" if item["loc"] else message)
    return "; ".join(parts)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["migrate"]:
        from .migrate import main as migrate

        return migrate(argv[1:])
    if argv[:1] == ["purge-expired"]:
        from .purge import main as purge

        return purge(argv[1:])
    if argv[:1] in (["export"], ["import"]):
        from .exchange import main as exchange

        return exchange(argv[0], argv[1:])
    args = parse_args(argv)
    try:
        settings = load_settings(args)
    except ValidationError as exc:
        return _invalid(describe(exc))
    except ValueError as exc:
        return _invalid(str(exc))
    # Before numpy loads: the engines' searches are single matrix-vector products, and OpenBLAS
    # threads spin between calls, taking the cores the embedding runs and the event loop need.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    # Argument errors reach clients (and LLMs): without the pydantic documentation link.
    os.environ.setdefault("PYDANTIC_ERRORS_INCLUDE_URL", "0")
    from .logs import configure_logging
    from .telemetry import TelemetryConfigError, setup_telemetry

    configure_logging(settings)
    try:
        telemetry = setup_telemetry(settings)
    except TelemetryConfigError as exc:
        return _invalid(str(exc))
    try:
        first_line = None
        if settings.transport == "stdio":  # before the SDK loads: see transport/stdio.py
            from .transport.stdio import answer_first_line

            first_line = answer_first_line()
        import anyio

        from .serve import serve

        anyio.run(serve, settings, telemetry, first_line, backend_options={"use_uvloop": _has_uvloop()})
    except BaseException as exc:  # every failure ends as one line and exit 1 (Ctrl-C included)
        if isinstance(exc, KeyboardInterrupt):
            return 0
        _report_failure(exc)
        return 1
    finally:
        telemetry.shutdown()
    return 0


def _invalid(message: str) -> int:
    print(f"{PROG}: invalid setting: {message}", file=sys.stderr)
    return 2


def _has_uvloop() -> bool:
    """uvloop (a dependency on Linux and macOS) runs the event loop in C: less CPU per call."""
    return importlib.util.find_spec("uvloop") is not None


def _report_failure(exc: BaseException) -> None:
    """Expected start-up failures get one clear line; anything else its traceback."""
    from .embeddings import EmbeddingModelError
    from .errors import ServiceError
    from .serve import StartupError

    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            _report_failure(inner)
    elif isinstance(exc, EmbeddingModelError | ServiceError | StartupError):
        log.error("cannot start: %s", exc)
    else:
        log.error("server failed", exc_info=exc)
