"""`alb-sg-monitor demo` as a new user runs it: a real process that serves /metrics, shows each
detection of the migration story as it happens, and ends by itself with status 0."""

from __future__ import annotations

import contextlib
import json
import re

import pytest

from monitor.demo.story import DEMO_CLUSTER
from monitor.demo.view import RECORD_TYPES
from monitor.demo.world import v1_name
from tests.support import procs
from tests.support.tinyworld import free_port

SHOP = v1_name(DEMO_CLUSTER, "shop", "frontend")
BLOG = v1_name(DEMO_CLUSTER, "blog", "web")
PAYMENTS = v1_name(DEMO_CLUSTER, "payments", "api")
# ALBSG_DEMO_SPEED (the twin of --demo-speed) plays the 40-second story in 5 seconds.
FAST = {"ALBSG_DEMO_SPEED": "8"}


def demo_env(**extra: str) -> dict[str, str]:
    env = procs.clean_env(**extra)
    for key in [k for k in env if k.startswith("AWS_") or k in ("COLUMNS", "LINES")]:
        del env[key]  # the demo needs no AWS settings: it brings its own account; and no width but the test's
    return env | extra


def words(text: str) -> str:
    """`text` with its line breaks and runs of spaces as single spaces: what it says, however wrapped."""
    return " ".join(text.split())


def timestamps(output: str) -> list[float]:
    return [float(t) for t in re.findall(r"^t\+(\d+\.\d)s  ", output, re.M)]


def revocations(body: str) -> float:
    match = re.search(rf'^albsg_rule_revocations_total{{load_balancer="{SHOP}"}} (\S+)$', body, re.M)
    return float(match.group(1)) if match else 0.0


