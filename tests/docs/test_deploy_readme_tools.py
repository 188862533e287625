"""deploy/README.md says where helm and kubectl come from before its first command that needs them,
and those lines work: scripts/get-tools puts the tools where the README's PATH looks for them."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from tests.support.helmchart import tool

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "deploy" / "README.md"
FENCE = re.compile(r"^```[a-z]*\n(.*?)^```", re.M | re.S)


def first_block_running(*tools: str) -> str:
    for block in FENCE.findall(README.read_text()):
        if any(re.match(rf"\s*{name}\s", line) for line in block.splitlines() for name in tools):
            return block
    raise AssertionError(f"deploy/README.md runs none of {tools}")


def test_the_first_helm_or_kubectl_command_comes_after_how_to_get_them():
    block = first_block_running("helm", "kubectl")
    assert block.splitlines()[0] == "scripts/get-tools", block


def test_the_readmes_get_tools_lines_put_helm_on_path(tmp_path):
    """The block runs in a copy of the checkout that already holds the tools (get-tools then only
    says where helm is, and downloads nothing): helm answers from where get-tools installs it."""
    (tmp_path / "scripts").mkdir()
    shutil.copy2(ROOT / "scripts" / "get-tools", tmp_path / "scripts" / "get-tools")
    default_dir = re.search(r"^dir=\$\{1:-(\S+)\}$", (ROOT / "scripts" / "get-tools").read_text(), re.M)
    assert default_dir, "scripts/get-tools no longer names its default directory"
    tools = tmp_path / default_dir.group(1)
    tools.mkdir(parents=True)
    (tools / "helm").symlink_to(tool("helm"))
    (tools / "kubectl").symlink_to(tool("kubectl"))
    # Only the PATH the README sets finds helm.
    path = os.pathsep.join(d for d in ("/usr/local/bin", "/usr/bin", "/bin") if not (Path(d) / "helm").exists())
    env = {"PATH": path, "HOME": str(tmp_path)}
    result = subprocess.run(["bash", "-ec", first_block_running("helm", "kubectl")], capture_output=True,
                            text=True, env=env, cwd=tmp_path, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == f"{default_dir.group(1)}/helm"
    assert re.match(r"v\d+\.\d+", result.stdout.splitlines()[-1]), result.stdout
