"""Pure migration findings on literal values: v2's GC simulation, controllers, versions, IAM policy shapes."""

from __future__ import annotations

import pytest

from monitor.core import iam_policy
from monitor.core.cluster_model import (
    ClusterState,
    ControllerDeployment,
    Ingress,
    KubeEvent,
    NetworkingPeer,
    NetworkingPort,
    NetworkingRule,
    TargetGroupBinding,
)
from monitor.core.ingress_join import join_ingresses
from monitor.core.migration import (
    controllers_both_running,
    migration_findings,
    migration_policy,
    unclaimed_shared_labels,
    v1_too_old,
)
from monitor.core.model import LoadBalancer, PeerKind, Rule, SecurityGroup, Target, TargetGroup, Topology
from monitor.demo import kube_objects as k

LABEL = "elbv2.k8s.aws/targetGroupBinding=shared"
NODE_SG, BACKEND_SG, V1_SG, USER_SG = "sg-0node", "sg-0backend", "sg-0v1managed", "sg-0usermade"
TG_ARN = "arn:aws:elasticloadbalancing:ap-northeast-1:111122223333:targetgroup/k8s-shop-web/0123"
LB_ARN = "arn:aws:elasticloadbalancing:ap-northeast-1:111122223333:loadbalancer/app/a1b2c3d4-shop-web-1a2b/0abc"
V1_TAGS = (("ingress.k8s.aws/cluster", "prod-eks"), ("ingress.k8s.aws/resource", "LoadBalancer"),
           ("ingress.k8s.aws/stack", "shop/web"), ("kubernetes.io/cluster/prod-eks", "owned"),
           ("kubernetes.io/ingress-name", "web"), ("kubernetes.io/namespace", "shop"))


def topology(adoption="v1", dns=""):
    groups = (
        SecurityGroup(NODE_SG, "eks-cluster-sg-prod-eks-1", "EKS cluster SG", "vpc-1",
                      (("kubernetes.io/cluster/prod-eks", "owned"),)),
        SecurityGroup(V1_SG, "a1b2c3d4-shop-web-1a2b", "managed LoadBalancer securityGroup by ALB Ingress Controller",
                      "vpc-1", (("ingress.k8s.aws/cluster", "prod-eks"), ("kubernetes.io/cluster-name", "prod-eks"),
                                ("ingress.k8s.aws/resource", "ManagedLBSecurityGroup"))),
        SecurityGroup(BACKEND_SG, "k8s-traffic-prod-eks-0a1b2c3d4e", "[k8s] Shared Backend SecurityGroup for LoadBalancer",
                      "vpc-1", (("elbv2.k8s.aws/cluster", "prod-eks"), ("elbv2.k8s.aws/resource", "backend-sg"))),
        SecurityGroup(USER_SG, "shop-alb", "made by the shop team", "vpc-1"),
    )
    lb = LoadBalancer(LB_ARN, "a1b2c3d4-shop-web-1a2b", "application", "vpc-1", (V1_SG,), ("10.0.0.0/24",),
                      tags=V1_TAGS, adoption=adoption, dns_name=dns)
    tg = TargetGroup(TG_ARN, "k8s-shop-web", "instance", "HTTP", 30080, "vpc-1", "traffic-port", (LB_ARN,),
                     (Target("i-0a", 30080, "eni-0a", (NODE_SG,)), Target("i-0b", 30080, "eni-0b", (NODE_SG,))))
    return Topology("prod-eks", "ap-northeast-1", (lb,), (tg,), groups)


def rule(rule_id, peer, from_port=0, to_port=65535, description=LABEL, kind=PeerKind.SECURITY_GROUP, group=NODE_SG):
    return Rule(group, "tcp", from_port, to_port, kind, peer, rule_id=rule_id, description=description)


def tgb(name="web", sources=(BACKEND_SG,), ports=(30080,), cidrs=(), tg=TG_ARN, networking=True):
    peers = tuple(NetworkingPeer(security_group=s) for s in sources) + tuple(NetworkingPeer(cidr=c) for c in cidrs)
    rules = (NetworkingRule(peers, tuple(NetworkingPort("TCP", p) for p in ports)),) if networking else None
    return TargetGroupBinding("shop", name, tg, "instance", rules)


def controller(generation, version, running=True, role=None, args=()):
    image = {"v1": "docker.io/amazon/aws-alb-ingress-controller", "v2": "public.ecr.aws/eks/aws-load-balancer-controller"}
    return ControllerDeployment("kube-system", f"ctl-{generation}", generation, f"{image[generation]}:{version}",
                                1 if running else 0, 1 if running else 0, args, role_arn=role)


