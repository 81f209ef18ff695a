"""The failures the benchmark reports as one clear message instead of a traceback."""


class BenchError(RuntimeError):
    """A server that did not start or answer, or a result that makes no sense: the phase fails, the run goes on."""


class SetupError(BenchError):
    """Setup the benchmark cannot do (no official venv, no model cache, no interpreter): the run stops, exit 2."""
