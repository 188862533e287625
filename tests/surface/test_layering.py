"""The house: the layers as packages, held by the import contracts in .importlinter (one adapter per
SDK, no import cycle), and modules and classes small enough to read."""

import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_import_contracts_hold():
    lint = pathlib.Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "BROKEN" not in result.stdout


MAX_MODULE_LINES = 400
MAX_CLASS_LINES = 250


def test_modules_and_classes_stay_small():
    """A module does one job and a class one part of it: none grows past the size where a reader
    loses the thread (docs/architecture.md)."""
    import ast

    too_big = []
    for path in sorted((ROOT / "monitor").rglob("*.py")):
        source = path.read_text()
        name = path.relative_to(ROOT)
        if len(source.splitlines()) > MAX_MODULE_LINES:
            too_big.append(f"{name}: {len(source.splitlines())} lines")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.ClassDef) and node.end_lineno - node.lineno + 1 > MAX_CLASS_LINES:
                too_big.append(f"{name}: class {node.name}, {node.end_lineno - node.lineno + 1} lines")
    assert not too_big, too_big
