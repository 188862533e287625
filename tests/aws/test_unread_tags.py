"""A finding is raised only on what was read: tags that were not read decide nothing."""

from __future__ import annotations

from monitor.aws.discover import describe_groups, discover_load_balancers
from monitor.core.evaluate import evaluate
from monitor.core.model import (
    LoadBalancer,
    Observation,
    PeerKind,
    ReadFailure,
    Rule,
    SecurityGroup,
    Target,
    TargetGroup,
    Topology,
)
from tests.support.helpers import codes, run_check
from tests.support.stubbed import stubbed

LB = "arn:aws:elasticloadbalancing:r:1:loadbalancer/app/a/1"
TG = "arn:aws:elasticloadbalancing:r:1:targetgroup/t/1"
TAGGED = (("kubernetes.io/cluster/c", "owned"),)
FAILED = ReadFailure("ec2", "DescribeSecurityGroups", "RequestLimitExceeded", "Request limit exceeded.", "sg-b")


def _report(groups, failures=(FAILED,)):
    topology = Topology(
        cluster="c", region="r",
        load_balancers=(LoadBalancer(LB, "a", "application", "vpc", ("sg-alb",), ("10.0.0.0/24",), adoption="v2"),),
        target_groups=(TargetGroup(TG, "t", "instance", "HTTP", 30080, "vpc", "traffic-port", (LB,),
                                   (Target("i-1", 30080, "eni-1", ("sg-a", "sg-b")),)),),
        security_groups=tuple(groups), failures=tuple(failures))
    rule = Rule("sg-a", "tcp", 30080, 30080, PeerKind.SECURITY_GROUP, "sg-alb", rule_id="sgr-1")
    return evaluate(topology, Observation(rules=(rule,), read_groups=frozenset({"sg-a", "sg-b"})))


def _ambiguous(report):
    return [f for f in report.findings if f.code == "AMBIGUOUS_NODE_SECURITY_GROUP"]


def test_an_eni_whose_groups_were_not_read_is_not_ambiguous():
    # sg-b's tags were not read: it might be the one tagged group. Unknown, not "0 tagged".
    assert _ambiguous(_report([SecurityGroup("sg-a", "a", "", "vpc")])) == []
    # sg-a is tagged, sg-b unread: exactly one or two tagged, nobody can tell.
    report = _report([SecurityGroup("sg-a", "a", "", "vpc", TAGGED)])
    assert _ambiguous(report) == [] and report.exit_code == 3


def test_what_was_read_still_decides():
    both_read_none_tagged = _report([SecurityGroup("sg-a", "a", "", "vpc"), SecurityGroup("sg-b", "b", "", "vpc")],
                                    failures=())
    assert len(_ambiguous(both_read_none_tagged)) == 1 and both_read_none_tagged.exit_code == 1
    # Two of them read and tagged: ambiguous whatever the third says.
    topology_groups = [SecurityGroup("sg-a", "a", "", "vpc", TAGGED), SecurityGroup("sg-b", "b", "", "vpc", TAGGED)]
    assert len(_ambiguous(_report(topology_groups))) == 1


def test_check_with_security_groups_throttled_exits_3_without_a_critical_finding(world, proxy, capsys):
    proxy.fail(["DescribeSecurityGroups"])
    code, report = run_check(capsys, world.cluster)
    assert "AMBIGUOUS_NODE_SECURITY_GROUP" not in codes(report)
    assert [f for f in report["findings"] if f["severity"] == "critical"] == []
    assert code == 3 and report["complete"] is False


