"""The demo's live view, fed cycles directly: what it says about remediation decisions."""

from __future__ import annotations

import io
import json

from monitor.core.memory import RuleTuple
from monitor.core.policy import Decision, WriteResult
from monitor.daemon.remediation import Outcome
from monitor.daemon.summary import CycleSummary
from monitor.demo.view import LiveView
from tests.support.pure_world import ALB_SG, NODE_SG, SSH_RULE, observe

LB = "1a2b3c4d-shop-web-0f1e"
RULE = RuleTuple(NODE_SG, "tcp", 0, 65535, "sg", ALB_SG)
OPEN = RuleTuple(NODE_SG, "tcp", 30080, 30080, "cidr", "0.0.0.0/0")


class Clock:
    now = 100.0

    def __call__(self) -> float:
        return self.now


def feed(mode: str, *outcomes: Outcome) -> str:
    out = io.StringIO()
    view = LiveView(out, mode, "http://127.0.0.1:9917/metrics", clock=Clock())
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
