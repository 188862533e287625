"""ip targets registered outside their target group's VPC (`AvailabilityZone=all`: a peered VPC, on
premises), over moto: an address an ENI of another VPC of the account owns is judged on that ENI's
security groups; one no ENI owns is `not_judged`, never reachable and never a finding; a failed
lookup is unknown.

moto leaves `AvailabilityZone` out of its DescribeTargetHealth answer, where AWS says `all` for such
a target: the test proxy puts it back into the answer for the addresses registered so.
"""

from __future__ import annotations

import re

import pytest

from monitor.cli import main
from monitor.core.settings import Settings
from monitor.surface.main import assemble_daemon
from tests.daemon.test_daemon import reachable, scrape
from tests.support.awsproxy import DROP, ERROR, MALFORMED, THROTTLE, UNAVAILABLE, AwsProxy
from tests.support.fixtures import tiny_aws_env, tiny_moto, tiny_world  # noqa: F401 (fixtures)
from tests.support.helpers import codes, lb_by_name, run_check
from tests.support.tinyworld import CLUSTER, V2_MANAGED_SG_DESCRIPTION, World

ON_PREMISES = "192.168.50.10"
PEERED = "10.1.1.20"  # inside a second VPC of the account (10.1.0.0/16)
POD_PORT = 8080


@pytest.fixture
def proxy(tiny_world: World, monkeypatch):
    with AwsProxy(tiny_world.endpoint) as running:
        monkeypatch.setenv("AWS_ENDPOINT_URL", running.url)
        yield running


def register_outside(world: World, proxy: AwsProxy, alb_arn: str, name: str, *ips: str) -> str:
    """An ip target group on a listener of the ALB, with `ips` registered AvailabilityZone=all."""
    elbv2 = world.client("elbv2")
    tg = elbv2.create_target_group(Name=name, Protocol="HTTP", Port=POD_PORT, VpcId=world.vpc_id,
                                   TargetType="ip")["TargetGroups"][0]["TargetGroupArn"]
    elbv2.register_targets(TargetGroupArn=tg, Targets=[{"Id": ip, "Port": POD_PORT, "AvailabilityZone": "all"}
                                                       for ip in ips])
    listeners = elbv2.describe_listeners(LoadBalancerArn=alb_arn)["Listeners"]
    elbv2.create_listener(LoadBalancerArn=alb_arn, Protocol="HTTP", Port=8000 + len(listeners),
                          DefaultActions=[{"Type": "forward", "TargetGroupArn": tg}])
    outside = {ip.encode() for ip in ips}

    def with_zone(body: bytes) -> bytes:
        return re.sub(rb"(<Id>([^<]*)</Id>)",
                      lambda m: m.group(1) + (b"<AvailabilityZone>all</AvailabilityZone>" if m.group(2) in outside
                                              else b""), body)
    proxy.rewrite("DescribeTargetHealth", with_zone)
    return tg


def alb_without_targets(world: World, name: str) -> tuple[str, str, str]:
    """A v2 ALB (its name, ARN, security group) with no target group yet."""
    ec2, elbv2 = world.client("ec2"), world.client("elbv2")
    sg = ec2.create_security_group(GroupName=name, Description=V2_MANAGED_SG_DESCRIPTION, VpcId=world.vpc_id)["GroupId"]
    lb = elbv2.create_load_balancer(
        Name=name, Subnets=world.subnets, SecurityGroups=[sg], Type="application",
        Tags=[{"Key": "elbv2.k8s.aws/cluster", "Value": CLUSTER}, {"Key": "ingress.k8s.aws/stack", "Value": "shop/far"},
              {"Key": "ingress.k8s.aws/resource", "Value": "LoadBalancer"}])["LoadBalancers"][0]
    return name, lb["LoadBalancerArn"], sg


