"""Enforce mode end to end: the real daemon (assemble_daemon, run_once) against moto over HTTP in the
demo's mid-migration world, with a test clock instead of sleeps. Every write is checked against a
full before/after diff of every security group rule in the VPC (tests/aws/test_writes.py's snapshot)."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from monitor.core import controllers, ownership
from monitor.core.settings import Settings
from monitor.core.state_doc import State
from monitor.daemon.state import FileStateStore
from monitor.daemon.summary import CycleSummary
from monitor.demo import world as demo_world
from monitor.surface.main import DaemonParts, assemble_daemon
from tests.aws.test_writes import snapshot
from tests.support.awsproxy import EMPTY, THROTTLE

T0 = 1_700_000_000.0
INTERVAL, GRACE = 15.0, 60.0


class Clock:
    def __init__(self, start: float = T0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


class Run:
    """One daemon over the world, stepped one interval at a time."""

    def __init__(self, world: demo_world.World, clock: Clock, mode: str = "enforce", **extra: Any) -> None:
        self.world, self.clock = world, clock
        settings = Settings(cluster_name=world.cluster, mode=mode, interval=INTERVAL, grace=GRACE,
                            listen="127.0.0.1:0", kubernetes="off", **extra)
        self.parts: DaemonParts = assemble_daemon(settings, wall=clock, monotonic=clock)

    def step(self, seconds: float = INTERVAL) -> CycleSummary:
        self.clock.now += seconds
        summary = self.parts.daemon.run_once()
        assert summary.ok, summary.error
        return summary

    def until_written(self, limit: float) -> tuple[CycleSummary, float]:
        """Cycles until one writes; returns it and the test time it ran at (fails past `limit`)."""
        while self.clock.now < limit:
            summary = self.step()
            if any(o.result is not None for o in summary.remediations):
                return summary, self.clock.now
        pytest.fail(f"nothing written by {limit - T0:.0f}s")

    def metric(self, name: str, **labels: str) -> float | None:
        body, _ = self.parts.metrics.exposition()
        for family in text_string_to_metric_families(body.decode()):
            for sample in family.samples:
                if sample.name == name and sample.labels == labels:
                    return sample.value
        return None

    def close(self) -> None:
        self.parts.server.stop()


def reachable(summary: CycleSummary, world: demo_world.World, key: str) -> bool | None:
    return next(lb.reachable for lb in summary.report.load_balancers if lb.name == world.lb_name[key])


def writes(summary: CycleSummary) -> list:
    return [o for o in summary.remediations if o.result is not None]


def revoke_by_id(world: demo_world.World, rule_id: str) -> None:
    world.clients()["ec2"].revoke_security_group_ingress(GroupId=world.sg["cluster"], SecurityGroupRuleIds=[rule_id])


@pytest.fixture
def clock() -> Clock:
    return Clock()


def test_a_revoked_rule_is_restored_exactly_twice_then_the_fight_is_quarantined(world, tmp_path, clock):
    run = Run(world, clock, state_file=str(tmp_path / "state.json"))
    assert run.step(0).complete
    before = snapshot(world)
    old_id = world.rule["shop_v1"]

    demo_world.revoke(world, "shop_v1")
    revoked_at = clock.now
    summary, at = run.until_written(T0 + 300)
    assert at <= revoked_at + GRACE + 2 * INTERVAL
    ((outcome,),) = [writes(summary)]
    assert (outcome.label, outcome.result.outcome) == ("restored", "restored")
    new_id = outcome.result.rule_id
    after = snapshot(world)
    assert set(before) - set(after) == {old_id} and set(after) - set(before) == {new_id}
    assert {k: v for k, v in before.items() if k != old_id} == {k: v for k, v in after.items() if k != new_id}
    assert after[new_id][:6] == before[old_id][:6] == (False, world.sg["cluster"], "tcp", 0, 65535, world.sg["shop_alb"])
    description, tags = after[new_id][7], dict(after[new_id][8])
    assert description.startswith(f"alb-sg-monitor restored 2023-11-14 for {world.lb_name['shop']}")
    assert not controllers.has_shared_label(description)
    assert tags[ownership.OWNER_TAG] == world.cluster and tags[ownership.RESTORED_FOR_TAG] == world.lb_name["shop"]
    assert reachable(run.step(), world, "shop") is True
    # Four cycles in grace were one suppressed decision, not four; the restore counted once.
    assert run.metric("albsg_remediations_total", result="suppressed") == 1
    assert run.metric("albsg_remediations_total", result="restored") == 1
    assert run.metric("albsg_remediation_enabled") == 1

    revoke_by_id(world, new_id)  # the second revocation: restored again
    summary, _ = run.until_written(clock.now + 300)
    ((second,),) = [writes(summary)]
    assert second.label == "restored"
    run.step()

    revoke_by_id(world, second.result.rule_id)  # the third within the fight window: quarantined
    quiet = snapshot(world)
    for _ in range(10):
        summary = run.step()
        assert writes(summary) == []
    assert snapshot(world) == quiet
    fight = [f for f in summary.report.findings if f.code == "REMEDIATION_FIGHT"]
    assert fight and fight[0].severity.value == "critical" and world.sg["cluster"] in fight[0].message
    assert run.metric("albsg_findings", code="REMEDIATION_FIGHT", severity="critical") == 1
    assert summary.report.exit_code == 1
    assert run.metric("albsg_remediations_total", result="restored") == 2
    # The quarantine survives a restart: a new daemon on the same state file does not restore either.
    run.close()
    again = Run(world, clock, state_file=str(tmp_path / "state.json"))
    for _ in range(6):
        assert writes(again.step()) == []
    assert snapshot(world) == quiet
    again.close()


def test_a_revocation_after_many_quiet_checks_is_still_learnt_and_restored(world, clock):
    # Quiet checks carry every verdict and teach the memory nothing: it is not learnt again for them,
    # but the first check that judges a load balancer again must still learn what it lost.
    run = Run(world, clock)
    run.step()
    assert [run.step().judged for _ in range(4)] == [0, 0, 0, 0]  # every verdict carried
    demo_world.revoke(world, "shop_v1")
    summary, _ = run.until_written(clock.now + 300)
    assert [o.label for o in writes(summary)] == ["restored"]
    assert reachable(run.step(), world, "shop") is True
    run.close()


def test_a_restart_mid_outage_still_restores_from_the_state_file(world, tmp_path, clock):
    state_file = str(tmp_path / "state.json")
    first = Run(world, clock, state_file=state_file)
    first.step(0)
    demo_world.revoke(world, "shop_v1")
    revoked_at = clock.now
    assert reachable(first.step(), world, "shop") is False
    first.close()  # the pod restarts during the outage: nothing in memory survives but the file
    second = Run(world, clock, state_file=state_file)
    summary, at = second.until_written(T0 + 300)
    assert at <= revoked_at + GRACE + 2 * INTERVAL
    ((outcome,),) = [writes(summary)]
    assert outcome.label == "restored"
    assert outcome.decision.rule.text() == f"tcp 0-65535 from {world.sg['shop_alb']} on {world.sg['cluster']}"
    assert reachable(second.step(), world, "shop") is True
    second.close()


def test_a_corrupt_or_foreign_state_file_stops_the_start(world, tmp_path, clock):
    from monitor.core.errors import ConfigError

    path = tmp_path / "state.json"
    path.write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        Run(world, clock, state_file=str(path))
    FileStateStore(str(path), "another-cluster").save(State("another-cluster"))
    with pytest.raises(ConfigError, match="belongs to cluster 'another-cluster'"):
        Run(world, clock, state_file=str(path))


def test_observe_mode_never_writes_and_counts_one_dry_run_per_outage(world, proxy, clock):
    run = Run(world, clock, mode="observe")
    run.step(0)
    demo_world.revoke(world, "shop_v1")
    before = snapshot(world)
    decisions = []
    for _ in range(12):  # three minutes of outage, well past the grace
        decisions += [(o.decision.action, o.decision.reason) for o in run.step().remediations]
    assert ("dry_run", "") in decisions
    assert proxy.count(service="ec2", action="AuthorizeSecurityGroupIngress") == 0
    assert proxy.count(service="ec2", action="RevokeSecurityGroupIngress") == 0
    assert snapshot(world) == before
    assert run.metric("albsg_remediations_total", result="dry_run") == 1
    assert run.metric("albsg_remediations_total", result="restored") == 0
    assert run.metric("albsg_remediation_enabled") == 0
    run.close()


def test_a_throttled_read_causes_no_write(world, proxy, clock):
    run = Run(world, clock)
    run.step(0)
    demo_world.revoke(world, "shop_v1")
    for _ in range(4):
        assert writes(run.step()) == []  # in grace
    proxy.fail(["DescribeSecurityGroupRules"], kind=THROTTLE, service="ec2")
    for _ in range(3):  # past the grace, but the rules could not be read
        summary = run.step()
        assert not summary.complete and writes(summary) == []
        assert [(o.decision.action, o.decision.reason) for o in summary.remediations] in (
            [], [("suppressed", "incomplete_observation")])
    assert proxy.count(service="ec2", action="AuthorizeSecurityGroupIngress") == 0
    proxy.heal()
    summary = run.step()
    assert summary.complete and [o.label for o in writes(summary)] == ["restored"]
    assert proxy.count(service="ec2", action="AuthorizeSecurityGroupIngress") == 1
    run.close()


def test_a_draining_ip_target_on_another_alb_does_not_stop_learning_and_the_restore_follows_it(world, clock):
    # A pod gone but still registered on checkout's ALB: no ENI owns its address, so from the very
    # first cycle every observation is incomplete. The shop ALB's rule is still learnt meanwhile.
    ghost = [{"Id": "10.20.10.250", "Port": 8080}]
    elbv2 = world.clients()["elbv2"]
    elbv2.register_targets(TargetGroupArn=world.tg["checkout"], Targets=ghost)
    run = Run(world, clock)
    assert not run.step(0).complete
    demo_world.revoke(world, "shop_v1")
    summary = run.step()
    for _ in range(int(GRACE // INTERVAL) + 1):  # past the grace, still incomplete: said, not written
        summary = run.step()
        assert not summary.complete and writes(summary) == []
    assert [(o.decision.action, o.decision.reason) for o in summary.remediations] == [
        ("suppressed", "incomplete_observation")]
    elbv2.deregister_targets(TargetGroupArn=world.tg["checkout"], Targets=ghost)
    summary = run.step()
    assert summary.complete and [o.label for o in writes(summary)] == ["restored"]
    assert reachable(run.step(), world, "shop") is True
    run.close()


def test_after_its_alb_and_sg_are_deleted_the_monitor_removes_its_own_rule_and_nothing_else(world, clock):
    run = Run(world, clock, cleanup_grace=120.0)
    run.step(0)
    demo_world.revoke(world, "shop_v1")
    summary, _ = run.until_written(T0 + 300)
    ours = writes(summary)[0].result.rule_id
    run.step()
    world.clients()["elbv2"].delete_load_balancer(LoadBalancerArn=world.lb["shop"])
    before = snapshot(world)
    summary, _ = run.until_written(clock.now + 600)
    ((cleanup,),) = [writes(summary)]
    assert (cleanup.decision.kind, cleanup.label, cleanup.decision.rule_id) == ("cleanup", "cleaned_up", ours)
    after = snapshot(world)
    assert set(before) - set(after) == {ours} and set(after) <= set(before)
    assert run.metric("albsg_remediations_total", result="cleaned_up") == 1
    # Nothing else is ever revoked, however long it runs; the ALB's SG can now be deleted.
    for _ in range(4):
        assert writes(run.step()) == []
    world.clients()["ec2"].delete_security_group(GroupId=world.sg["shop_alb"])
    for _ in range(2):
        assert writes(run.step()) == []
    assert set(after) - set(snapshot(world)) <= {r for r, v in after.items() if world.sg["shop_alb"] in v}
    run.close()


def test_a_simulated_v2_garbage_collection_never_removes_a_restored_rule(world, clock):
    run = Run(world, clock)
    run.step(0)
    demo_world.revoke(world, "shop_v1")
    summary, _ = run.until_written(T0 + 300)
    (restored,) = writes(summary)
    ec2 = world.clients()["ec2"]
    # Fixture: moto's rule view shows an authorize-time description only after a modify (docs/controllers.md).
    demo_world._set_description(ec2, world.sg["cluster"], restored.result.rule_id, restored.decision.description)
    # v2's GC: with no binding wanting them, every rule whose description parses as the label goes.
    gone = []
    for rule_id, rule in snapshot(world).items():
        if not rule[0] and controllers.has_shared_label(rule[6]):
            ec2.revoke_security_group_ingress(GroupId=rule[1], SecurityGroupRuleIds=[rule_id])
            gone.append(rule_id)
    assert gone and restored.result.rule_id not in gone
    after = snapshot(world)
    assert after[restored.result.rule_id][6] == restored.decision.description
    assert reachable(run.step(), world, "shop") is True
    run.close()


def test_a_world_open_rule_removed_with_the_albs_rule_never_comes_back(world, proxy, clock):
    ec2 = world.clients()["ec2"]
    node_sg, alb_sg = world.sg["cluster"], world.sg["shop_alb"]
    world_open = demo_world._authorize(ec2, node_sg, "tcp", 30080, 30080, cidr="0.0.0.0/0")
    run = Run(world, clock)
    assert reachable(run.step(0), world, "shop") is True
    # A security team closes the world-open port; the same afternoon v2 revokes the v1 rule.
    ec2.revoke_security_group_ingress(GroupId=node_sg, SecurityGroupRuleIds=[world_open])
    demo_world.revoke(world, "shop_v1")
    before = snapshot(world)
    summary, _ = run.until_written(T0 + 300)
    ((outcome,),) = [writes(summary)]
    assert outcome.label == "restored"
    for _ in range(8):  # long past the grace: nothing else is ever written
        assert writes(run.step()) == []
    assert proxy.count(service="ec2", action="AuthorizeSecurityGroupIngress") == 1
    after = snapshot(world)
    (new_id,) = set(after) - set(before)
    assert set(before) <= set(after)
    assert after[new_id][:6] == (False, node_sg, "tcp", 0, 65535, alb_sg)  # the ALB's SG as source
    assert not any(rule[5] == "0.0.0.0/0" and rule[1] == node_sg and not rule[0] for rule in after.values())
    assert reachable(run.step(), world, "shop") is True
    run.close()


# A state location the monitor cannot write to, even as root: a temporary file cannot be created
# directly under /proc. Reading it finds nothing, as a fresh empty directory would.
UNWRITABLE = "/proc/alb-sg-monitor-state.json"


def test_a_state_location_that_cannot_be_written_is_said_at_start_counted_and_on_metrics(world, clock):
    from structlog.testing import capture_logs

    with capture_logs() as logged:
        run = Run(world, clock, state_file=UNWRITABLE)
    (warning,) = [e for e in logged if e["event"] == "state_not_writable"]
    assert warning["log_level"] == "warning" and warning["state"] == f"file {UNWRITABLE}"
    assert run.metric("albsg_state_persisted") == 0
    run.step(0)
    demo_world.revoke(world, "shop_v1")
    before = run.metric("albsg_state_save_failures_total")
    with capture_logs() as logged:
        for _ in range(3):
            run.step()
    failures = run.metric("albsg_state_save_failures_total") - before
    assert failures == len([e for e in logged if e["event"] == "state_save_failed"]) == 3  # retried every cycle
    assert run.metric("albsg_state_persisted") == 0
    run.close()


def test_a_writable_state_location_is_persisted_with_no_warning(world, tmp_path, clock):
    from structlog.testing import capture_logs

    with capture_logs() as logged:
        run = Run(world, clock, state_file=str(tmp_path / "state.json"))
    assert [e for e in logged if e["event"] == "state_not_writable"] == []
    assert run.metric("albsg_state_persisted") == 1
    run.step(0)
    assert (tmp_path / "state.json").exists()
    assert run.metric("albsg_state_persisted") == 1 and run.metric("albsg_state_save_failures_total") == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]  # the start-up probe left nothing
    run.close()


def test_a_second_enforce_replica_without_kubernetes_is_seen_by_the_rules_it_writes(world, clock):
    from structlog.testing import capture_logs

    first, second = Run(world, clock), Run(world, clock)  # no Kubernetes: each is its own leader
    first.step(0), second.step(0)
    demo_world.revoke(world, "shop_v1")
    summary, _ = first.until_written(T0 + 300)
    (restored,) = writes(summary)
    with capture_logs() as logged:
        other = second.step(0)
    (finding,) = [f for f in other.report.findings if f.code == "FOREIGN_RESTORE"]
    assert (finding.severity.value, finding.rule, finding.security_group) == (
        "warning", restored.result.rule_id, world.sg["cluster"])
    assert finding.load_balancer == world.lb_name["shop"] and "did not create it" in finding.message
    assert second.metric("albsg_findings", code="FOREIGN_RESTORE", severity="warning") == 1
    (event,) = [e for e in logged if e["event"] == "foreign_restore_seen"]
    assert event["log_level"] == "warning" and event["rule_id"] == restored.result.rule_id
    with capture_logs() as logged:
        second.step()
    assert [e for e in logged if e["event"] == "foreign_restore_seen"] == []  # logged once, not every cycle
    # The writer itself knows the rule as its own.
    assert not [f for f in first.step(0).report.findings if f.code == "FOREIGN_RESTORE"]
    first.close(), second.close()


def test_one_empty_listing_erases_nothing_and_the_cut_alb_is_still_restored(world, proxy, clock):
    """A DescribeLoadBalancers answer that lists nothing, mid-outage: every ALB unknown (not gone),
    no verdict, no write, the remembered rule kept; AWS read again by ARN before anything is dropped;
    once the listing answers again, the rule is restored as if the glitch never happened."""
    run = Run(world, clock)
    assert run.step(0).complete
    demo_world.revoke(world, "shop_v1")
    assert reachable(run.step(), world, "shop") is False  # in grace
    proxy.fail(["DescribeLoadBalancers"], kind=EMPTY, service="elbv2")
    for _ in range(2):
        summary = run.step()
        assert not summary.complete and writes(summary) == []
        assert summary.report.load_balancers and {lb.reachable for lb in summary.report.load_balancers} == {None}
        assert not [f for f in summary.report.findings if f.severity.value == "critical"]
        assert run.metric("albsg_observation_complete") == 0
        assert run.metric("albsg_load_balancer_reachable", load_balancer=world.lb_name["shop"],
                          ingress_namespace="shop", ingress="frontend") is None
    assert {lb.name for lb in run.parts.daemon.topology.load_balancers} >= {world.lb_name["shop"], world.lb_name["blog"]}
    proxy.heal()
    summary, _ = run.until_written(clock.now + GRACE + 4 * INTERVAL)
    assert [o.label for o in writes(summary)] == ["restored"]
    assert reachable(run.step(), world, "shop") is True
    run.close()


@pytest.mark.parametrize(("action", "said"), [
    ("DescribeLoadBalancers", "could not list load balancers"),
    ("DescribeTags", "could not read load balancer tags"),
])
def test_an_empty_answer_is_checked_before_check_says_no_findings(world, proxy, capsys, action, said):
    """Every ALB gone from one answer (the listing, or the tags that say which ALBs are the
    cluster's) is not "no findings, exit 0": the target groups attached to load balancers, or the
    ARNs asked, contradict it, and the check exits 3."""
    from monitor.cli import main

    demo_world.revoke(world, "shop_v1")
    proxy.fail([action], kind=EMPTY, service="elbv2")
    code = main(["check", "--cluster-name", world.cluster, "--kubernetes", "off"])
    out = capsys.readouterr().out
    assert code == 3, out
    assert said in out and "EmptyAnswer" in out

def remembered(world: demo_world.World, path) -> set:
    """The paths the state file remembers (what a restarted daemon would start from)."""
    state = FileStateStore(str(path), world.cluster).load()
    return set() if state is None else {key for key, _ in state.memory.paths}


def test_a_deleted_state_file_is_written_again_so_a_restart_still_restores(world, tmp_path, clock):
    from structlog.testing import capture_logs

    path = tmp_path / "state.json"
    first = Run(world, clock, state_file=str(path))
    first.step(0)
    first.step()
    paths = remembered(world, path)
    assert paths
    path.unlink()  # a clean-up job, or the volume swapped for an empty one, while nothing changes
    with capture_logs() as logged:
        first.step()
    assert remembered(world, path) == paths  # back at the next cycle, with the same paths
    (missing,) = [e for e in logged if e["event"] == "state_missing"]
    assert missing["log_level"] == "warning" and missing["state"] == f"file {path}"
    assert [e["event"] for e in logged if e["event"].startswith("state_")] == ["state_missing", "state_recreated"]
    assert first.metric("albsg_state_persisted") == 1
    first.close()

    demo_world.revoke(world, "shop_v1")  # while the daemon is down
    revoked_at = clock.now
    second = Run(world, clock, state_file=str(path))
    summary, at = second.until_written(T0 + 600)
    assert at <= revoked_at + GRACE + 3 * INTERVAL
    ((outcome,),) = [writes(summary)]
    assert outcome.label == "restored"
    assert outcome.decision.rule.text() == f"tcp 0-65535 from {world.sg['shop_alb']} on {world.sg['cluster']}"
    assert reachable(second.step(), world, "shop") is True
    second.close()


def test_a_state_file_that_cannot_be_written_again_is_said_and_its_return_too(world, tmp_path, clock):
    from structlog.testing import capture_logs

    directory = tmp_path / "state"
    directory.mkdir()
    path = directory / "state.json"
    run = Run(world, clock, state_file=str(path))
    run.step(0)
    assert path.exists() and run.metric("albsg_state_persisted") == 1
    path.unlink()
    directory.rmdir()  # nowhere to write it again
    with capture_logs() as logged:
        for _ in range(3):
            run.step()
    assert run.metric("albsg_state_persisted") == 0
    assert run.metric("albsg_state_save_failures_total") == 3
    events = [(e["event"], e["log_level"]) for e in logged if e["event"].startswith("state_")]
    assert events == [("state_missing", "warning")] + [("state_save_failed", "error")] * 3  # said once
    directory.mkdir()
    with capture_logs() as logged:
        run.step()
    assert path.exists() and run.metric("albsg_state_persisted") == 1
    (again,) = [e for e in logged if e["event"].startswith("state_")]
    assert (again["event"], again["failed_saves"], again["state"]) == ("state_saved_again", 3, f"file {path}")
    with capture_logs() as logged:
        run.step()
    assert [e for e in logged if e["event"].startswith("state_")] == []  # said once, not every save
    run.close()


def test_two_enforce_replicas_racing_count_one_restore_and_one_already_present(world, proxy, clock):
    from structlog.testing import capture_logs

    first, second = Run(world, clock), Run(world, clock)  # no Kubernetes: both are leaders, both write
    first.step(0), second.step(0)
    before = snapshot(world)
    demo_world.revoke(world, "shop_v1")
    raced: list[CycleSummary] = []
    # The first replica's cycle runs after the second has read the rules and decided, before its write lands.
    proxy.before("AuthorizeSecurityGroupIngress", lambda: raced.append(first.parts.daemon.run_once()))
    with capture_logs() as logged:
        while not raced and clock.now < T0 + 300:
            clock.now += INTERVAL
            mine = second.parts.daemon.run_once()
            if not raced:
                first.parts.daemon.run_once()
    assert raced, "the second replica never wrote"
    ((created,),) = [writes(raced[0])]
    ((present,),) = [writes(mine)]
    assert (created.label, present.label) == ("restored", "already_present")
    assert present.result.code == "InvalidPermission.Duplicate" and present.decision.rule == created.decision.rule
    assert first.metric("albsg_remediations_total", result="restored") == 1
    assert second.metric("albsg_remediations_total", result="restored") == 0
    assert second.metric("albsg_remediations_total", result="already_present") == 1
    (said,) = [e for e in logged if e["event"] == "remediation_decision" and e["result"] == "already_present"]
    assert said["log_level"] == "warning" and "another writer" in said["detail"]
    assert len(set(snapshot(world)) - set(before)) == 1  # one rule written back, once
    assert proxy.count(service="ec2", action="AuthorizeSecurityGroupIngress") == 2
    first.close(), second.close()
