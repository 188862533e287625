"""`check` over moto on clusters shaped the ways real ones are: CIDR rules split per subnet, UDP
NLBs, and load balancer security groups whose egress was hardened."""

from __future__ import annotations

import boto3
import pytest

from tests.support.fixtures import tiny_aws_env, tiny_moto  # noqa: F401 (fixtures)
from tests.support.helpers import codes, lb_by_name, run_check
from tests.support.tinyworld import CLUSTER, World, build_world

NODE_PORTS = {"IpProtocol": "tcp", "FromPort": 30000, "ToPort": 32767}


def _cidr_rule(world: World, cidr: str) -> None:
    world.client("ec2").authorize_security_group_ingress(
        GroupId=world.node_sg, IpPermissions=[{**NODE_PORTS, "IpRanges": [{"CidrIp": cidr}]}])


@pytest.fixture
def web(tiny_aws_env) -> World:
    return build_world(tiny_aws_env, ("web",))


def test_one_cidr_rule_per_alb_subnet_covers_the_alb_together(web, capsys):
    # What Terraform makes of cidr_blocks = [a, b]: one rule per ALB subnet, and no SG rule.
    web.revoke_node_rule("web")
    _cidr_rule(web, "10.0.1.0/24")
    _cidr_rule(web, "10.0.2.0/24")
    code, report = run_check(capsys, CLUSTER)
    lb = lb_by_name(report, web.albs["web"].name)
    assert code == 0 and lb["reachable"] is True
    assert len(lb["paths"][0]["covered_by"]) == 2  # both rules contributed


def test_a_cidr_rule_for_one_alb_subnet_only_is_not_enough(web, capsys):
    web.revoke_node_rule("web")
    _cidr_rule(web, "10.0.1.0/24")
    code, report = run_check(capsys, CLUSTER)
    assert code == 1 and lb_by_name(report, web.albs["web"].name)["reachable"] is False
    assert "ACCESS_REVOKED" in codes(report)


# --- protocols -------------------------------------------------------------------------------------

TRAFFIC, HEALTH = 31055, 31056


def _udp_nlb(world: World) -> tuple[str, str]:
    """An NLB with a security group (v2.6+), a UDP target group on the node and a TCP health check."""
    ec2, elbv2 = world.client("ec2"), world.client("elbv2")
    sg = ec2.create_security_group(GroupName="k8s-game-dns-0123456789", VpcId=world.vpc_id,
                                   Description="[k8s] Managed SecurityGroup for LoadBalancer")["GroupId"]
    lb = elbv2.create_load_balancer(
        Name="k8s-game-dns-0123456789", Subnets=world.subnets, SecurityGroups=[sg], Type="network",
        Scheme="internet-facing",
        Tags=[{"Key": "elbv2.k8s.aws/cluster", "Value": CLUSTER}, {"Key": "service.k8s.aws/stack", "Value": "game/dns"},
              {"Key": "service.k8s.aws/resource", "Value": "LoadBalancer"}])["LoadBalancers"][0]
    tg = elbv2.create_target_group(Name="k8s-game-dns-udp", Protocol="UDP", Port=TRAFFIC, VpcId=world.vpc_id,
                                   TargetType="instance", HealthCheckProtocol="TCP",
                                   HealthCheckPort=str(HEALTH))["TargetGroups"][0]
    elbv2.register_targets(TargetGroupArn=tg["TargetGroupArn"], Targets=[{"Id": world.instance_id, "Port": TRAFFIC}])
    elbv2.create_listener(LoadBalancerArn=lb["LoadBalancerArn"], Protocol="UDP", Port=53,
                          DefaultActions=[{"Type": "forward", "TargetGroupArn": tg["TargetGroupArn"]}])
    return lb["LoadBalancerName"], sg


def _admit(world: World, protocol: str, port: int, source: str) -> None:
    world.client("ec2").authorize_security_group_ingress(GroupId=world.node_sg, IpPermissions=[
        {"IpProtocol": protocol, "FromPort": port, "ToPort": port, "UserIdGroupPairs": [{"GroupId": source}]}])


@pytest.fixture
def nlb(tiny_aws_env) -> tuple[World, str, str]:
    world = build_world(tiny_aws_env, ())
    name, sg = _udp_nlb(world)
    return world, name, sg


def test_udp_traffic_and_tcp_health_check_rules_are_what_a_udp_nlb_needs(nlb, capsys):
    world, name, sg = nlb
    _admit(world, "udp", TRAFFIC, sg)  # exactly what v2 writes for a UDP service
    _admit(world, "tcp", HEALTH, sg)
    code, report = run_check(capsys, CLUSTER)
    assert code == 0 and lb_by_name(report, name)["reachable"] is True


