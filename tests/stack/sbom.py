"""CycloneDX SBOMs of the server image: what is really inside it, read from the image itself.

    python tests/stack/sbom.py IMAGE OUT_DIR

writes OUT_DIR/image.cdx.json (the Debian packages and every Python distribution installed in
the image, with package URLs) and OUT_DIR/python-lock.cdx.json (cyclonedx-py over the
hash-pinned server/requirements.lock), both validated against the CycloneDX 1.6 schema.
The release pipeline attaches BuildKit's own SBOM attestation as well.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from cyclonedx.model.bom import Bom
from cyclonedx.model.component import Component, ComponentType
from cyclonedx.output.json import JsonV1Dot6
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from packageurl import PackageURL

REPO = Path(__file__).resolve().parents[2]
LIST_PYTHON = (
    "import importlib.metadata as m, json; "
    "print(json.dumps(sorted({(d.metadata['Name'], d.version) for d in m.distributions()})))"
)


def normalized(name: str) -> str:
    """A Python distribution name as package URLs and indexes write it (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _in_image(image: str, *command: str) -> str:
    return subprocess.run(
        ["docker", "run", "--rm", "--network", "none", "--entrypoint", command[0], image, *command[1:]],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout


def image_bom(image: str) -> Bom:
    bom = Bom()
    root = Component(name=image, type=ComponentType.CONTAINER, bom_ref=f"image:{image}")
    bom.metadata.component = root
    for line in _in_image(image, "dpkg-query", "-W", "-f", "${Package} ${Version} ${Architecture}\\n").splitlines():
        name, version, arch = line.split()
        purl = PackageURL("deb", "debian", name, version, {"arch": arch})
        bom.components.add(Component(name=name, version=version, purl=purl, bom_ref=str(purl)))
    for name, version in json.loads(_in_image(image, "python", "-c", LIST_PYTHON)):
        purl = PackageURL("pypi", None, normalized(name), version)
        bom.components.add(Component(name=name, version=version, purl=purl, bom_ref=str(purl)))
    bom.register_dependency(root, list(bom.components))  # the image holds each of them
    return bom


def write(bom: Bom, path: Path) -> None:
    text = JsonV1Dot6(bom).output_as_string(indent=2)
    problem = JsonStrictValidator(SchemaVersion.V1_6).validate_str(text)
    if problem is not None:
        raise ValueError(f"{path.name} does not validate: {problem}")
    path.write_text(text)


def lock_bom(out: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "cyclonedx_py", "requirements", "--of", "JSON", "--sv", "1.6", "-o", str(out),
         str(REPO / "server" / "requirements.lock")],
        check=True,
        capture_output=True,
        timeout=300,
    )  # fmt: skip


def main(image: str, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    write(image_bom(image), out_dir / "image.cdx.json")
    lock_bom(out_dir / "python-lock.cdx.json")


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
