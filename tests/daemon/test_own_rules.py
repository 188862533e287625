"""The monitor's own restored rules (owner tag) are never taken for v1 rules: no advice to label them
for v2 (that would hand them to v2's garbage collection), in check, preflight, the daemon and the demo."""

from __future__ import annotations

import json

import pytest

from monitor.cli import main
from monitor.core import ownership
from monitor.demo import cluster
from monitor.demo import world as demo_world
from monitor.demo.kubeapi import DemoKubeApi
from tests.daemon.test_enforce_daemon import Clock, Run
from tests.support.helpers import lb_by_name, run_check
from tests.surface.test_preflight import kubeconfig

NOW = 1_700_000_000.0


def restore_as_the_monitor(world: demo_world.World, key: str) -> str:
    """Put a revoked rule's tuple back the way the monitor's writer does: our description, our tags."""
    demo_world.revoke(world, key)
    lost = world.revoked[key]
    ec2 = world.clients()["ec2"]
    lb = world.lb_name[key.split("_")[0]]
    answer = ec2.authorize_security_group_ingress(
        GroupId=lost["GroupId"],
        IpPermissions=[{"IpProtocol": lost["IpProtocol"], "FromPort": lost["FromPort"], "ToPort": lost["ToPort"],
                        "UserIdGroupPairs": [{"GroupId": lost["ReferencedGroupInfo"]["GroupId"],
                                              "Description": ownership.description(lb, NOW)}]}],
        TagSpecifications=[{"ResourceType": "security-group-rule", "Tags": [
            {"Key": k, "Value": v} for k, v in ownership.rule_tags(world.cluster, lb, NOW)]}])
    return answer["SecurityGroupRules"][0]["SecurityGroupRuleId"]


def advice_on(report: dict, rule_id: str) -> list[dict]:
    return [f for f in report["findings"] if f["rule"] == rule_id
            or (f["code"] == "UNLABELLED_V1_RULE" and rule_id in f["message"])]


def test_check_gives_no_labelling_advice_about_a_rule_the_monitor_restored(world, capsys):
    ours = restore_as_the_monitor(world, "shop_v1")
    code, report = run_check(capsys, world.cluster)
    assert advice_on(report, ours) == []
    assert lb_by_name(report, world.lb_name["shop"])["reachable"] is True and code == 0
    # v1's own unlabelled rule on the other ALB still gets the advice.
    unlabelled = [f["rule"] for f in report["findings"] if f["code"] == "UNLABELLED_V1_RULE"]
    assert unlabelled == [world.rule["blog_v1"]]


@pytest.fixture
def kube(world, tmp_path, monkeypatch):
    cluster.create_controller_role(world, migration_policy=True)
    with DemoKubeApi(cluster.objects(world)) as api:
        monkeypatch.setenv("KUBECONFIG", kubeconfig(tmp_path / "kubeconfig", api.url))
        yield api


def test_preflight_counts_our_rule_as_surviving_v2_garbage_collection(world, kube, capsys):
    # The guide's recipe labels blog's v1 rule; shop's path now rests on a rule the monitor restored.
    ours = restore_as_the_monitor(world, "shop_v1")
    demo_world.label_with_shared(world, "blog_v1")
    code = main(["preflight", "--cluster-name", world.cluster, "--output", "json", "--kubernetes", "on"])
    report = json.loads(capsys.readouterr().out)
    assert advice_on(report, ours) == []
    unclaimed = next(f for f in report["findings"] if f["rule"] == world.rule["blog_v1"])
    assert unclaimed["code"] == "UNCLAIMED_SHARED_LABEL"
    # v2 never collects our rule (it carries no label): collecting blog's cuts blog only.
    assert f"would cut {world.lb_name['blog']})" in unclaimed["message"]
    assert world.lb_name["shop"] not in unclaimed["message"]
    assert code == 0


def test_enforce_mode_restores_and_then_gives_no_advice_about_the_restored_rule(world, tmp_path):
    run = Run(world, Clock(), state_file=str(tmp_path / "state.json"))
    try:
        assert run.step(0).complete
        demo_world.revoke(world, "shop_v1")
        summary, _ = run.until_written(NOW + 600)
        (restored,) = [o.result.rule_id for o in summary.remediations if o.result is not None]
        after = run.step()
        findings = after.report.findings
        assert not [f for f in findings if f.rule == restored]
        assert not [f for f in findings if f.code == "UNLABELLED_V1_RULE" and f.rule != world.rule["blog_v1"]]
        assert "elbv2.k8s.aws/targetGroupBinding=shared" not in " ".join(
            f.message for f in findings if f.load_balancer == world.lb_name["shop"])
    finally:
        run.close()