def peered_pod(world: World, address: str = PEERED, cidr: str = "10.1.0.0/16") -> tuple[str, str]:
    """A second VPC of the account with an ENI owning `address`: (its security group, its ENI)."""
    ec2 = world.client("ec2")
    vpc = ec2.create_vpc(CidrBlock=cidr)["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock=cidr.replace("0.0/16", "1.0/24"))["Subnet"]["SubnetId"]
    sg = ec2.create_security_group(GroupName=f"peer-pods-{vpc}", Description="pods", VpcId=vpc)["GroupId"]
    eni = ec2.create_network_interface(SubnetId=subnet, Groups=[sg], PrivateIpAddress=address)["NetworkInterface"]
    return sg, eni["NetworkInterfaceId"]


def admit(world: World, group: str, source: str) -> str:
    answer = world.client("ec2").authorize_security_group_ingress(GroupId=group, IpPermissions=[{
        "IpProtocol": "tcp", "FromPort": POD_PORT, "ToPort": POD_PORT, "UserIdGroupPairs": [{"GroupId": source}]}])
    return answer["SecurityGroupRules"][0]["SecurityGroupRuleId"]


def only_path(report: dict, lb_name: str) -> dict:
    path, = lb_by_name(report, lb_name)["paths"]
    return path


def main_table(capsys) -> str:
    main(["check", "--cluster-name", CLUSTER, "--output", "table"])
    return capsys.readouterr().out


def test_an_address_no_eni_owns_is_not_judged_and_its_only_alb_has_no_verdict(tiny_world, proxy, capsys):
    name, arn, _ = alb_without_targets(tiny_world, "k8s-shop-far-0123456789")
    register_outside(tiny_world, proxy, arn, "k8s-far-tg", ON_PREMISES)
    code, report = run_check(capsys, CLUSTER)
    path = only_path(report, name)
    assert path["target"] == ON_PREMISES and path["state"] == "not_judged"
    assert "no ENI of the account owns" in path["not_judged_reason"]
    assert lb_by_name(report, name)["reachable"] is None
    assert code == 0 and report["complete"] is True and codes(report) == []

    assert main_table(capsys).count("not judged") == 2  # PATHS `0/0 +1 not judged`, STATE `not judged`

    parts = assemble_daemon(Settings(cluster_name=CLUSTER, interval=15.0, listen="127.0.0.1:0"))
    parts.server.start()
    try:
        summary = parts.daemon.run_once()
        assert summary.fields()["not_judged"] == 1 and summary.fields()["unknown"] == 0
        got = scrape(parts)
        assert {state: got[("albsg_paths", (("state", state),))]
                for state in ("covered", "uncovered", "unknown", "not_judged")} == {
            "covered": 2, "uncovered": 0, "unknown": 0, "not_judged": 1}  # covered: the tiny world's two ALBs
        assert name not in reachable(parts)  # no verdict, no sample
    finally:
        parts.server.stop()


def test_one_covered_and_one_not_judged_target_leave_the_alb_reachable(tiny_world, proxy, capsys):
    web = tiny_world.albs["web"]
    register_outside(tiny_world, proxy, web.arn, "k8s-web-far", ON_PREMISES)
    code, report = run_check(capsys, CLUSTER)
    lb = lb_by_name(report, web.name)
    assert sorted(p["state"] for p in lb["paths"]) == ["covered", "not_judged"]
    assert lb["reachable"] is True and code == 0
    row = next(line for line in main_table(capsys).splitlines() if line.startswith(web.name))
    assert "1/1 +1 not judged" in row and row.split()[-1] == "ok"

    parts = assemble_daemon(Settings(cluster_name=CLUSTER, interval=15.0, listen="127.0.0.1:0"))
    parts.server.start()
    try:
        parts.daemon.run_once()
        got = scrape(parts)
        assert got[("albsg_paths", (("state", "not_judged"),))] == 1
        assert got[("albsg_paths", (("state", "covered"),))] == 2  # web's node path, and api's
        assert reachable(parts)[web.name] == 1
    finally:
        parts.server.stop()


def test_a_target_in_a_peered_vpc_is_judged_on_its_eni_and_a_revoked_rule_is_found(tiny_world, proxy, capsys):
    name, arn, alb_sg = alb_without_targets(tiny_world, "k8s-shop-far-0123456789")
    peer_sg, eni = peered_pod(tiny_world)
    rule = admit(tiny_world, peer_sg, alb_sg)
    register_outside(tiny_world, proxy, arn, "k8s-far-tg", PEERED)
    code, report = run_check(capsys, CLUSTER)
    path = only_path(report, name)
    assert path["state"] == "covered" and path["security_groups"] == [peer_sg] and rule in path["covered_by"]
    assert lb_by_name(report, name)["reachable"] is True and code == 0

    tiny_world.client("ec2").revoke_security_group_ingress(GroupId=peer_sg, SecurityGroupRuleIds=[rule])
    code, report = run_check(capsys, CLUSTER)
    assert only_path(report, name)["state"] == "uncovered"
    assert code == 1 and lb_by_name(report, name)["reachable"] is False
    revoked = [f for f in report["findings"] if f["code"] == "ACCESS_REVOKED"]
    assert [(f["load_balancer"], f["security_group"]) for f in revoked] == [(name, peer_sg)]


def test_an_address_owned_in_two_vpcs_is_not_judged_and_says_which(tiny_world, proxy, capsys):
    name, arn, alb_sg = alb_without_targets(tiny_world, "k8s-shop-far-0123456789")
    first_sg, first = peered_pod(tiny_world)
    second_sg, second = peered_pod(tiny_world)  # overlapping CIDRs: the same address in another VPC
    admit(tiny_world, first_sg, alb_sg)
    register_outside(tiny_world, proxy, arn, "k8s-far-tg", PEERED)
    code, report = run_check(capsys, CLUSTER)
    path = only_path(report, name)
    assert path["state"] == "not_judged" and path["security_groups"] == []
    assert first in path["not_judged_reason"] and second in path["not_judged_reason"]
    assert code == 0 and lb_by_name(report, name)["reachable"] is None


@pytest.mark.parametrize("kind", [ERROR, THROTTLE, UNAVAILABLE, MALFORMED, DROP])
@pytest.mark.parametrize("operation", ["DescribeNetworkInterfaces", "DescribeSubnets"])
def test_a_failed_lookup_is_unknown_never_not_judged(tiny_world, proxy, capsys, monkeypatch, operation, kind):
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")  # the verdict on a failed answer, not the retry, is tested
    web = tiny_world.albs["web"]
    register_outside(tiny_world, proxy, web.arn, "k8s-web-far", ON_PREMISES)
    if kind == ERROR:
        proxy.fail([operation], kind=ERROR, status=403, code="UnauthorizedOperation")
    else:
        proxy.fail([operation], kind=kind)
    code, report = run_check(capsys, CLUSTER)
    lb = lb_by_name(report, web.name)
    far = next(p for p in lb["paths"] if p["target"] == ON_PREMISES)
    assert far["state"] == "unknown" and "not_judged_reason" not in far
    assert lb["reachable"] is None and report["complete"] is False and code == 3
    assert "OBSERVATION_INCOMPLETE" in codes(report)


def test_an_ipv6_address_in_a_peered_vpc_is_found_through_its_subnet(tiny_world, proxy, capsys):
    # No address filter serves IPv6 everywhere: the address is found among the ENIs of the account's
    # subnet it falls in.
    name, arn, alb_sg = alb_without_targets(tiny_world, "k8s-shop-far-0123456789")
    ec2 = tiny_world.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.1.0.0/16", AmazonProvidedIpv6CidrBlock=True)["Vpc"]
    net = vpc["Ipv6CidrBlockAssociationSet"][0]["Ipv6CidrBlock"].replace("::/56", "::/64")
    subnet = ec2.create_subnet(VpcId=vpc["VpcId"], CidrBlock="10.1.1.0/24", Ipv6CidrBlock=net)["Subnet"]["SubnetId"]
    sg = ec2.create_security_group(GroupName="peer-pods6", Description="pods", VpcId=vpc["VpcId"])["GroupId"]
    address = net.replace("::/64", "::2a")
    ec2.create_network_interface(SubnetId=subnet, Groups=[sg], Ipv6Addresses=[{"Ipv6Address": address}])
    admit(tiny_world, sg, alb_sg)
    # The ALB's group lets IPv6 out as a dual-stack VPC's default rule does (its own VPC is IPv4-only).
    ec2.authorize_security_group_egress(GroupId=alb_sg, IpPermissions=[
        {"IpProtocol": "-1", "Ipv6Ranges": [{"CidrIpv6": "::/0"}]}])
    register_outside(tiny_world, proxy, arn, "k8s-far-tg", address)
    code, report = run_check(capsys, CLUSTER)
    path = only_path(report, name)
    assert path["state"] == "covered" and path["security_groups"] == [sg], path
    assert code == 0 and lb_by_name(report, name)["reachable"] is True
