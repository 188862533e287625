"""The demo's live view, fed cycles directly: what it says about remediation decisions."""

from __future__ import annotations

import io
import json

import pytest

from monitor.core.memory import RuleTuple
from monitor.core.policy import Decision, WriteResult
from monitor.daemon.remediation import Outcome
from monitor.daemon.summary import CycleSummary
from monitor.demo.view import LiveView
from tests.support.pure_world import ALB_SG, NODE_SG, SSH_RULE, observe

LB = "1a2b3c4d-shop-web-0f1e"
RULE = RuleTuple(NODE_SG, "tcp", 0, 65535, "sg", ALB_SG)
OPEN = RuleTuple(NODE_SG, "tcp", 30080, 30080, "cidr", "0.0.0.0/0")


@pytest.fixture(autouse=True)
def no_width_from_the_environment(monkeypatch):
    """Piped, the view's width comes from COLUMNS (some test runners set it): each test says its own."""
    monkeypatch.delenv("COLUMNS", raising=False)


class Clock:
    now = 100.0

    def __call__(self) -> float:
        return self.now


def feed(mode: str, *outcomes: Outcome) -> str:
    out = io.StringIO()
    # A wide terminal: the lines whole (fitting them to a width is tested apart).
    view = LiveView(out, mode, "http://127.0.0.1:9917/metrics", clock=Clock(), columns=300)
    report, _ = observe((SSH_RULE,))
    view.cycle(CycleSummary(report=report))
    view.cycle(CycleSummary(report=report, remediations=outcomes))
    return out.getvalue()


def decision(**kwargs) -> Decision:
    return Decision(**{"kind": "restore", "action": "restore", "rule": RULE, "load_balancers": (LB,),
                       "ingresses": (("shop", "web"),), "since": 1000.0, **kwargs})


def test_a_restore_is_a_line_naming_the_rule_the_alb_and_how_long_the_path_was_cut():
    restored = Outcome(decision(), WriteResult("restored", rule_id="sgr-0new"), "restored", True, at=1075.0)
    text = feed("lines", restored)
    assert (f"RESTORED  alb-sg-monitor restored tcp 0-65535 from {ALB_SG} on {NODE_SG} (sgr-0new) for {LB} "
            "(Ingress shop/web), 75.0s after the path was lost") in text


def test_a_rule_another_writer_put_back_first_is_said_and_not_counted_as_a_restore():
    present = Outcome(decision(), WriteResult("duplicate", code="InvalidPermission.Duplicate"), "already_present",
                      True, at=1075.0)
    text = feed("lines", present)
    assert (f"PRESENT   alb-sg-monitor went to restore tcp 0-65535 from {ALB_SG} on {NODE_SG} for {LB} and found it "
            "already there: another writer put it back first") in text
    assert "RESTORED" not in text and "restored by alb-sg-monitor" not in text


def test_a_path_left_to_a_human_and_a_dry_run_are_said_too():
    held = Outcome(decision(rule=OPEN, action="suppressed", reason="cidr_not_restored"), None, "suppressed", True, 1075.0)
    dry = Outcome(decision(action="dry_run"), None, "dry_run", True, 1075.0)
    text = feed("lines", held, dry)
    assert f"HELD      alb-sg-monitor does not restore tcp 30080 from 0.0.0.0/0 on {NODE_SG} for {LB}" in text
    assert f"DRY RUN   observe mode: alb-sg-monitor would restore tcp 0-65535 from {ALB_SG} on {NODE_SG} for {LB}" in text
    records = [json.loads(line) for line in feed("json", held, dry).splitlines()]
    assert [r["type"] for r in records if r["type"] in ("not_restored", "dry_run")] == ["not_restored", "dry_run"]
    # Repeats of a decision already announced are not said again.
    assert "HELD" not in feed("lines", Outcome(held.decision, None, "suppressed", False, 1090.0))


