"""The demo account's ELB health-checks its targets from the account's rules (moto alone always
answers `healthy`): a revoked node rule or a network ACL deny turns the targets unhealthy
(Target.Timeout) once they have failed the unhealthy threshold's checks; put back, they pass."""

from __future__ import annotations

import pytest

from monitor.demo import world as demo_world
from monitor.demo.elb import DemoElb


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def elb(world):
    clock = Clock()
    front = DemoElb(world.endpoint, world.region, clock).start()
    yield front, clock
    front.stop()


def states(front: DemoElb, world, key: str) -> set[tuple[str, str]]:
    elbv2 = demo_world.aws_clients(front.url, world.region)["elbv2"]
    answer = elbv2.describe_target_health(TargetGroupArn=world.tg[key])["TargetHealthDescriptions"]
    return {(d["TargetHealth"]["State"], d["TargetHealth"].get("Reason", "")) for d in answer}


def test_a_revoked_rule_fails_the_health_checks_after_the_unhealthy_threshold(world, elb):
    front, clock = elb
    assert states(front, world, "shop") == {("healthy", "")}
    demo_world.revoke(world, "shop_v1")
    assert states(front, world, "shop") == {("healthy", "")}  # the first failed check
    clock.now += 5 * 2 - 1
    assert states(front, world, "shop") == {("healthy", "")}
    clock.now += 1  # two checks 5 s apart have failed
    assert states(front, world, "shop") == {("unhealthy", "Target.Timeout")}
    assert states(front, world, "blog") == {("healthy", "")}  # another ALB's rule is untouched
    demo_world.restore(world, "shop_v1")
    assert states(front, world, "shop") == {("healthy", "")}


def test_a_network_acl_deny_from_the_load_balancer_subnets_fails_them_too(world, elb):
    front, clock = elb
    ec2 = world.clients()["ec2"]
    private = [s for k, s in world.subnets.items() if k.startswith("private")]
    acl = ec2.create_network_acl(VpcId=world.vpc_id)["NetworkAcl"]["NetworkAclId"]
    ec2.create_network_acl_entry(NetworkAclId=acl, RuleNumber=100, Protocol="-1", RuleAction="allow",
                                 Egress=False, CidrBlock="0.0.0.0/0")
    associations = ec2.describe_network_acls(Filters=[{"Name": "association.subnet-id", "Values": private}])
    for found in associations["NetworkAcls"]:
        for association in found["Associations"]:
            if association["SubnetId"] in private:
                ec2.replace_network_acl_association(AssociationId=association["NetworkAclAssociationId"],
                                                    NetworkAclId=acl)
    assert states(front, world, "shop") == {("healthy", "")}
    ec2.create_network_acl_entry(NetworkAclId=acl, RuleNumber=50, Protocol="6", RuleAction="deny", Egress=False,
                                 CidrBlock="10.20.0.0/16", PortRange={"From": 30000, "To": 32767})
    states(front, world, "shop")
    clock.now += 10
    assert states(front, world, "shop") == {("unhealthy", "Target.Timeout")}


def test_every_other_request_passes_through_unchanged(world, elb):
    front, _ = elb
    direct = world.clients()["ec2"].describe_security_groups()["SecurityGroups"]
    through = demo_world.aws_clients(front.url, world.region)["ec2"].describe_security_groups()["SecurityGroups"]
    assert [g["GroupId"] for g in through] == [g["GroupId"] for g in direct]
