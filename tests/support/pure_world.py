"""A literal mid-migration cluster for the pure enforce tests: one v1 ALB whose targets sit behind a
node SG, with the v1 node rule (tcp 0-65535 from the managed ALB SG, no description)."""

from __future__ import annotations

from dataclasses import replace

from monitor.core.evaluate import evaluate
from monitor.core.model import (
    LoadBalancer,
    Observation,
    PeerKind,
    ReadFailure,
    Report,
    Rule,
    SecurityGroup,
    Target,
    TargetGroup,
    Topology,
)

CLUSTER = "prod-eks"
LB_ARN = "arn:aws:elasticloadbalancing:ap-northeast-1:123456789012:loadbalancer/app/1a2b3c4d-shop-web-0f1e/50dc6c495c0c9188"
TG_ARN = "arn:aws:elasticloadbalancing:ap-northeast-1:123456789012:targetgroup/1a2b3c4d-30080-HTTP-0f1e/73e2d6bc24d8a067"
ALB_SG = "sg-0a1b00000000000a1"
NODE_SG = "sg-0c2d00000000000c2"
CLUSTER_SG = "sg-0e3f00000000000e3"

V1_RULE = Rule(NODE_SG, "tcp", 0, 65535, PeerKind.SECURITY_GROUP, ALB_SG, rule_id="sgr-0000000000000v1aa")
SSH_RULE = Rule(NODE_SG, "tcp", 22, 22, PeerKind.CIDR, "10.0.0.0/8", rule_id="sgr-0000000000000ssh0")


def load_balancer(name: str = "1a2b3c4d-shop-web-0f1e", arn: str = LB_ARN, groups=(ALB_SG,)) -> LoadBalancer:
    return LoadBalancer(arn=arn, name=name, lb_type="application", vpc_id="vpc-1", security_groups=tuple(groups),
                        subnet_cidrs=("10.0.1.0/24",), adoption="v1", ingress_namespace="shop", ingress="web")


def topology(lbs=None, targets=None, health_port="traffic-port") -> Topology:
    lbs = lbs or (load_balancer(),)
    targets = targets if targets is not None else (Target("i-0aaa", 30080, "eni-0aaa", (NODE_SG,), "healthy"),)
    tg = TargetGroup(arn=TG_ARN, name="shop", target_type="instance", protocol="HTTP", port=30080, vpc_id="vpc-1",
                     health_check_port=health_port, load_balancer_arns=tuple(lb.arn for lb in lbs),
                     targets=tuple(targets))
    groups = (SecurityGroup(ALB_SG, "1a2b3c4d-shop-web-0f1e", "managed LoadBalancer securityGroup by ALB Ingress Controller", "vpc-1"),
              SecurityGroup(NODE_SG, "eks-nodes", "nodes", "vpc-1"))
    return Topology(cluster=CLUSTER, region="ap-northeast-1", load_balancers=tuple(lbs), target_groups=(tg,),
                    security_groups=groups, known_lb_arns=frozenset(lb.arn for lb in lbs))


def observe(rules, topo: Topology | None = None, failed: bool = False, lb_groups=None,
            new_lbs=frozenset()) -> tuple[Report, Observation]:
    """Evaluates the topology against these rules, as one cycle would."""
    topo = topo or topology()
    groups = {g for tg in topo.target_groups for t in tg.targets or () for g in t.security_groups or ()}
    lb_groups_now = {g for lb in topo.load_balancers for g in (lb_groups if lb_groups is not None else lb.security_groups)}
    observation = Observation(
        rules=tuple(rules),
        read_groups=frozenset(groups | lb_groups_now),
        # every ALB SG with the default egress rule, as AWS creates it
        egress_rules=tuple(Rule(g, "-1", None, None, PeerKind.CIDR, "0.0.0.0/0", rule_id=f"sgr-out-{g}", egress=True)
                           for g in sorted(lb_groups_now)),
        lb_security_groups=tuple((lb.arn, tuple(lb_groups if lb_groups is not None else lb.security_groups))
                                 for lb in topo.load_balancers),
        live_lb_arns=frozenset(lb.arn for lb in topo.load_balancers),
        new_lb_arns=frozenset(new_lbs),
        failures=(ReadFailure("ec2", "DescribeSubnets", "RequestLimitExceeded", "Rate exceeded"),) if failed else (),
    )
    return evaluate(topo, observation), observation


def with_description(rule: Rule, description: str, rule_id: str) -> Rule:
    return replace(rule, description=description, rule_id=rule_id)