@pytest.mark.slow
def test_demo_serves_metrics_and_shows_each_detection_of_the_story(tmp_path):
    port = free_port()
    with contextlib.ExitStack() as stack:
        demo = procs.start(stack, "demo", [procs.EXE, "demo", "--listen", f"127.0.0.1:{port}", "--interval", "250ms"],
                           tmp_path, demo_env(**FAST))
        # While the story plays, /metrics shows the revocation the v2 controller made, counted.
        body = procs.wait_until("the shop revocation on /metrics", lambda: (
            lambda status_body: status_body[1].decode() if status_body[0] == 200 and
            revocations(status_body[1].decode()) >= 1 else None)(procs.http_get(f"http://127.0.0.1:{port}/metrics")),
            60, (demo,), every=0.1)
        assert re.search(r"^albsg_build_info\{version=", body, re.M)
        assert demo.process.wait(timeout=60) == 0, demo.tail()
        output = demo.log.read_text()

    assert f"Prometheus metrics at http://127.0.0.1:{port}/metrics" in output
    # Each story event, then the monitor's detection of it, in that order.
    story = [
        ("STORY     The v2 controller starts without the migration IAM policy and revokes",
         f"DETECTED  critical ACCESS_REVOKED: {SHOP} (Ingress shop/frontend)"),
        ("STORY     Someone follows the migration guide's jq recipe",
         "DETECTED  critical SHARED_LABEL_ON_FOREIGN_SOURCE: Rule sgr-"),
        ("STORY     The network team puts subnet private-c behind a new network ACL",
         "DETECTED  critical NACL_BLOCKED: "),
        ("STORY     An engineer puts the shop rule back by hand", f"CLEARED   ACCESS_REVOKED on {SHOP}"),
        ("STORY     Tidying up from the console, a platform engineer revokes",
         f"DETECTED  critical ACCESS_REVOKED: {BLOG} (Ingress blog/web) cannot reach"),
        ("STORY     The marketing team takes the label off", "CLEARED   SHARED_LABEL_ON_FOREIGN_SOURCE"),
    ]
    # The story's events in order, each followed by its detection. At 8 times the speed a loaded
    # machine may show a detection after the next event (beats are 0.4 s apart), which is no fault.
    position = 0
    for event, detection in story:
        position = output.index(event, position)
        assert output.index(detection, position) > position, detection
        position += len(event)
    assert re.search(rf"^t\+\S+s  REVOKED   {SHOP}: path to i-\w+ lost ports 30080, 30081$", output, re.M)
    # Three paths lost, one revocation counted: the words say what albsg_rule_revocations_total did.
    assert revocations(body) == 1
    assert len(re.findall(rf"^t\+\S+s  REVOKED   {SHOP}: path to ", output, re.M)) == 3
    assert "counted" not in "".join(re.findall(r"^t\+\S+s  REVOKED .*$", output, re.M))
    assert re.findall(rf"^t\+\S+s  COUNTED   {SHOP}: .*$", output, re.M) == [
        re.search(rf"^t\+\S+s  COUNTED   {SHOP}: once in albsg_rule_revocations_total \(3 paths\)$", output,
                  re.M).group(0)]
    # One clock for the view and the story: no line shows an earlier time than the line before it.
    times = timestamps(output)
    assert len(times) > 20 and times == sorted(times), times
    # Piped with no width known, no line is wider than 100 columns, and each event keeps one line.
    assert max(len(line) for line in output.splitlines()) <= 100
    assert all(re.match(r"t\+\d+\.\ds  [A-Z ]{8}  \S|t\+\d+\.\ds  cycle ", line)
               for line in output.splitlines() if line.startswith("t+"))
    # The live view: the ALB table with the shop ALB cut off, then whole again.
    assert re.search(rf"^{SHOP}\s+shop/frontend\s+v1\s+0/3\s+1\s+UNREACHABLE$", output, re.M)
    assert re.search(rf"^{SHOP}\s+shop/frontend\s+v1\s+3/3\s+1\s+ok$", output, re.M)
    summary = words(output[output.index("What the monitor saw:"):])
    assert "NOT " not in summary
    # one revoked rule behind three targets is one revocation of the ALB; the network ACL cuts a path
    # of payments and of checkout (the v2 ALB) at once
    assert re.search(rf"4 revocation\(s\) counted in albsg_rule_revocations_total \({SHOP}: 1, {PAYMENTS}: 1, "
                     rf"k8s-checkout-\S+: 1, {BLOG}: 1\)", summary), summary
    assert re.search(rf"^t\+\S+s  REVOKED   {PAYMENTS}: path to 10\.20\.11\.102 lost port 8443$", output, re.M)
    # who cut each path, from the CloudTrail events: the v2 controller's role, then a person's SSO role
    assert re.search(rf"ACCESS_REVOKED on {SHOP}: rule sgr-\w+ cut by \S+aws-load-balancer-controller\S+ "
                     r"\(v2 controller\)", summary), summary
    assert re.search(rf"ACCESS_REVOKED on {BLOG}: rule sgr-\w+ cut by \S+AWSReservedSSO_\S+ \(other\)", summary)
    assert "Traceback" not in output


