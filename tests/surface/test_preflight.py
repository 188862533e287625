"""`alb-sg-monitor preflight` end to end: moto over HTTP for AWS and IAM, a Kubernetes API over HTTP
found through a kubeconfig, as a user runs it before the cutover."""

from __future__ import annotations

import json
import socket

import pytest
import yaml

from monitor.cli import main
from monitor.demo import cluster
from monitor.demo import world as demo_world
from monitor.demo.kubeapi import DemoKubeApi


def kubeconfig(path, server: str) -> str:
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "demo",
        "clusters": [{"name": "demo", "cluster": {"server": server}}],
        "contexts": [{"name": "demo", "context": {"cluster": "demo", "user": "demo"}}],
        "users": [{"name": "demo", "user": {"token": "demo"}}]}))
    return str(path)


@pytest.fixture
def kube(world, tmp_path, monkeypatch):
    cluster.create_controller_role(world)
    with DemoKubeApi(cluster.objects(world)) as api:
        monkeypatch.setenv("KUBECONFIG", kubeconfig(tmp_path / "kubeconfig", api.url))
        yield api


def preflight(capsys, world, *extra):
    code = main(["preflight", "--cluster-name", world.cluster, "--output", "json", *extra])
    return code, json.loads(capsys.readouterr().out)


def test_pitfall_1_missing_migration_policy_is_flagged_before_any_rule_is_touched(world, kube, capsys):
    code, report = preflight(capsys, world, "--kubernetes", "on")
    assert code == 1
    assert all(lb["reachable"] is True for lb in report["load_balancers"])  # nothing is broken yet
    first = report["findings"][0]
    assert first["code"] == "MIGRATION_POLICY_MISSING" and first["severity"] == "critical"
    assert f"{world.cluster}-aws-load-balancer-controller" in first["message"]
    assert "iam_policy_v1_to_v2_additional.json" in first["message"]
    assert world.lb_name["shop"] in first["message"] and world.lb_name["blog"] in first["message"]


def test_attaching_the_migration_policy_clears_pitfall_1(world, kube, capsys):
    cluster.attach_migration_policy(world)
    code, report = preflight(capsys, world, "--kubernetes", "on")
    assert "MIGRATION_POLICY_MISSING" not in [f["code"] for f in report["findings"]]
    assert code == 0


def test_denied_events_corroborate_pitfall_1(world, kube, capsys):
    kube.objects.append(cluster.denied_event(world, "shop"))
    _, report = preflight(capsys, world, "--kubernetes", "on")
    first = report["findings"][0]
    assert first["code"] == "MIGRATION_POLICY_MISSING" and "FailedDeployModel" in first["message"]


def test_pitfall_2_the_guides_jq_labelling_every_all_ports_rule(world, kube, capsys):
    # The migration guide's recipe labels every tcp 0-65535 node rule: right for v1-managed sources,
    # fatal for the marketing team's own ALB SG.
    for key in ("shop_v1", "blog_v1", "marketing_user"):
        demo_world.label_with_shared(world, key)
    code, report = preflight(capsys, world, "--kubernetes", "on")
    assert code == 1
    foreign = [f for f in report["findings"] if f["code"] == "SHARED_LABEL_ON_FOREIGN_SOURCE"]
    assert [f["rule"] for f in foreign] == [world.rule["marketing_user"]]
    unclaimed = {f["rule"] for f in report["findings"] if f["code"] == "UNCLAIMED_SHARED_LABEL"}
    # v2 would also collect the two v1 rules; the marketing rule is said once, as the critical finding
    assert {world.rule["shop_v1"], world.rule["blog_v1"]} <= unclaimed
    assert world.rule["marketing_user"] not in unclaimed
    # Labelled before v2 adopted them and added its own rules, the v1 rules would go at the next GC:
    # the finding says which ALBs that would cut.
    message = next(f["message"] for f in report["findings"] if f["rule"] == world.rule["shop_v1"])
    assert f"would cut {world.lb_name['blog']}, {world.lb_name['shop']}" in message


def test_unclaimed_label_that_cuts_nothing_says_so(world, kube, capsys):
    # The payments team labelled v1's pod-SG rule; v2's own rule from the backend SG admits 8443.
    _, report = preflight(capsys, world, "--kubernetes", "on")
    message = next(f["message"] for f in report["findings"] if f["rule"] == world.rule["payments_v1"])
    assert "nothing loses its path" in message


