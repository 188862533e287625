"""NLB client addresses over moto via HTTP: `check` (and enforce) on NLBs that preserve client addresses,
with and without security groups, with the Service's loadBalancerSourceRanges read from a Kubernetes API."""

from __future__ import annotations

import pytest

from monitor.core.settings import Settings
from monitor.surface.main import assemble_daemon
from tests.support.awsproxy import THROTTLE, AwsProxy
from tests.support.fixtures import tiny_aws_env, tiny_moto  # noqa: F401 (fixtures)
from tests.support.helpers import codes, lb_by_name, run_check
from tests.support.kubeapi import KubeApi
from tests.support.tinyworld import CLUSTER, World, build_world
from tests.surface.test_preflight import kubeconfig

TRAFFIC = 31080
SUBNETS = ("10.0.1.0/24", "10.0.2.0/24")  # the tiny world's subnets: where the NLB's own addresses are


def add_nlb(world: World, name: str = "k8s-game-tcp-0123456789", groups: bool = True, scheme: str = "internet-facing",
            preserve: bool | None = None) -> tuple[str, str | None, str]:
    """An NLB as v2 makes it for Service game/tcp: instance targets on a node port, a TCP listener.
    Returns its name, its security group (None without) and its target group's ARN."""
    ec2, elbv2 = world.client("ec2"), world.client("elbv2")
    sg = ec2.create_security_group(GroupName=name, VpcId=world.vpc_id,
                                   Description="[k8s] Managed SecurityGroup for LoadBalancer")["GroupId"] if groups else None
    lb = elbv2.create_load_balancer(
        Name=name, Subnets=world.subnets, Type="network", Scheme=scheme, **({"SecurityGroups": [sg]} if sg else {}),
        Tags=[{"Key": "elbv2.k8s.aws/cluster", "Value": CLUSTER}, {"Key": "service.k8s.aws/stack", "Value": "game/tcp"},
              {"Key": "service.k8s.aws/resource", "Value": "LoadBalancer"}])["LoadBalancers"][0]
    tg = elbv2.create_target_group(Name=f"{name[:24]}-tg", Protocol="TCP", Port=TRAFFIC, VpcId=world.vpc_id,
                                   TargetType="instance")["TargetGroups"][0]["TargetGroupArn"]
    if preserve is not None:
        elbv2.modify_target_group_attributes(TargetGroupArn=tg, Attributes=[
            {"Key": "preserve_client_ip.enabled", "Value": str(preserve).lower()}])
    elbv2.register_targets(TargetGroupArn=tg, Targets=[{"Id": world.instance_id, "Port": TRAFFIC}])
    elbv2.create_listener(LoadBalancerArn=lb["LoadBalancerArn"], Protocol="TCP", Port=80,
                          DefaultActions=[{"Type": "forward", "TargetGroupArn": tg}])
    return name, sg, tg


def admit(world: World, *cidrs: str, group: str | None = None) -> list[str]:
    """Node rules on the traffic port, from address ranges or from a group; their rule ids."""
    peers = {"UserIdGroupPairs": [{"GroupId": group}]} if group else {"IpRanges": [{"CidrIp": c} for c in cidrs]}
    answer = world.client("ec2").authorize_security_group_ingress(GroupId=world.node_sg, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": TRAFFIC, "ToPort": TRAFFIC, **peers}])
    return [r["SecurityGroupRuleId"] for r in answer["SecurityGroupRules"]]


@pytest.fixture
def world(tiny_aws_env) -> World:
    return build_world(tiny_aws_env, ())


def test_a_node_group_admitting_only_the_nlb_subnets_drops_every_client_and_check_says_so(world, capsys):
    name, _, _ = add_nlb(world)  # instance targets: AWS preserves client addresses by default
    admit(world, *SUBNETS)  # health checks pass: they come from the NLB's own addresses
    code, report = run_check(capsys, CLUSTER)
    lb = lb_by_name(report, name)
    (path,) = lb["paths"]
    assert code == 1 and lb["reachable"] is False
    assert path["covered"] is True and path["clients_admitted"] is False and path["clients_missing"] == ["0.0.0.0/0"]
    (finding,) = [f for f in report["findings"] if f["code"] == "CLIENTS_NOT_ADMITTED"]
    assert finding["severity"] == "critical" and finding["load_balancer"] == name
    assert finding["security_group"] == world.node_sg
    assert f"tcp {TRAFFIC}" in finding["message"] and "0.0.0.0/0" in finding["message"]
    assert f"aws ec2 authorize-security-group-ingress --group-id {world.node_sg}" in finding["message"]


@pytest.mark.parametrize("case", ["preservation off", "rule from the NLB's group", "open to everyone",
                                  "internal, VPC admitted"])
def test_clients_admitted_or_not_preserved_is_no_finding(world, capsys, case):
    if case == "preservation off":
        name, _, _ = add_nlb(world, preserve=False)
        admit(world, *SUBNETS)
    elif case == "rule from the NLB's group":
        name, sg, _ = add_nlb(world)
        admit(world, group=sg)
    elif case == "open to everyone":
        name, _, _ = add_nlb(world)
        admit(world, "0.0.0.0/0")
    else:
        name, _, _ = add_nlb(world, groups=False, scheme="internal")
        admit(world, "10.0.0.0/16")  # the tiny world's VPC
    code, report = run_check(capsys, CLUSTER)
    lb = lb_by_name(report, name)
    assert code == 0 and report["complete"] and lb["reachable"] is True, report["findings"]
    assert lb["paths"][0]["clients_admitted"] is True and not report["findings"]


def test_the_service_source_ranges_are_the_clients_when_kubernetes_is_read(world, capsys, tmp_path, monkeypatch):
    name, _, _ = add_nlb(world)
    admit(world, *SUBNETS, "203.0.113.0/24")
    code, _ = run_check(capsys, CLUSTER)
    assert code == 1  # without Kubernetes, an internet-facing NLB's clients are everyone
    api = KubeApi()
    try:
        api.add({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "tcp", "namespace": "game"},
                 "spec": {"type": "LoadBalancer", "loadBalancerSourceRanges": ["203.0.113.0/24"],
                          "ports": [{"port": 80, "protocol": "TCP", "targetPort": 8080, "nodePort": TRAFFIC}]}})
        monkeypatch.setenv("KUBECONFIG", kubeconfig(tmp_path / "kubeconfig", api.url))
        code, report = run_check(capsys, CLUSTER, "--kubernetes", "on")
        lb = lb_by_name(report, name)
        assert code == 0 and lb["reachable"] is True and "CLIENTS_NOT_ADMITTED" not in codes(report), report["findings"]
        # A second range the rules do not admit is named, and only it.
        api.add({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "tcp", "namespace": "game"},
                 "spec": {"type": "LoadBalancer", "loadBalancerSourceRanges": ["203.0.113.0/24", "198.51.100.0/24"],
                          "ports": [{"port": 80, "protocol": "TCP", "targetPort": 8080, "nodePort": TRAFFIC}]}})
        code, report = run_check(capsys, CLUSTER, "--kubernetes", "on")
        assert code == 1 and lb_by_name(report, name)["paths"][0]["clients_missing"] == ["198.51.100.0/24"]
    finally:
        api.close()


