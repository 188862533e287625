"""The docs stand alone and say what the code does: no pointer to files outside the repository,
and docs/reference.md's tables of flags, finding codes and metrics match the code and the README."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from monitor import cli
from monitor.core import migration
from monitor.core.model import Finding, LoadBalancerResult, Report, Severity
from monitor.surface.metrics import Metrics
from monitor.surface.series import KNOWN_FINDINGS
from tests.support.markdown import table

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "docs" / "reference.md"
# Documents that live outside the repository: a user of it does not have them. Spelled in pieces
# so that this file does not match itself.
OUTSIDE = re.compile("|".join(["shared" + "/", r"SPEC\.md", r"DOMAIN\.md", r"DESIGN\.md", r"TESTING\.md"]))


def repository_files() -> list[Path]:
    try:
        listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                                capture_output=True, text=True, check=True, timeout=60).stdout.split("\n")
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout: the tracked files cannot be listed")
    return [ROOT / name for name in listed if name and (ROOT / name).is_file()]


def test_no_file_points_outside_the_repository():
    hits = []
    for path in repository_files():
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue  # binary
        hits += [f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
                 for n, line in enumerate(text.splitlines(), 1) if OUTSIDE.search(line)]
    assert not hits, "point at docs/ (reference.md, controllers.md) instead:\n" + "\n".join(hits)


def code_spans(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


def test_reference_lists_every_flag_with_its_default_and_commands():
    rows = {code_spans(r[0])[0].split()[0]: r for r in table(REFERENCE.read_text(), "## Configuration")}
    assert set(rows) == set(cli.OPTIONS), "docs/reference.md's flag table and monitor/cli.py OPTIONS differ"
    for flag, (_, default, _) in cli.OPTIONS.items():
        _, shown_default, commands, _ = rows[flag]
        if default is not None:
            assert f"`{default}`" in shown_default, f"{flag}: default {default} not in {shown_default!r}"
        allowed = cli.ONLY.get(flag)
        assert (commands == "all") if allowed is None else (set(commands.split(", ")) == allowed), flag


def test_reference_and_readme_list_the_same_finding_codes():
    reference = {code_spans(r[0])[0]: r[1] for r in table(REFERENCE.read_text(), "## Finding codes")}
    readme = {code_spans(r[0])[0]: r[1] for r in table((ROOT / "README.md").read_text(), "### Findings")}
    assert reference == readme, "the finding codes of README.md and docs/reference.md differ"
    assert set(KNOWN_FINDINGS) <= set(reference)
    always = re.search(r"has a series at 0 from the first cycle for(.*?)so", REFERENCE.read_text(), re.S).group(1)
    named = set(code_spans(always)) | {c for c, severity in reference.items() if severity == "critical"}
    assert named == set(KNOWN_FINDINGS)


def test_findings_are_listed_in_the_order_of_the_reference_table():
    """preflight lists findings by severity, then by what cuts traffic first: the order of the
    tables in docs/reference.md and README.md, which name every code the monitor ranks."""
    for path, heading in ((REFERENCE, "## Finding codes"), (ROOT / "README.md", "### Findings")):
        rows = table(path.read_text(), heading)
        findings = [Finding(code=code_spans(r[0])[0], severity=Severity(r[1]), message="m") for r in rows]
        ranked = sorted(reversed(findings), key=migration.order_key)
        assert [f.code for f in ranked] == [f.code for f in findings], f"{path.name}: the codes are not in listing order"
        assert set(migration.ranked_codes()) == {f.code for f in findings}, f"{path.name} and the ranked codes differ"


def exposed() -> dict[str, tuple[str, set[str]]]:
    """Every metric family /metrics has once each series exists: name -> (type, label names)."""
    m = Metrics()
    m.publish(Report(cluster="c", region="r", complete=True, load_balancers=(
        LoadBalancerResult(name="a", arn="arn:a", adoption="v2", security_groups=(), reachable=True, paths=(),
                           ingress_namespace="shop", ingress="web"),
        LoadBalancerResult(name="b", arn="arn:b", adoption="v2", security_groups=(), reachable=False, paths=()),),
        findings=(Finding(code="ACCESS_REVOKED", severity=Severity.CRITICAL, message="x"),
                  Finding(code="VERDICT_DISPUTED", severity=Severity.WARNING, message="y", load_balancer="b"))),
        now=1.0)
    m.set_targets([("a", "tg-a", "healthy", 2)])  # after a health read
    m.count_disputes(1)
    m.count_revocations(["a"])
    m.observe_cycle(0.1)
    m.count_topology_refresh("start")
    m.api_call("ec2", "DescribeSecurityGroupRules")
    m.api_error("ec2", "DescribeSecurityGroupRules", "Throttling")
    m.set_state_persisted(True)  # as with --state-file or the ConfigMap
    m.observe_event("RevokeSecurityGroupIngress", 2.0)  # as with --events-queue
    m.observe_outage_window(4.0)
    m.discovery_rate("elbv2", 10.0)  # as the daemon's pacer sets it at start
    m.discovery_wait("elbv2", 0.5)
    families = {}
    for family in text_string_to_metric_families(m.exposition()[0].decode()):
        labels = {name for s in family.samples for name in s.labels} - {"le"}
        families[family.name] = (family.type, labels)
    return families


def test_reference_metrics_table_is_what_the_daemon_exposes():
    rows = {}
    for cells in table(REFERENCE.read_text(), "## Metrics"):
        name = code_spans(cells[0])[0]
        rows[name] = (cells[1], {span.split()[0] for span in code_spans(cells[2].split("(")[0])})
    got = exposed()
    ours = {name: spec for name, spec in got.items() if name.startswith("albsg_")}
    for name, (type_, labels) in ours.items():
        # the text parser gives counters without their _total suffix
        documented = rows.get(name) or rows.get(name + "_total")
        assert documented, f"{name} is exposed but not in docs/reference.md"
        assert documented == (type_, labels), f"{name}: documented {documented}, exposed {(type_, labels)}"
    assert {n.removesuffix("_total") for n in rows if n.startswith("albsg_")} == set(ours)
    assert "process_resident_memory_bytes" in got and "python_info" in got


def test_daemon_doc_signal_table_says_what_each_handled_signal_does():
    from monitor.daemon.runner import IGNORED_SIGNALS, STOP_SIGNALS

    rows = table((ROOT / "docs" / "daemon.md").read_text(), "### Signals")
    effect = {name: row[1] for row in rows for name in re.findall(r"SIG[A-Z0-9]+", row[0])}
    for signum in STOP_SIGNALS:
        assert "clean stop" in effect[signum.name], signum.name
    for signum in IGNORED_SIGNALS:
        assert "`signal_ignored`" in effect[signum.name], signum.name
    assert "cannot be caught" in effect["SIGKILL"] and "cannot be caught" in effect["SIGSTOP"]


def test_every_log_event_the_daemon_doc_lists_is_logged_by_the_code():
    rows = table((ROOT / "docs" / "daemon.md").read_text(), "context is in fields:")
    source = "\n".join(p.read_text() for p in (ROOT / "monitor").rglob("*.py"))
    listed = {name for row in rows for name in code_spans(row[0])}
    assert {"daemon_starting", "state_missing", "signal_ignored", "enforce_without_leader_election"} <= listed
    missing = sorted(name for name in listed if f'"{name}"' not in source)
    assert not missing, missing


def test_the_architecture_page_matches_the_tree():
    """docs/architecture.md names every module where it sits, and no module that is not there."""
    page = (ROOT / "docs" / "architecture.md").read_text()
    modules = {p.relative_to(ROOT).as_posix() for p in (ROOT / "monitor").rglob("*.py")
               if p.name not in ("__init__.py", "__main__.py")}
    packages = {m.rsplit("/", 1)[0] for m in modules if m.count("/") > 1}
    for package in packages:
        assert f"`{package}/`" in page, f"{package}/ is not on the page"
    # A module is named by its file name or its path; a name two packages share is named once.
    named = set(re.findall(r"`([a-z0-9_]+\.py)`", page))
    named |= {p.rsplit("/", 1)[1] for p in re.findall(r"`(monitor/[a-z0-9_/]+\.py)`", page)}
    missing = sorted(m for m in modules if m.rsplit("/", 1)[1] not in named)
    assert not missing, f"modules the page does not name: {missing}"
    present = {m.rsplit("/", 1)[1] for m in modules}
    stale = sorted(n for n in named if n not in present)
    assert not stale, f"the page names modules that are gone: {stale}"
    for path in re.findall(r"`((?:monitor|tests)/[a-z0-9_/.]+?)/?`", page):
        assert (ROOT / path).exists(), f"the page names {path}, which does not exist"
