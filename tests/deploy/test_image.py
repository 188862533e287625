"""The image's recipe holds what users and the CI rely on, checked without building it.

The build itself (buildah, root, a few minutes) runs in .ci/run as `make image`: scripts/build-image
builds on scripts/base-image's Debian base, runs `--version` and a `check` from inside the image
against a loopback moto server as UID 65532 on a read-only root.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = (ROOT / "Dockerfile").read_text()
SCRIPTS = ["base-image", "build-image", "moto-world", "readme-samples", "test-prerequisites"]


def final_stage() -> str:
    return DOCKERFILE[DOCKERFILE.rindex("\nFROM "):]


def test_the_base_is_an_argument_defaulting_to_the_official_slim_image():
    assert re.search(r"^ARG BASE_IMAGE=python:3\.12-slim-bookworm$", DOCKERFILE, re.M)
    assert re.findall(r"^FROM (\S+)", DOCKERFILE, re.M) == ["${BASE_IMAGE}", "${BASE_IMAGE}"]


def test_the_image_carries_the_oci_labels():
    labels = dict(re.findall(r'(org\.opencontainers\.image\.[a-z]+)="([^"]*)"', final_stage()))
    assert set(labels) >= {f"org.opencontainers.image.{k}" for k in ("source", "version", "licenses", "title", "description")}
    assert labels["org.opencontainers.image.licenses"] == "Apache-2.0"
    assert labels["org.opencontainers.image.version"] == "${VERSION}"
    assert '--build-arg "VERSION=$version"' in (ROOT / "scripts" / "build-image").read_text()


def test_the_image_runs_as_uid_65532():
    stage = final_stage()
    assert re.search(r"^ARG UID=65532$", stage, re.M) and re.search(r"^USER \$\{UID\}:\$\{UID\}$", stage, re.M)


@pytest.mark.parametrize("script", SCRIPTS)
def test_scripts_are_executable_and_parse(script):
    path = ROOT / "scripts" / script
    assert os.access(path, os.X_OK), f"chmod +x scripts/{script}"
    first = path.read_text().splitlines()[0]
    checker = ["bash", "-n", str(path)] if "bash" in first else ["python3", "-c", "import ast, sys; ast.parse(open(sys.argv[1]).read())", str(path)]
    result = subprocess.run(checker, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_ci_builds_the_image_after_the_tests():
    steps = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()
             if line.strip().startswith("make ")]
    assert steps == ["make test", "make image"]
    assert re.search(r"^image: .*\n\tPYTHON=\$\(BIN\)/python scripts/build-image$",
                     (ROOT / "Makefile").read_text(), re.M)
