"""The int8 variant of a fastembed model (EMBEDDING_QUANTIZED=true): made once from the model
already in the cache, never downloaded.

ONNX Runtime's dynamic quantization stores the weights as int8 and quantizes activations per
run: all-MiniLM-L6-v2 shrinks from 86 to 22 MB and a query costs about half the CPU, but its
vectors differ from the full-precision ones (bench phase query-path measures both, and recall),
and shift slightly with the texts that share a run (the activations' scale is the run's).
So one collection is written and searched with one variant: settings.vector_name names the
int8 vectors apart, and the store refuses a collection written with the other.

The variant is a fastembed model folder of its own in the cache, `int8/<the original's folder
relative to the cache>/`: the quantized model under the original's file name, beside copies of
the tokenizer files; fastembed loads it as `specific_model_path`. Making it needs the `onnx`
package (the `quantize` extra) and a writable cache; loading it needs neither.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from . import EmbeddingModelError

log = logging.getLogger(__name__)

QUANTIZED_FOLDER = "int8"
NO_QUANTIZER = 3  # the child's exit status when onnx is not installed


def quantized_folder(original: Path, model_file: str, cache: Path) -> Path:
    """The int8 model folder made from fastembed's folder `original` (which holds `model_file`),
    quantized now if the cache does not hold it yet."""
    try:
        relative = original.resolve().relative_to(cache.resolve())
    except ValueError:  # a model folder outside the cache: keep it apart by its name
        relative = Path(original.name)
    folder = cache / QUANTIZED_FOLDER / relative
    if not (folder / model_file).is_file():
        _quantize(original, model_file, folder)
    return folder


def _quantize(original: Path, model_file: str, folder: Path) -> None:
    log.info("quantizing the embedding model to int8 (once)", extra={"source": str(original / model_file)})
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".making-", dir=folder.parent))
    except OSError as exc:
        raise EmbeddingModelError(
            f"EMBEDDING_QUANTIZED=true: cannot write the int8 model into the model cache ({folder.parent}: "
            f"{exc.strerror or exc}): make FASTEMBED_CACHE_PATH writable for the first start"
        ) from None
    try:
        (staging / model_file).parent.mkdir(parents=True, exist_ok=True)
        # A child process: the quantizer logs dozens of lines to the root logger, and the model's
        # graph it holds (hundreds of MB) goes back to the system when the child ends.
        child = [sys.executable, "-m", __name__, str(original / model_file), str(staging / model_file)]
        done = subprocess.run(child, capture_output=True, text=True, check=False)  # noqa: S603  # our own module
        if done.returncode == NO_QUANTIZER:
            raise EmbeddingModelError(
                f"EMBEDDING_QUANTIZED=true: the int8 model is not in the cache yet ({folder}), and making it needs "
                "the onnx package: install qdrant-mcp-memory[quantize] for the first start"
            )
        if done.returncode != 0:
            why = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
            raise EmbeddingModelError(f"EMBEDDING_QUANTIZED=true: quantizing {original / model_file} failed: {why}")
        for path in original.rglob("*"):
            relative = path.relative_to(original)
            if path.is_file() and path.suffix != ".onnx":
                (staging / relative).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, staging / relative)
        try:
            staging.rename(folder)
        except OSError:
            if not (folder / model_file).is_file():  # not a concurrent start that finished first
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info("embedding model quantized", extra={"folder": str(folder), "bytes": (folder / model_file).stat().st_size})


def main(source: str, target: str) -> int:
    """The child's work: `python -m qdrant_mcp_memory.embeddings.quantize SOURCE TARGET`."""
    try:
        from onnxruntime.quantization import QuantType, quantize_dynamic  # type: ignore[import-untyped]
    except ImportError:
        return NO_QUANTIZER
    quantize_dynamic(source, target, weight_type=QuantType.QInt8)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(*sys.argv[1:3]))
