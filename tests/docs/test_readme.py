"""README.md shows what the commands really print, and every command line the docs show parses.

The sample outputs are rewritten by scripts/readme-samples from the real commands; this fails when
README.md differs from what that script would write now.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from monitor.cli import build_parser
from tests.support.markdown import named_rows

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", ROOT / "deploy" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```[a-z]*\n(.*?)^```", re.M | re.S)


def test_readme_samples_are_what_the_commands_print_now():
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "readme-samples"), "--check"],
                            capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert result.returncode == 0, (
        "README.md's sample outputs drifted from the real commands; regenerate them with "
        f"`scripts/readme-samples` and review the diff:\n{result.stdout}{result.stderr}")


def test_readme_has_the_samples_it_promises():
    readme = (ROOT / "README.md").read_text()
    names = re.findall(r"<!-- sample: ([^>]+?) -->", readme)
    assert names == ["check --demo", "check, rule revoked", "preflight --demo"]
    assert readme.count("<!-- /sample -->") == len(names)


def command_lines() -> list[tuple[str, str]]:
    """(file, command line) for every `alb-sg-monitor ...` command in the docs' code blocks: at the
    start of a line (after `$ `, `# or: ` or environment assignments) or after `kubectl exec ... --`."""
    found = []
    for path in DOCS:
        for block in FENCE.findall(path.read_text()):
            for line in block.replace("\\\n", " ").splitlines():
                line = re.sub(r"^\$ ", "", line.strip())
                match = (re.search(r"\s--\s+(alb-sg-monitor(?:\s.*)?)$", line)
                         or re.match(r"^(?:#\s*or[^:]*:\s*)?(?:[A-Z_]+=\S+\s+)*(alb-sg-monitor(?:\s.*)?)$", line))
                if match:
                    command = re.split(r"\s(?:#|\||&&|;)", match.group(1))[0].strip()
                    found.append((path.relative_to(ROOT).as_posix(), command))
    return found


def test_the_docs_show_commands():
    commands = {command.split()[1] for _, command in command_lines() if len(command.split()) > 1}
    assert {"check", "preflight", "run"} <= commands


@pytest.mark.parametrize("where, command", command_lines())
def test_each_command_the_docs_show_parses(where, command):
    argv = shlex.split(command)[1:]
    try:
        build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse's usage error (or --help / --version, exit 0)
        assert exc.code == 0, f"{where}: `{command}` does not parse"


OWN_CPU = "steady cycle: the check's own CPU"


def test_the_readmes_benchmark_figures_are_those_of_bench_results():
    """The README quotes one `make bench-5000` run, whose whole output is bench/results.md."""
    readme, results = (ROOT / "README.md").read_text(), (ROOT / "bench" / "results.md").read_text()
    budgets = named_rows(readme, "The budgets the monitor sets itself at scale")
    assert budgets and all(row in named_rows(results, "## Budgets") for row in budgets)
    cost = {r["ALBs"]: r for r in named_rows(results, "## Cost")}
    latency = {r["ALBs"]: r for r in named_rows(results, "## Latency, bursts, agreement")}
    queued = {r["ALBs"]: r for r in named_rows(results, "## With the events queue")}
    shown = named_rows(readme, "`make bench` measures the monitor on simulated clusters")
    assert [row["ALBs"] for row in shown] == list(cost)
    for row in shown:
        albs = row["ALBs"]
        assert row["daemon peak RSS"] == cost[albs]["daemon peak RSS"], albs
        assert row["full discovery (10 req/s)"].startswith(f"{cost[albs]['full discovery: requests']} requests"), albs
        assert f"check {cost[albs][OWN_CPU]}" in row["steady cycle"], albs
        assert row["revoked → metric"] == latency[albs]["revoked → metric 0"], albs
        assert row["new ALB → in `/metrics`"].startswith(latency[albs]["new ALB → in /metrics"] + ","), albs
        q = queued[albs]
        assert (f"- {albs} ALBs: {q['steady cycle: requests'].removesuffix('.0')} requests a check, check "
                f"{q[OWN_CPU]}") in readme, albs
        assert (f"a revocation no event tells of in {q['revoked → metric 0 (no event)']}, a new ALB "
                f"{q['new ALB (CreateLoadBalancer event) → in /metrics']} after") in readme, albs