def test_a_revoked_udp_rule_is_an_outage_even_with_the_tcp_rules_left(nlb, capsys):
    world, name, sg = nlb
    _admit(world, "tcp", TRAFFIC, sg)  # wrong protocol: UDP datagrams are not admitted by it
    _admit(world, "tcp", HEALTH, sg)
    code, report = run_check(capsys, CLUSTER)
    lb = lb_by_name(report, name)
    assert code == 1 and lb["reachable"] is False
    assert lb["paths"][0]["missing"] == [{"protocol": "udp", "port": TRAFFIC}]
    (finding,) = [f for f in report["findings"] if f["code"] == "ACCESS_REVOKED"]
    assert f"IpProtocol=udp,FromPort={TRAFFIC},ToPort={TRAFFIC}" in finding["message"]
    assert "IpProtocol=tcp" not in finding["message"]


# --- the load balancer's own egress -----------------------------------------------------------------

def _harden_egress(world: World, alb_sg: str) -> None:
    """A hardening policy's work: the default allow-all egress replaced by tcp 443 only."""
    ec2 = world.client("ec2")
    ec2.revoke_security_group_egress(GroupId=alb_sg, IpPermissions=[
        {"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
    ec2.authorize_security_group_egress(GroupId=alb_sg, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])


def test_default_egress_of_the_alb_security_group_lets_it_reach_its_targets(web, capsys):
    code, report = run_check(capsys, CLUSTER)
    assert code == 0 and "EGRESS_BLOCKED" not in codes(report)
    assert lb_by_name(report, web.albs["web"].name)["paths"][0]["egress_allowed"] is True


def test_alb_security_group_allowing_only_443_out_cannot_reach_its_targets(web, capsys):
    alb = web.albs["web"]
    _harden_egress(web, alb.security_group)
    code, report = run_check(capsys, CLUSTER)
    lb = lb_by_name(report, alb.name)
    assert code == 1 and lb["reachable"] is False
    assert lb["paths"][0]["covered"] is True and lb["paths"][0]["egress_allowed"] is False
    (finding,) = [f for f in report["findings"] if f["code"] == "EGRESS_BLOCKED"]
    assert finding["severity"] == "critical" and finding["load_balancer"] == alb.name
    assert finding["security_group"] == alb.security_group
    assert "aws ec2 authorize-security-group-egress" in finding["message"]
    assert f"--group-id {alb.security_group}" in finding["message"]
    assert f"GroupId={web.node_sg}" in finding["message"] and "FromPort=30080,ToPort=30080" in finding["message"]


def test_egress_to_the_node_security_group_is_enough(web, capsys):
    alb = web.albs["web"]
    _harden_egress(web, alb.security_group)
    web.client("ec2").authorize_security_group_egress(GroupId=alb.security_group, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 30080, "ToPort": 30080, "UserIdGroupPairs": [{"GroupId": web.node_sg}]}])
    code, report = run_check(capsys, CLUSTER)
    assert code == 0 and lb_by_name(report, alb.name)["reachable"] is True


# --- IPv6 ip targets ---------------------------------------------------------------------------------

def allow_ipv6_in_default_acl(ec2, vpc_id: str) -> None:
    """What AWS adds to a VPC's default network ACL with its IPv6 block (rule 101, ::/0 both ways)
    and moto leaves out."""
    (default,) = ec2.describe_network_acls(Filters=[{"Name": "vpc-id", "Values": [vpc_id]},
                                                    {"Name": "default", "Values": ["true"]}])["NetworkAcls"]
    for egress in (False, True):
        ec2.create_network_acl_entry(NetworkAclId=default["NetworkAclId"], RuleNumber=101, Protocol="-1",
                                     RuleAction="allow", Egress=egress, Ipv6CidrBlock="::/0")