def _coverage(rule: Rule, prefix_lists=(), subnets=("10.0.0.0/24",), failures=()):
    topology = Topology(
        cluster="c", region="r",
        load_balancers=(LoadBalancer(LB, "a", "application", "vpc", ("sg-alb",), subnets, adoption="v2",
                                     subnets_read=not any(f.operation == "DescribeSubnets" for f in failures)),),
        target_groups=(TargetGroup(TG, "t", "instance", "HTTP", 30080, "vpc", "traffic-port", (LB,),
                                   (Target("i-1", 30080, "eni-1", ("sg-a",)),)),),
        security_groups=(SecurityGroup("sg-a", "a", "", "vpc", TAGGED),), failures=tuple(failures))
    open_egress = Rule("sg-alb", "-1", None, None, PeerKind.CIDR, "0.0.0.0/0", rule_id="sgr-out", egress=True)
    report = evaluate(topology, Observation(rules=(rule,), read_groups=frozenset({"sg-a", "sg-alb"}),
                                            egress_rules=(open_egress,), prefix_lists=tuple(prefix_lists)))
    return report.load_balancers[0].reachable, report.exit_code


SUBNETS_FAILED = ReadFailure("ec2", "DescribeSubnets", "Throttling", "Rate exceeded", "subnet-1")
PL_RULE = Rule("sg-a", "tcp", 30080, 30080, PeerKind.PREFIX_LIST, "pl-1", rule_id="sgr-pl")
CIDR_RULE = Rule("sg-a", "tcp", 30080, 30080, PeerKind.CIDR, "10.0.0.0/16", rule_id="sgr-cidr")


def test_a_prefix_list_whose_entries_were_not_read_leaves_the_path_unknown():
    assert _coverage(PL_RULE, prefix_lists=[("pl-1", ("10.0.0.0/16",))]) == (True, 0)
    assert _coverage(PL_RULE, prefix_lists=[("pl-1", ("192.168.0.0/16",))]) == (False, 1)
    assert _coverage(PL_RULE, failures=[ReadFailure("ec2", "GetManagedPrefixListEntries", "Throttling", "x")]) \
        == (None, 3)


def test_cidr_and_prefix_list_rules_are_unknown_while_the_albs_subnets_were_not_read():
    assert _coverage(CIDR_RULE) == (True, 0)
    assert _coverage(CIDR_RULE, subnets=(), failures=[SUBNETS_FAILED]) == (None, 3)
    assert _coverage(PL_RULE, prefix_lists=[("pl-1", ("10.0.0.0/16",))], subnets=(), failures=[SUBNETS_FAILED]) \
        == (None, 3)
    # A rule from another SG does not depend on the subnets: its absence is still a verdict.
    other = Rule("sg-a", "tcp", 30080, 30080, PeerKind.SECURITY_GROUP, "sg-other", rule_id="sgr-o")
    assert _coverage(other, subnets=(), failures=[SUBNETS_FAILED]) == (False, 1)


# -- MIGRATION_POLICY_*: the v1 ALB's security group tags decide conditions on them ------------------

def test_the_migration_policy_check_does_not_guess_a_security_groups_tags_from_its_albs():
    from dataclasses import replace as _replace

    from tests.core import test_migration as tm

    by_resource_tag = {"Statement": [
        {"Effect": "Allow", "Action": "elasticloadbalancing:*", "Resource": "*"},
        {"Effect": "Allow", "Action": "ec2:*Tags", "Resource": "*",
         "Condition": {"StringEquals": {"aws:ResourceTag/ingress.k8s.aws/resource": "ManagedLBSecurityGroup"}}}]}
    no_ec2_tagging = {"Statement": [{"Effect": "Allow", "Action": "elasticloadbalancing:*", "Resource": "*"}]}
    read = tm.topology()
    unread = _replace(read, security_groups=tuple(g for g in read.security_groups if g.group_id != tm.V1_SG))

    def found(topology, document):
        return [(f.code, f.severity.value) for f in
                tm.migration_policy(topology, tm.v2_state(), tm.policies(document))], topology

    assert found(read, by_resource_tag)[0] == []
    codes_, _ = found(unread, by_resource_tag)
    assert codes_ == [("MIGRATION_POLICY_UNVERIFIED", "warning")]
    (finding,) = tm.migration_policy(unread, tm.v2_state(), tm.policies(by_resource_tag))
    assert f"the tags of {tm.V1_SG} could not be read" in finding.message
    # A policy that never allows tagging security groups is missing it whatever their tags say.
    assert found(unread, no_ec2_tagging)[0] == [("MIGRATION_POLICY_MISSING", "critical")]