def test_demo_json_output_is_one_object_per_line(tmp_path):
    port = free_port()
    with contextlib.ExitStack() as stack:
        demo = procs.start(stack, "demo", [procs.EXE, "demo", "--listen", f"127.0.0.1:{port}", "--interval", "250ms",
                                           "--output", "json"], tmp_path, demo_env(**FAST), merge_stderr=False)
        assert demo.process.wait(timeout=60) == 0, demo.tail()
    assert demo.errors.read_text() == ""  # the daemon's own log events are kept out of the way
    records = [json.loads(line) for line in demo.log.read_text().splitlines()]
    kinds = [r["type"] for r in records]
    assert kinds[0] == "start" and kinds[-1] == "summary"
    assert set(kinds) <= set(RECORD_TYPES), set(kinds) - set(RECORD_TYPES)  # the README lists RECORD_TYPES
    times = [r["t"] for r in records if "t" in r]
    assert times == sorted(times), times
    assert records[0]["metrics_url"] == f"http://127.0.0.1:{port}/metrics"
    cycles = [r for r in records if r["type"] == "cycle"]
    assert cycles and {lb["name"] for lb in cycles[0]["report"]["load_balancers"]} >= {SHOP}
    detected = {r["code"] for r in records if r["type"] == "detected"}
    assert {"ACCESS_REVOKED", "SHARED_LABEL_ON_FOREIGN_SOURCE"} <= detected
    story = records[-1]["story"]
    assert [s["code"] for s in story] == ["ACCESS_REVOKED", "SHARED_LABEL_ON_FOREIGN_SOURCE", "NACL_BLOCKED",
                                          "ACCESS_REVOKED", "ACCESS_REVOKED", "SHARED_LABEL_ON_FOREIGN_SOURCE"]
    # The network ACL's cut is named by its rule, for the two ALBs whose pods sit in that subnet.
    nacl = {f["load_balancer"]: f["message"] for r in records if r["type"] == "cycle"
            for f in r["report"]["findings"] if f["code"] == "NACL_BLOCKED"}
    assert len(nacl) == 2 and all("rule 90" in m and "inbound" in m for m in nacl.values()), nacl
    assert all(s["after_seconds"] is not None for s in story)
    # Who cut it: the revoke arrived as the v2 controller's CloudTrail event, the repair as a person's;
    # the last cut is a person's too.
    cut, by_hand = records[-1]["attributions"]
    assert by_hand["load_balancer"] == BLOG and by_hand["actor_kind"] == "other"
    assert "AWSReservedSSO_" in by_hand["principal"] and by_hand["rule"] != cut["rule"]
    assert cut["code"] == "ACCESS_REVOKED" and cut["load_balancer"] == SHOP and cut["rule"].startswith("sgr-")
    assert cut["actor_kind"] == "v2_controller" and "aws-load-balancer-controller" in cut["principal"]
    revoked_findings = [f for r in cycles for f in r["report"]["findings"] if f["code"] == "ACCESS_REVOKED"]
    assert revoked_findings
    shop_findings = [f for f in revoked_findings if f["load_balancer"] == SHOP]
    assert shop_findings and all(f["rule"] == cut["rule"] for f in shop_findings)
    assert any(f.get("attribution", {}).get("event_id") == cut["event_id"] for f in shop_findings)
    (window,) = records[-1]["outage_windows"]
    assert "AWSReservedSSO_" in window["granted_by"] and "aws-load-balancer-controller" in window["revoked_by"]
    assert window["seconds"] >= 1


def test_demo_stops_on_ctrl_c_before_the_story_ends(tmp_path):
    port = free_port()
    with contextlib.ExitStack() as stack:
        demo = procs.start(stack, "demo", [procs.EXE, "demo", "--listen", f"127.0.0.1:{port}"], tmp_path, demo_env())
        procs.wait_ready(f"http://127.0.0.1:{port}/readyz", demo, timeout=60)
        demo.process.send_signal(2)  # SIGINT, as Ctrl-C sends it
        assert demo.process.wait(timeout=10) == 0, demo.tail()
    output = demo.log.read_text()
    assert "Stopped before the end of the story." in output
    assert "Traceback" not in output


# Enforce mode: the story's revocation is restored by the monitor well before the engineer's step
# (at speed 2 the revocation is at t+2.5s and the engineer at t+12.5s; grace 1s), even on a busy machine.
ENFORCE = ["--mode", "enforce", "--grace", "1s", "--interval", "250ms"]
QUICK = {"ALBSG_DEMO_SPEED": "2"}


