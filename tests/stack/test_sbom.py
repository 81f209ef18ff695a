"""SBOMs of the built image and of its locked Python dependencies (kept in .cache/sbom).

Run as root, the suite's own user: these start no Compose stack and mount no file of a user, so
the engine runs the containers the same for root and for a member of the docker group.
The stack as a user runs it: test_compose_up.py and test_scripts_up.py."""

from __future__ import annotations

import json
import re

import pytest
import sbom
from stack_support import RESULTS_DIR, record, run

from support import REPO

pytestmark = pytest.mark.stack


def test_sboms_name_what_the_image_holds(server_image: str) -> None:
    out = REPO / ".cache" / "sbom"
    sbom.main(server_image, out)
    image = json.loads((out / "image.cdx.json").read_text())
    purls = {c["purl"] for c in image["components"]}
    version = run(["docker", "run", "--rm", "--network", "none", server_image, "--version"]).stdout.split()[-1]
    assert f"pkg:pypi/qdrant-mcp-memory@{version}" in purls
    assert any(p.startswith("pkg:pypi/qdrant-edge-py@") for p in purls)
    assert any(p.startswith("pkg:deb/debian/libc6@") for p in purls)
    locked = json.loads((out / "python-lock.cdx.json").read_text())
    lock = (REPO / "server" / "requirements.lock").read_text()
    pinned = set(re.findall(r"^([a-z0-9][a-z0-9._-]*)==", lock, re.M | re.I))
    assert {sbom.normalized(c["name"]) for c in locked["components"]} >= {sbom.normalized(n) for n in pinned}
    # Every locked package the image's platform needs is in the image, at the locked version.
    installed = {p.split("@")[0]: p.split("@")[1] for p in purls if p.startswith("pkg:pypi/")}
    for component in locked["components"]:
        name = sbom.normalized(component["name"])
        if name in installed:
            assert installed[name] == component["version"], name
    assert len(installed) >= len(pinned) * 0.9
    record("sbom_components", len(image["components"]))
    (RESULTS_DIR / "sbom.txt").write_text(f"{out}\n")