# --- discovery answers that leave out what was asked (literal answers) ---------------------------

ALB_ARN = "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/k8s-shop/1"
RAW_ALB = {"LoadBalancerArn": ALB_ARN, "LoadBalancerName": "k8s-shop", "Type": "application", "VpcId": "vpc-1",
           "SecurityGroups": ["sg-0aaaaaaaaaaaaaaa1"],
           "AvailabilityZones": [{"ZoneName": "us-east-1a", "SubnetId": "subnet-0aaaaaaaaaaaaaaa1"}]}
SG = {"GroupId": "sg-0aaaaaaaaaaaaaaa1", "GroupName": "k8s-shop", "VpcId": "vpc-1", "Description": "alb"}


def test_a_load_balancer_left_out_of_a_tags_answer_is_unread_not_foreign():
    with stubbed() as (clients, stubs):
        stubs["elbv2"].add_response("describe_tags", {"TagDescriptions": []})
        topology = discover_load_balancers(clients, "c", [RAW_ALB])
    assert topology.load_balancers == ()
    assert [(f.operation, f.code, f.scope) for f in topology.failures] == [("DescribeTags", "EmptyAnswer", ALB_ARN)]


def _tagged_alb(stubs) -> None:
    stubs["elbv2"].add_response("describe_tags", {"TagDescriptions": [
        {"ResourceArn": ALB_ARN, "Tags": [{"Key": "elbv2.k8s.aws/cluster", "Value": "c"}]}]})
    stubs["elbv2"].add_response("describe_target_groups", {"TargetGroups": []})


def test_a_load_balancers_subnets_answered_with_nothing_are_a_failed_read():
    with stubbed() as (clients, stubs):
        _tagged_alb(stubs)
        stubs["ec2"].add_response("describe_security_groups", {"SecurityGroups": [SG]})
        stubs["ec2"].add_response("describe_subnets", {"Subnets": []})
        topology = discover_load_balancers(clients, "c", [RAW_ALB])
    assert not topology.load_balancers[0].subnets_read
    assert [(f.operation, f.code) for f in topology.failures] == [("DescribeSubnets", "EmptyAnswer")]


def test_groups_answered_with_nothing_are_asked_again_by_id():
    with stubbed() as (clients, stubs):
        stubs["ec2"].add_response("describe_security_groups", {"SecurityGroups": []})
        stubs["ec2"].add_response("describe_security_groups", {"SecurityGroups": [SG]},
                                  {"GroupIds": [SG["GroupId"]]})
        failures: list = []
        assert [g.group_id for g in describe_groups(clients, [SG["GroupId"]], failures)] == [SG["GroupId"]]
    assert not failures


def test_groups_answered_with_nothing_twice_are_unread_and_absent_only_when_aws_says_not_found():
    with stubbed() as (clients, stubs):
        for second in ({"SecurityGroups": []}, None):
            stubs["ec2"].add_response("describe_security_groups", {"SecurityGroups": []})
            if second is None:
                stubs["ec2"].add_client_error("describe_security_groups", "InvalidGroup.NotFound",
                                              f"The security group '{SG['GroupId']}' does not exist")
            else:
                stubs["ec2"].add_response("describe_security_groups", second)
        unread: list = []
        assert describe_groups(clients, [SG["GroupId"]], unread) == []
        gone: list = []
        assert describe_groups(clients, [SG["GroupId"]], gone) == []
    assert [(f.operation, f.code) for f in unread] == [("DescribeSecurityGroups", "EmptyAnswer")]
    assert gone == []