def codes(findings):
    return [(f.code, f.rule) for f in findings]


# -- UNCLAIMED_SHARED_LABEL: v2's garbage collection ----------------------------------------------
def test_merged_min_max_rule_is_wanted_and_others_are_revoked():
    rules = (
        rule("sgr-merged", BACKEND_SG, 30080, 31000),  # exactly what v2 wants: min-max of both ports
        rule("sgr-narrow", BACKEND_SG, 30080, 30080),  # a narrower one from the same source: replaced
        rule("sgr-cidr", "10.0.0.0/16", 30080, 30080, kind=PeerKind.CIDR),
    )
    state = ClusterState(bindings=(tgb(ports=(30080, 31000), cidrs=("10.0.0.0/16",)),))
    assert codes(unclaimed_shared_labels(topology(), rules, state)) == [("UNCLAIMED_SHARED_LABEL", "sgr-narrow")]


def test_description_is_not_part_of_identity():
    rules = (rule("sgr-ours", BACKEND_SG, 30080, 30080, description="restored by alb-sg-monitor"),
             rule("sgr-extra", BACKEND_SG, 1, 2, description="team note, " + LABEL))
    state = ClusterState(bindings=(tgb(),))
    assert codes(unclaimed_shared_labels(topology(), rules, state)) == [("UNCLAIMED_SHARED_LABEL", "sgr-extra")]


def test_unrestricted_mode_keeps_one_rule_per_port():
    rules = (rule("sgr-a", BACKEND_SG, 30080, 30080), rule("sgr-b", BACKEND_SG, 31000, 31000),
             rule("sgr-range", BACKEND_SG, 30080, 31000))
    v2 = controller("v2", "v2.7.1", args=("--disable-restricted-sg-rules",))
    state = ClusterState(bindings=(tgb(ports=(30080, 31000)),), controllers=(v2,))
    assert codes(unclaimed_shared_labels(topology(), rules, state)) == [("UNCLAIMED_SHARED_LABEL", "sgr-range")]


def test_no_networking_at_all_revokes_every_labelled_rule():
    rules = (rule("sgr-v1", V1_SG), rule("sgr-user", USER_SG), rule("sgr-plain", USER_SG, description="office"))
    state = ClusterState(bindings=(tgb(networking=False),))
    found = unclaimed_shared_labels(topology(), rules, state)
    assert codes(found) == [("UNCLAIMED_SHARED_LABEL", "sgr-v1"), ("UNCLAIMED_SHARED_LABEL", "sgr-user")]
    assert "no TargetGroupBinding has spec.networking" in found[0].message
    assert "aws ec2 modify-security-group-rules --group-id sg-0node" in found[1].message
    assert "SecurityGroupRuleId=sgr-user" in found[1].message


def test_unknown_bindings_or_unresolvable_targets_claim_nothing():
    rules = (rule("sgr-x", BACKEND_SG, 1, 2),)
    assert unclaimed_shared_labels(topology(), rules, ClusterState(bindings=None)) == []
    elsewhere = tgb(tg="arn:aws:elasticloadbalancing:ap-northeast-1:111122223333:targetgroup/other/1")
    assert unclaimed_shared_labels(topology(), rules, ClusterState(bindings=(elsewhere,))) == []


def test_named_port_makes_that_source_uncertain():
    rules = (rule("sgr-x", BACKEND_SG, 8080, 8080),)
    named = TargetGroupBinding("shop", "web", TG_ARN, "ip", (NetworkingRule(
        (NetworkingPeer(security_group=BACKEND_SG),), (NetworkingPort("TCP", "http"),)),))
    assert unclaimed_shared_labels(topology(), rules, ClusterState(bindings=(named,))) == []