@pytest.fixture
def ipv6_world(tiny_aws_env):
    """A dual-stack VPC and ALB with an IPv6 ip target group: one pod address on a branch ENI."""
    kw = dict(region_name="us-east-1", endpoint_url=tiny_aws_env, aws_access_key_id="testing",
              aws_secret_access_key="testing")
    ec2, elbv2 = boto3.client("ec2", **kw), boto3.client("elbv2", **kw)
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16", AmazonProvidedIpv6CidrBlock=True)["Vpc"]
    block = vpc["Ipv6CidrBlockAssociationSet"][0]["Ipv6CidrBlock"]  # a /56
    allow_ipv6_in_default_acl(ec2, vpc["VpcId"])
    nets = [f"{block.split('::')[0][:-2]}{i:02x}::/64" for i in (1, 2)]
    subnets = [ec2.create_subnet(VpcId=vpc["VpcId"], CidrBlock=f"10.0.{i}.0/24", Ipv6CidrBlock=net,
                                 AvailabilityZone=f"us-east-1{az}")["Subnet"]["SubnetId"]
               for i, az, net in ((1, "a", nets[0]), (2, "b", nets[1]))]
    pods = ec2.create_security_group(GroupName="pods", Description="pods", VpcId=vpc["VpcId"])["GroupId"]
    alb_sg = ec2.create_security_group(GroupName="k8s-shop-web6-0123456789", VpcId=vpc["VpcId"],
                                       Description="[k8s] Managed SecurityGroup for LoadBalancer")["GroupId"]
    pod_ip = nets[0].replace("::/64", "::1a")
    ec2.create_network_interface(SubnetId=subnets[0], Groups=[pods], Ipv6Addresses=[{"Ipv6Address": pod_ip}])
    lb = elbv2.create_load_balancer(
        Name="k8s-shop-web6-0123456789", Subnets=subnets, SecurityGroups=[alb_sg], IpAddressType="dualstack",
        Tags=[{"Key": "elbv2.k8s.aws/cluster", "Value": CLUSTER}, {"Key": "ingress.k8s.aws/stack", "Value": "shop/web6"},
              {"Key": "ingress.k8s.aws/resource", "Value": "LoadBalancer"}])["LoadBalancers"][0]
    tg = elbv2.create_target_group(Name="k8s-web6-tg", Protocol="HTTP", Port=8080, VpcId=vpc["VpcId"],
                                   TargetType="ip", IpAddressType="ipv6")["TargetGroups"][0]
    elbv2.register_targets(TargetGroupArn=tg["TargetGroupArn"], Targets=[{"Id": pod_ip, "Port": 8080}])
    elbv2.create_listener(LoadBalancerArn=lb["LoadBalancerArn"], Protocol="HTTP", Port=80,
                          DefaultActions=[{"Type": "forward", "TargetGroupArn": tg["TargetGroupArn"]}])

    def admit(cidr6: str) -> None:
        ec2.authorize_security_group_ingress(GroupId=pods, IpPermissions=[
            {"IpProtocol": "tcp", "FromPort": 8080, "ToPort": 8080, "Ipv6Ranges": [{"CidrIpv6": cidr6}]}])
    return lb["LoadBalancerName"], nets, admit


def test_ipv6_target_covered_by_cidr6_rules_for_every_alb_subnet(ipv6_world, capsys):
    name, nets, admit = ipv6_world
    for net in nets:
        admit(net)
    code, report = run_check(capsys, CLUSTER)
    lb = lb_by_name(report, name)
    assert code == 0 and report["complete"] is True and lb["reachable"] is True, [f["message"] for f in report["findings"]]
    assert lb["paths"][0]["security_groups"] and lb["paths"][0]["covered"] is True


def test_ipv6_target_admitted_from_one_alb_subnet_only_is_cut(ipv6_world, capsys):
    name, nets, admit = ipv6_world
    admit(nets[0])
    code, report = run_check(capsys, CLUSTER)
    assert code == 1 and lb_by_name(report, name)["reachable"] is False


def test_an_ipv4_network_acl_deny_does_not_stop_an_ipv6_path(ipv6_world, capsys):
    name, nets, admit = ipv6_world
    for net in nets:
        admit(net)
    ec2, elbv2 = boto3.client("ec2"), boto3.client("elbv2")  # the world's moto, from the environment
    (lb,) = elbv2.describe_load_balancers(Names=[name])["LoadBalancers"]
    pod_subnet = next(s["SubnetId"] for s in ec2.describe_subnets(
        Filters=[{"Name": "vpc-id", "Values": [lb["VpcId"]]}])["Subnets"] if s["CidrBlock"] == "10.0.1.0/24")
    acl = ec2.create_network_acl(VpcId=lb["VpcId"])["NetworkAcl"]["NetworkAclId"]
    for egress in (False, True):  # IPv4 denied outright, IPv6 allowed
        ec2.create_network_acl_entry(NetworkAclId=acl, RuleNumber=10, Protocol="-1", RuleAction="deny",
                                     Egress=egress, CidrBlock="0.0.0.0/0")
        ec2.create_network_acl_entry(NetworkAclId=acl, RuleNumber=20, Protocol="-1", RuleAction="allow",
                                     Egress=egress, Ipv6CidrBlock="::/0")
    (current,) = ec2.describe_network_acls(
        Filters=[{"Name": "association.subnet-id", "Values": [pod_subnet]}])["NetworkAcls"]
    (association,) = [a["NetworkAclAssociationId"] for a in current["Associations"] if a["SubnetId"] == pod_subnet]
    ec2.replace_network_acl_association(AssociationId=association, NetworkAclId=acl)
    code, report = run_check(capsys, CLUSTER)
    path = lb_by_name(report, name)["paths"][0]
    assert code == 0 and path["nacl_allowed"] is True and "NACL_BLOCKED" not in codes(report)
    # the same ACL denying IPv6 instead stops it: the entries of the path's family are the ones read
    ec2.replace_network_acl_entry(NetworkAclId=acl, RuleNumber=10, Protocol="-1", RuleAction="deny", Egress=False,
                                  Ipv6CidrBlock="::/0")
    code, report = run_check(capsys, CLUSTER)
    assert code == 1 and "NACL_BLOCKED" in codes(report)