@pytest.mark.parametrize("operation, scheme", [("DescribeTargetGroupAttributes", "internet-facing"),
                                               ("DescribeVpcs", "internal")])
def test_an_unread_client_source_is_incomplete_never_a_finding(world, capsys, monkeypatch, operation, scheme):
    name, _, _ = add_nlb(world, scheme=scheme)
    admit(world, *SUBNETS)  # clients dropped, were they known
    with AwsProxy(world.endpoint) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
        proxy.fail([operation], kind=THROTTLE)
        code, report = run_check(capsys, CLUSTER)
        assert proxy.injected[next(k for k in proxy.injected if k[1] == operation)]
    lb = lb_by_name(report, name)
    assert code == 3 and not report["complete"] and lb["reachable"] is None
    assert lb["paths"][0]["clients_admitted"] is None
    assert "CLIENTS_NOT_ADMITTED" not in codes(report) and "OBSERVATION_INCOMPLETE" in codes(report)


def test_an_nlb_without_groups_is_judged_by_its_cidr_rules_and_enforce_never_writes_them(world, capsys):
    name, _, _ = add_nlb(world, groups=False, preserve=False)
    rule_ids = admit(world, *SUBNETS)  # what v2 writes for it: its subnets, as address ranges
    code, report = run_check(capsys, CLUSTER)
    assert code == 0 and lb_by_name(report, name)["reachable"] is True
    now = [1_700_000_000.0]
    settings = Settings(cluster_name=CLUSTER, mode="enforce", interval=15.0, grace=15.0, listen="127.0.0.1:0",
                        kubernetes="off")
    parts = assemble_daemon(settings, wall=lambda: now[0], monotonic=lambda: now[0])
    try:
        assert parts.daemon.run_once().report.load_balancers[0].reachable is True
        world.client("ec2").revoke_security_group_ingress(GroupId=world.node_sg, SecurityGroupRuleIds=rule_ids[:1])
        summaries = []
        for _ in range(4):  # well past the grace
            now[0] += 15.0
            summaries.append(parts.daemon.run_once())
        refreshes = [line for line in parts.metrics.exposition()[0].decode().splitlines()
                     if line.startswith("albsg_topology_refreshes_total{")]
    finally:
        parts.server.stop()
    assert all(s.ok for s in summaries)
    # Known at the start and listed with the same (no) groups since: never taken for a new load balancer.
    assert refreshes == ['albsg_topology_refreshes_total{reason="start"} 1.0'], refreshes
    assert not [o for s in summaries for o in s.remediations if o.result is not None]
    rules = world.client("ec2").describe_security_group_rules(
        Filters=[{"Name": "group-id", "Values": [world.node_sg]}])["SecurityGroupRules"]
    assert sorted(r.get("CidrIpv4") for r in rules if not r["IsEgress"]) == [SUBNETS[1]]  # nothing put back
    capsys.readouterr()  # the daemon's log lines
    code, report = run_check(capsys, CLUSTER)
    (revoked,) = [f for f in report["findings"] if f["code"] == "ACCESS_REVOKED"]
    assert code == 1 and revoked["load_balancer"] == name
    assert f"IpRanges=[{{CidrIp={SUBNETS[0]},Description=restored-by-hand}}" in revoked["message"]
    assert "GroupId=" not in revoked["message"]