def test_pitfall_2_guide_relabel_of_every_0_65535_rule():
    """The migration guide's jq pipeline labels every tcp 0-65535 rule: from the v1-managed SG (meant) and
    from the user-made SG passed with the security-groups annotation (a traffic cut once v2 runs its GC)."""
    before = (rule("sgr-v1", V1_SG, description=""), rule("sgr-user", USER_SG, description=""),
              rule("sgr-app", USER_SG, 8080, 8080, description=""))
    relabelled = tuple(Rule(r.group_id, r.protocol, r.from_port, r.to_port, r.peer_kind, r.peer, r.rule_id,
                            LABEL if (r.from_port, r.to_port) == (0, 65535) else r.description) for r in before)
    state = ClusterState(bindings=(tgb(),))  # v2 adopted the ALB: traffic now comes from the backend SG
    found = unclaimed_shared_labels(topology(), relabelled, state)
    assert codes(found) == [("UNCLAIMED_SHARED_LABEL", "sgr-v1"), ("UNCLAIMED_SHARED_LABEL", "sgr-user")]
    assert unclaimed_shared_labels(topology(), before, state) == []


# -- controllers ------------------------------------------------------------------------------------
def test_both_controllers_running_is_critical_only_when_both_have_ready_replicas():
    state = ClusterState(controllers=(controller("v1", "v1.1.9"), controller("v2", "v2.7.1")))
    finding, = controllers_both_running(state)
    assert finding.severity.value == "critical"
    assert "kubectl -n kube-system scale deployment/ctl-v1 --replicas=0" in finding.message
    stopped = ClusterState(controllers=(controller("v1", "v1.1.9", running=False), controller("v2", "v2.7.1")))
    assert controllers_both_running(stopped) == []


@pytest.mark.parametrize("image_tag, too_old", [
    ("v1.1.2", True), ("1.1.2", True), ("v1.0.1", True), ("v1.1.3", False), ("1.1.9", False),
    ("v1.1.9-eks", False), ("latest", False),
])
def test_v1_version_parsing(image_tag, too_old):
    state = ClusterState(controllers=(controller("v1", image_tag),))
    assert bool(v1_too_old(state)) is too_old


def test_v1_version_with_registry_port_and_digest():
    c = ControllerDeployment("kube-system", "alb", "v1", "registry.local:5000/amazon/aws-alb-ingress-controller:v1.1.2@sha256:ab",
                             1, 1, container="alb-ingress-controller")
    assert c.version == "v1.1.2"
    finding, = v1_too_old(ClusterState(controllers=(c,)))
    assert "set image deployment/alb alb-ingress-controller=docker.io/amazon/aws-alb-ingress-controller:v1.1.9" in finding.message


# -- MIGRATION_POLICY_MISSING: policy shapes ------------------------------------------------------
ROLE = "arn:aws:iam::111122223333:role/lbc"
ADDITIONAL = k.V1_TO_V2_ADDITIONAL_POLICY
BASE = k.V2_BASE_POLICY  # only tags what already carries elbv2.k8s.aws/cluster


def policies(*documents):
    return iam_policy.RolePolicies(ROLE, tuple(
        iam_policy.PolicyDocument(f"p{i}", "inline", None, d) for i, d in enumerate(documents)))


def v2_state(events=()):
    return ClusterState(controllers=(controller("v2", "v2.7.1", role=ROLE),), events=tuple(events))


@pytest.mark.parametrize("documents, code", [
    ((BASE,), "MIGRATION_POLICY_MISSING"),
    ((BASE, ADDITIONAL), None),
    (({"Statement": {"Effect": "Allow", "Action": "*", "Resource": "*"}},), None),
    (({"Statement": [{"Effect": "Allow", "Action": ["ec2:*Tags", "elasticloadbalancing:*"], "Resource": "*"}]},), None),
    (({"Statement": [{"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"}]},), None),
    (({"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"},
                     {"Effect": "Deny", "Action": "elasticloadbalancing:DeleteTargetGroup", "Resource": "*"}]},),
     "MIGRATION_POLICY_MISSING"),
    (({"Statement": [{"Effect": "Allow", "Action": ["ec2:*Tags", "elasticloadbalancing:*"], "Resource": "*",
                      "Condition": {"StringEquals": {"aws:ResourceTag/ingress.k8s.aws/cluster": "prod-eks"}}}]},), None),
    (({"Statement": [{"Effect": "Allow", "Action": ["ec2:*Tags", "elasticloadbalancing:*"], "Resource": "*",
                      "Condition": {"StringEquals": {"aws:ResourceTag/ingress.k8s.aws/cluster": "staging"}}}]},),
     "MIGRATION_POLICY_MISSING"),
    (({"Statement": [{"Effect": "Allow", "Action": ["ec2:*Tags", "elasticloadbalancing:*"], "Resource": "*",
                      "Condition": {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}}]},), "MIGRATION_POLICY_UNVERIFIED"),
    ((ADDITIONAL,), "MIGRATION_POLICY_UNVERIFIED_OR_OK"),
])
def test_policy_shapes(documents, code):
    found = migration_policy(topology(), v2_state(), policies(*documents))
    if code == "MIGRATION_POLICY_UNVERIFIED_OR_OK":
        assert found == []  # the additional policy alone covers the migration actions
        return
    assert [f.code for f in found] == ([code] if code else [])