def test_the_live_table_never_counts_an_unknown_path_as_covered():
    from monitor.core.model import LoadBalancerResult, PathResult, Report

    def path(target, covered):
        return PathResult("arn:lb", "arn:tg", target, (8080,), ("sg-1",), covered)

    lb = LoadBalancerResult(LB, "arn:lb", "v2", ("sg-2",), None,
                            (path("10.0.0.1", True), path("10.0.0.2", None), path("10.0.0.3", None)))
    out = io.StringIO()
    LiveView(out, "lines", "http://127.0.0.1:9917/metrics", clock=Clock()).cycle(
        CycleSummary(report=Report("c", "r", complete=False, load_balancers=(lb,), findings=())))
    row = next(line for line in out.getvalue().splitlines() if line.startswith(LB))
    assert row.split()[3:6] == ["1/3", "(2", "unknown)"]


def test_once_the_demo_ends_a_check_still_finishing_prints_nothing_after_the_summary():
    """A check in flight when the story ends (its listener runs after the summary) stays silent:
    the summary is the demo's last line, as `--output json` readers rely on."""
    out = io.StringIO()
    view = LiveView(out, "json", "http://127.0.0.1:9917/metrics", clock=Clock())
    report, _ = observe((SSH_RULE,))
    view.cycle(CycleSummary(report=report))
    view.end()
    view.emit({"type": "summary"}, final=True)
    view.cycle(CycleSummary(report=report))  # the late check
    view.note("late")
    assert [json.loads(line)["type"] for line in out.getvalue().splitlines()] == ["cycle", "summary"]


def test_a_revocation_of_many_paths_is_said_counted_once_per_alb_as_the_metric_counts_it():
    from monitor.core.transitions import Revocation

    report, _ = observe((SSH_RULE,))
    lost = tuple(Revocation(LB, "arn:lb", "arn:tg", f"i-{n}", (30080,), (30080,), ("sg-1",)) for n in range(3))
    out = io.StringIO()
    view = LiveView(out, "lines", "http://127.0.0.1:9917/metrics", clock=Clock())
    view.cycle(CycleSummary(report=report))
    other = Revocation("other-alb", "arn:lb2", "arn:tg2", "i-9", (80,), (80,), ("sg-1",))
    view.cycle(CycleSummary(report=report, revocations=lost + (other,)))
    lines = out.getvalue().splitlines()
    assert len([line for line in lines if "  REVOKED  " in line]) == 4
    counted = [line for line in lines if "albsg_rule_revocations_total" in line]
    assert [line.split("COUNTED   ", 1)[1] for line in counted] == [
        f"{LB}: once in albsg_rule_revocations_total (3 paths)",
        "other-alb: once in albsg_rule_revocations_total (1 path)"]
    assert view.seen.revocations == {LB: 1, "other-alb": 1}
    # JSON readers get one `revoked` record per path, and no record claims a count.
    json_out = io.StringIO()
    view = LiveView(json_out, "json", "http://127.0.0.1:9917/metrics", clock=Clock())
    view.cycle(CycleSummary(report=report, revocations=lost))
    assert [json.loads(line)["type"] for line in json_out.getvalue().splitlines()] == ["revoked"] * 3 + ["cycle"]