def test_demo_in_enforce_mode_shows_the_restore_and_credits_it_in_the_summary_as_json(tmp_path):
    port = free_port()
    with contextlib.ExitStack() as stack:
        demo = procs.start(stack, "demo", [procs.EXE, "demo", "--listen", f"127.0.0.1:{port}", *ENFORCE,
                                           "--output", "json"], tmp_path, demo_env(**QUICK), merge_stderr=False)
        assert demo.process.wait(timeout=90) == 0, demo.tail()
    records = [json.loads(line) for line in demo.log.read_text().splitlines()]
    restored, *later_restores = [r for r in records if r["type"] == "restored"]
    assert restored["load_balancer"] == SHOP and restored["ingress"] == "shop/frontend"
    assert re.fullmatch(r"tcp 0-65535 from sg-\w+ on sg-\w+", restored["rule"]) and restored["rule_id"].startswith("sgr-")
    assert 1.0 <= restored["after_seconds"] < 10.0  # past the grace, before the engineer's step
    # The restored rule is in the view: the next cycles' report has the shop ALB reachable again.
    later = [r for r in records if r["type"] == "cycle" and r["t"] > restored["t"]]
    shop = [lb for lb in later[-1]["report"]["load_balancers"] if lb["name"] == SHOP]
    assert shop[0]["reachable"] is True
    assert any(restored["rule_id"] in p["covered_by"] for p in shop[0]["paths"])
    summary = records[-1]
    assert summary["type"] == "summary"
    assert all(s["after_seconds"] is not None for s in summary["story"]), summary["story"]
    cleared = [s for s in summary["story"] if s["code"] == "ACCESS_REVOKED" and s["expected"] == "cleared"]
    assert cleared[0]["by"] == "alb-sg-monitor"
    # and the colleague's cut of the blog rule, later in the story, is restored too
    assert [r["load_balancer"] for r in later_restores] == [BLOG]
    assert [(r["load_balancer"], r["rule_id"]) for r in summary["restores"]] == [
        (SHOP, restored["rule_id"]), (BLOG, later_restores[0]["rule_id"])]


def test_demo_in_enforce_mode_says_what_it_restored_in_the_table_output(tmp_path):
    port = free_port()
    with contextlib.ExitStack() as stack:
        # A wide terminal's COLUMNS: every event line whole, as the test reads the rule ids in them.
        demo = procs.start(stack, "demo", [procs.EXE, "demo", "--listen", f"127.0.0.1:{port}", *ENFORCE],
                           tmp_path, demo_env(**QUICK, COLUMNS="250"))
        assert demo.process.wait(timeout=90) == 0, demo.tail()
        output = demo.log.read_text()
    line = re.search(rf"^t\+\S+s  RESTORED  alb-sg-monitor restored tcp 0-65535 from (sg-\w+) on (sg-\w+) \((sgr-\w+)\) "
                     rf"for {SHOP} \(Ingress shop/frontend\), (\d+\.\d)s after the path was lost$", output, re.M)
    assert line, output
    # Then the table shows the ALB whole again, with the restored rule under it.
    after = output[line.end():]
    assert re.search(rf"^{SHOP}\s+shop/frontend\s+v1\s+3/3\s+1\s+ok$", after, re.M)
    assert f"  restored by alb-sg-monitor: tcp 0-65535 from {line.group(1)} on {line.group(2)} ({line.group(3)}) " \
           f"for {SHOP}" in after
    # The engineer finds nothing to do, and the summary credits the monitor: nothing is "NOT cleared".
    assert "STORY     An engineer comes to put the shop rule back by hand" in after
    assert "It is already back: alb-sg-monitor restored it" in after
    assert max(len(line) for line in output.splitlines()) <= 250
    summary = words(output[output.index("What the monitor saw:"):])
    assert "NOT " not in summary
    assert re.search(r"ACCESS_REVOKED cleared by alb-sg-monitor's restore at t\+\S+s, \d+\.\ds after it happened", summary)
    assert f"alb-sg-monitor restored 2 rule(s): tcp 0-65535 from {line.group(1)} on {line.group(2)} for {SHOP}" in summary
    assert re.search(rf"; tcp 0-65535 from sg-\w+ on {line.group(2)} for {BLOG} at", summary)
    assert "Traceback" not in output