def test_missing_policy_names_actions_role_and_fix_and_cites_events():
    denied = KubeEvent("shop", "Ingress", "web", "FailedDeployModel",
                       "Failed deploy model due to UnauthorizedOperation: You are not authorized to perform this operation.")
    finding, = migration_policy(topology(), v2_state([denied]), policies(BASE))
    assert finding.severity.value == "critical"
    assert "ec2:CreateTags on security-group" in finding.message
    assert "elasticloadbalancing:AddTags on loadbalancer" in finding.message
    assert "aws iam put-role-policy --role-name lbc" in finding.message
    assert "iam_policy_v1_to_v2_additional.json" in finding.message
    assert "1 FailedDeployModel event(s)" in finding.message and "shop/web" in finding.message


def test_nothing_unadopted_means_nothing_to_check():
    assert migration_policy(topology(adoption="adopted"), v2_state(), policies(BASE)) == []


def test_unknown_role_is_never_ok():
    no_irsa = ClusterState(controllers=(controller("v2", "v2.7.1"),))
    finding, = migration_policy(topology(), no_irsa, None)
    assert finding.code == "MIGRATION_POLICY_UNVERIFIED" and "eks.amazonaws.com/role-arn" in finding.message
    finding, = migration_policy(topology(), ClusterState(controllers=()), None)
    assert "no v2 controller is installed yet" in finding.message
    finding, = migration_policy(topology(), v2_state(), None)
    assert "could not be read" in finding.message
    denied = KubeEvent("shop", "Ingress", "web", "FailedDeployModel", "AccessDenied: not authorized")
    finding, = migration_policy(topology(), ClusterState(controllers=(), events=(denied,)), None)
    assert finding.code == "MIGRATION_POLICY_MISSING" and finding.severity.value == "critical"


def test_findings_are_ordered_by_what_cuts_traffic_first():
    state = ClusterState(controllers=(controller("v1", "v1.1.2"), controller("v2", "v2.7.1", role=ROLE)),
                         bindings=(tgb(networking=False),))
    found = migration_findings(topology(), (rule("sgr-v1", V1_SG),), state, policies(BASE))
    assert [f.code for f in found] == ["CONTROLLERS_BOTH_RUNNING", "MIGRATION_POLICY_MISSING",
                                       "V1_CONTROLLER_TOO_OLD", "UNCLAIMED_SHARED_LABEL"]


# -- joining Ingress names -------------------------------------------------------------------------
def test_join_by_hostname_and_by_group_stack():
    dns = "a1b2c3d4-shop-web-1a2b-123.ap-northeast-1.elb.amazonaws.com"
    bare = topology(dns=dns)
    lb = bare.load_balancers[0]
    untagged = Topology(bare.cluster, bare.region, (LoadBalancer(lb.arn, lb.name, lb.lb_type, lb.vpc_id,
                        lb.security_groups, lb.subnet_cidrs, tags=(("ingress.k8s.aws/stack", "shop"),),
                        adoption="v2", dns_name=dns),), bare.target_groups, bare.security_groups)
    by_host = ClusterState(ingresses=(Ingress("shop", "web", "alb", hostnames=(dns.upper(),)),))
    joined = join_ingresses(untagged, by_host).load_balancers[0]
    assert (joined.ingress_namespace, joined.ingress) == ("shop", "web")
    group = ClusterState(ingresses=(
        Ingress("shop", "b", "alb", (("alb.ingress.kubernetes.io/group.name", "shop"),)),
        Ingress("blog", "a", "alb", (("alb.ingress.kubernetes.io/group.name", "shop"),)),
    ))
    joined = join_ingresses(untagged, group).load_balancers[0]
    assert (joined.ingress_namespace, joined.ingress) == ("", "blog/a,shop/b")
    from dataclasses import replace
    named = replace(untagged, load_balancers=(replace(untagged.load_balancers[0], ingress_namespace="shop", ingress="web"),))
    kept = join_ingresses(named, group).load_balancers[0]
    assert (kept.ingress_namespace, kept.ingress) == ("shop", "web")  # names from AWS tags win