def test_both_controllers_running(world, tmp_path, monkeypatch, capsys):
    cluster.create_controller_role(world, migration_policy=True)
    with DemoKubeApi(cluster.objects(world, v1_running=True)) as api:
        monkeypatch.setenv("KUBECONFIG", kubeconfig(tmp_path / "kubeconfig", api.url))
        code, report = preflight(capsys, world, "--kubernetes", "on")
    assert code == 1 and report["findings"][0]["code"] == "CONTROLLERS_BOTH_RUNNING"


def test_without_kubernetes_the_policy_is_unverified_not_ok(world, capsys):
    cluster.create_controller_role(world)
    code, report = preflight(capsys, world, "--kubernetes", "off")
    codes = [f["code"] for f in report["findings"]]
    assert "MIGRATION_POLICY_UNVERIFIED" in codes and "MIGRATION_POLICY_MISSING" not in codes


def test_kubernetes_down_degrades_to_aws_only_with_a_finding(world, tmp_path, monkeypatch, capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    monkeypatch.setenv("KUBECONFIG", kubeconfig(tmp_path / "kubeconfig", f"http://127.0.0.1:{closed}"))
    demo_world.revoke(world, "shop_v1")
    code = main(["check", "--cluster-name", world.cluster, "--output", "json", "--kubernetes", "on"])
    report = json.loads(capsys.readouterr().out)
    codes = [f["code"] for f in report["findings"]]
    assert "KUBERNETES_UNAVAILABLE" in codes and "ACCESS_REVOKED" in codes
    assert report["complete"] is False and code == 1


def test_preflight_table_says_what_to_do_first(world, kube, capsys):
    code = main(["preflight", "--cluster-name", world.cluster, "--kubernetes", "on"])
    out = capsys.readouterr().out
    assert code == 1 and out.startswith(f"preflight: cluster {world.cluster}")
    findings = out[out.index("FINDINGS"):].splitlines()[1:]
    assert findings[0].split()[:2] == ["CRITICAL", "MIGRATION_POLICY_MISSING:"]
    assert "aws iam put-role-policy" in findings[0]


def test_every_object_the_demo_cluster_serves_is_schema_valid(world):
    """The demo Kubernetes API serves what cluster.objects() builds: the same schema checks as the
    emulator's (kubernetes-validate, and the TargetGroupBinding CRD's shape)."""
    import kubernetes_validate

    from tests.support.kubeapi import SCHEMA_VERSION, validate_tgb

    served = [*cluster.objects(world, v1_running=True), cluster.denied_event(world)]
    for obj in served:
        if obj["kind"] == "TargetGroupBinding":
            validate_tgb(obj)
        else:
            kubernetes_validate.validate(obj, SCHEMA_VERSION, strict=True)
    assert {o["kind"] for o in served} >= {"Ingress", "IngressClass", "Service", "TargetGroupBinding", "Node",
                                          "Deployment", "ServiceAccount", "Event"}


def test_a_kubeconfig_on_another_cluster_is_ignored_with_a_finding(world, tmp_path, monkeypatch, capsys):
    objects = cluster.objects(world)
    for obj in objects:
        if obj["kind"] == "Deployment":
            container = obj["spec"]["template"]["spec"]["containers"][0]
            container["args"] = [a.replace(world.cluster, "staging-eks") for a in container["args"]]
    demo_world.label_with_shared(world, "shop_v1")
    with DemoKubeApi(objects) as api:
        monkeypatch.setenv("KUBECONFIG", kubeconfig(tmp_path / "kubeconfig", api.url))
        code = main(["check", "--cluster-name", world.cluster, "--output", "json"])
    report = json.loads(capsys.readouterr().out)
    (finding,) = [f for f in report["findings"] if f["code"] == "KUBERNETES_UNAVAILABLE"]
    assert "staging-eks" in finding["message"] and "--kubernetes off" in finding["message"]
    # nothing from the other cluster's bindings leaks into this cluster's verdict
    assert "UNCLAIMED_SHARED_LABEL" not in [f["code"] for f in report["findings"]]
    assert report["complete"] is False and code == 3
