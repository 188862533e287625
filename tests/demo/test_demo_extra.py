"""Without the demo extra, every demo entry point says in one line which extra to install (exit 2).

The project is run as installed without moto: a sitecustomize on PYTHONPATH hides moto from
import, as if `pip install alb-sg-monitor` had been run without `[demo]`.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Both ways of installing: from the package index, and from a checkout (editable, or `make install`).
MESSAGE = ("alb-sg-monitor: the demo needs the 'demo' extra: pip install 'alb-sg-monitor[demo]' "
           "(from a checkout: pip install -e '.[demo]', or make install)")

HIDE_MOTO = '''
import sys

class _NoMoto:
    """Answers every import of moto as a package that is not installed."""
    def find_spec(self, name, path=None, target=None):
        if name == "moto" or name.startswith("moto."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, _NoMoto())
'''


@pytest.fixture(scope="module")
def without_moto(tmp_path_factory) -> dict[str, str]:
    site = tmp_path_factory.mktemp("site")
    (site / "sitecustomize.py").write_text(HIDE_MOTO)
    return {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", "PYTHONPATH": f"{site}:{ROOT}",
            "AWS_EC2_METADATA_DISABLED": "true"}


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "monitor", *args], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=120)


def test_the_sitecustomize_really_hides_moto(without_moto):
    probe = subprocess.run([sys.executable, "-c", "import moto"], capture_output=True, text=True,
                           env=without_moto, timeout=60)
    assert probe.returncode == 1 and "No module named 'moto'" in probe.stderr


@pytest.mark.parametrize("args", [("demo",), ("check", "--demo"), ("preflight", "--demo"),
                                  ("run", "--demo")])
def test_each_demo_entry_point_names_the_extra_on_one_line(without_moto, args):
    result = run(without_moto, *args)
    assert (result.returncode, result.stderr.strip(), result.stdout) == (2, MESSAGE, ""), result


def test_commands_without_the_demo_do_not_need_moto(without_moto):
    result = run(without_moto, "--version")
    assert result.returncode == 0 and result.stdout.startswith("alb-sg-monitor "), result
    # Reaches the AWS setup (no region here), not an import of moto.
    result = run(without_moto, "check", "--cluster-name", "prod", "--kubernetes", "off")
    assert result.returncode == 2 and "moto" not in result.stderr and "Traceback" not in result.stderr, result


def test_the_docs_quote_the_message_as_it_is():
    for page in (ROOT / "README.md", ROOT / "docs" / "reference.md"):
        assert f"`{MESSAGE}`" in " ".join(page.read_text().split()), page
