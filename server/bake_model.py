"""Bake the embedding model into the image (run by the Dockerfile's model stage).

    python bake_model.py MODEL_NAME CACHE_DIR

The model comes from CACHE_DIR when it is already there (a fastembed cache copied in from
the build context's model-cache/ folder: no network needed), else it is downloaded from the
Hugging Face hub. Either way it is then verified: loaded offline and used to embed a
sentence, which must give a unit vector of the model's size. An empty MODEL_NAME bakes
nothing and empties CACHE_DIR (the image then needs a cache mounted at run time).
"""

from __future__ import annotations

import hashlib
import math
import os
import shutil
import sys
from pathlib import Path


def main(model_name: str, cache: Path) -> int:
    for stray in (cache / "README.md", cache / ".locks"):
        if stray.is_dir():
            shutil.rmtree(stray)
        elif stray.exists():
            stray.unlink()
    if not model_name:
        for child in cache.iterdir():
            if child.is_dir():
                shutil.rmtree(child)
            else:
                child.unlink()
        print("bake: no model baked (EMBEDDING_MODEL_BAKE is empty)")
        return 0
    from fastembed import TextEmbedding

    os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        TextEmbedding(model_name, cache_dir=str(cache))
        print(f"bake: {model_name} taken from the build context's model-cache/ (no download)")
    except ValueError:
        del os.environ["HF_HUB_OFFLINE"]
        print(f"bake: {model_name} is not in model-cache/; downloading it from the Hugging Face hub")
        TextEmbedding(model_name, cache_dir=str(cache))
        os.environ["HF_HUB_OFFLINE"] = "1"
    # Verify what the image will use: loaded offline, it embeds a sentence into a unit vector.
    vector = next(iter(TextEmbedding(model_name, cache_dir=str(cache)).embed(["the model works offline"])))
    norm = math.sqrt(float((vector * vector).sum()))
    if len(vector) < 8 or abs(norm - 1) > 1e-3:
        print(f"bake: {model_name} gave a vector of size {len(vector)} and norm {norm:.4f}", file=sys.stderr)
        return 1
    for onnx in sorted(cache.rglob("*.onnx")):
        digest = hashlib.sha256(onnx.read_bytes()).hexdigest()
        print(f"bake: {onnx.relative_to(cache)} sha256 {digest}")
    print(f"bake: {model_name} verified ({len(vector)} dimensions)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1], Path(sys.argv[2])))