def test_piped_lines_fit_the_width_given_and_the_table_keeps_every_state(monkeypatch):
    from monitor.core.model import LoadBalancerResult, PathResult, Report

    def alb(name, ingress, reachable):
        path = PathResult("arn:lb", "arn:tg", "10.0.0.1", (8080,), ("sg-1",), reachable)
        return LoadBalancerResult(name, f"arn:{name}", "v2", ("sg-2",), reachable, (path,), "checkout", ingress)

    albs = (alb("k8s-checkout-storefro-6db07c4126", "storefront-with-a-long-name", True),
            alb("k8s-checkout-payments-0123456789", "payments", False))
    report = Report("c", "r", complete=True, load_balancers=albs, findings=())
    monkeypatch.setenv("COLUMNS", "60")  # piped: the width comes from COLUMNS when it is set
    out = io.StringIO()
    view = LiveView(out, "lines", "http://127.0.0.1:9917/metrics", clock=Clock())
    view.cycle(CycleSummary(report=report))
    view.note("A story line long enough to be cut: " + "word " * 30)
    lines = out.getvalue().splitlines()
    assert lines and max(len(line) for line in lines) <= 60, lines
    rows = [line for line in lines if line.startswith("k8s-")]
    assert [row.split()[-1] for row in rows] == ["ok", "UNREACHABLE"]
    # the ALB's name keeps its start and its end, the Ingress stays readable
    assert rows[0].startswith("k8s-") and "…" in rows[0].split()[0] and rows[0].split()[0].endswith("07c4126")
    assert lines[-1].startswith("t+000.0s  STORY     A story line long enough") and lines[-1].endswith("…")
    monkeypatch.delenv("COLUMNS")  # no width known: 100 columns
    default = io.StringIO()
    LiveView(default, "lines", "http://127.0.0.1:9917/metrics", clock=Clock()).cycle(CycleSummary(report=report))
    assert max(len(line) for line in default.getvalue().splitlines()) == 100
    monkeypatch.setenv("COLUMNS", "200")  # a wide terminal: the whole width is used, nothing shortened
    wide = io.StringIO()
    LiveView(wide, "lines", "http://127.0.0.1:9917/metrics", clock=Clock()).cycle(CycleSummary(report=report))
    assert "k8s-checkout-storefro-6db07c4126  checkout/storefront-with-a-long-name  v2" in wide.getvalue()


def test_the_elb_confirming_a_cut_is_one_line_and_one_record_said_once():
    from dataclasses import replace

    out = io.StringIO()
    view = LiveView(out, "lines", "http://127.0.0.1:9917/metrics", clock=Clock(), columns=300)
    healthy, _ = observe((SSH_RULE,))
    healthy = replace(healthy, findings=())
    cut, _ = observe((SSH_RULE,))

    def said(confirmation: str | None) -> None:
        findings = tuple(replace(f, confirmation=confirmation) if f.code == "ACCESS_REVOKED" else f
                         for f in cut.findings)
        view.cycle(CycleSummary(report=replace(cut, findings=findings)))

    view.cycle(CycleSummary(report=healthy))
    said("pending")
    said("confirmed")
    said("confirmed")
    text = out.getvalue()
    assert text.count("ELB SAYS") == 1
    assert f"ELB SAYS  ACCESS_REVOKED on {LB} confirmed: the ELB reports those targets failing" in text
    assert text.index("DETECTED") < text.index("ELB SAYS")


def test_the_readme_lists_exactly_the_json_record_types_the_demo_can_write():
    import re
    from pathlib import Path

    from monitor.demo.view import RECORD_TYPES

    root = Path(__file__).resolve().parents[2]
    readme = root / "README.md"
    demo = readme.read_text().split("## The demo", 1)[1].split("\n## ", 1)[0]
    row = next(line for line in demo.splitlines() if line.startswith("| `--output table\\|json`"))
    listed = re.findall(r"`(\w+)`", row.split("its `type` is one of:", 1)[1])
    assert sorted(listed) == sorted(RECORD_TYPES)
    # and RECORD_TYPES is every type the code writes: each literal `"type": "..."` and note kind
    source = "".join((root / "monitor" / "demo" / name).read_text() for name in ("view.py", "story.py"))
    literal = set(re.findall(r'"type": "(\w+)"', source)) | set(re.findall(r'kind="(\w+)"', source))
    computed = {f"{kind}_failed" for kind in ("restore", "cleanup")}  # {"type": f"{d.kind}_failed"}
    assert '"type": f"{d.kind}_failed"' in source
    assert literal | computed | {"story"} == set(RECORD_TYPES)  # "story": note()'s default kind
