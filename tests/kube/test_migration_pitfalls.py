"""The seed's two outages, caught before they cut traffic: AWS in moto and Kubernetes in kmock, both over HTTP."""

from __future__ import annotations

import json
import socket

import boto3
import pytest
from moto.server import ThreadedMotoServer

from monitor import aws, kube
from monitor.aws.iam import read_role_policies
from monitor.core.evaluate import evaluate
from monitor.core.migration import migration_findings
from monitor.core.model import LoadBalancer, SecurityGroup, Target, TargetGroup, Topology
from monitor.demo import kube_objects as k
from monitor.kube.reader import ClusterReader
from tests.core.test_migration import ADDITIONAL, BASE, LABEL, LB_ARN, TG_ARN, V1_TAGS
from tests.support.kubeapi import KubeApi
from tests.support.stubbed import stubbed

REGION = "ap-northeast-1"
TRUST = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRoleWithWebIdentity",
         "Principal": {"Federated": "arn:aws:iam::123456789012:oidc-provider/oidc.eks.ap-northeast-1.amazonaws.com/id/X"}}]}


@pytest.fixture(scope="module")
def moto_url():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def clients(moto_url, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return aws.connect(REGION)


@pytest.fixture
def kube_api():
    server = KubeApi()
    yield server
    server.close()


def world(groups, node_sg, adoption="v1"):
    lb = LoadBalancer(LB_ARN, "a1b2c3d4-shop-web-1a2b", "application", "vpc-1", (groups["v1"],), ("10.0.0.0/24",),
                      tags=V1_TAGS, adoption=adoption, ingress_namespace="shop", ingress="web")
    tg = TargetGroup(TG_ARN, "k8s-shop-web", "instance", "HTTP", 30080, "vpc-1", "traffic-port", (LB_ARN,),
                     (Target("i-0a", 30080, "eni-0a", (node_sg,)),))
    return Topology("prod-eks", REGION, (lb,), (tg,), ())


def test_pitfall_1_v2_role_without_migration_policy_is_flagged_before_any_rule_is_touched(clients, kube_api):
    iam = boto3.client("iam", region_name=REGION)  # the account set up as its admins would (the monitor's clients only read)
    role = iam.create_role(RoleName="prod-eks-lbc", AssumeRolePolicyDocument=json.dumps(TRUST))["Role"]["Arn"]
    iam.put_role_policy(RoleName="prod-eks-lbc", PolicyName="lbc-base-ec2", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": BASE["Statement"][:1]}))
    managed = iam.create_policy(PolicyName="AWSLoadBalancerControllerIAMPolicy", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": BASE["Statement"][1:]}))["Policy"]["Arn"]
    iam.attach_role_policy(RoleName="prod-eks-lbc", PolicyArn=managed)

    kube_api.add(k.v1_controller(replicas=0, ready=0))  # v1 uninstalled first, as the guide says
    kube_api.add(k.v2_controller())
    kube_api.add(k.service_account("kube-system", "aws-load-balancer-controller", role))
    kube_api.add(k.event("shop", "Ingress", "web", "FailedDeployModel",
                         "Failed deploy model due to UnauthorizedOperation: You are not authorized to perform "
                         "this operation. status code: 403"))
    state = ClusterReader(kube.for_host(kube_api.url)).read()
    v2, = state.controllers_of("v2")
    policies, failures = read_role_policies(clients, v2.role_arn)
    assert failures == () and {d.kind for d in policies.documents} == {"inline", "managed"}

    topology = world({"v1": "sg-0v1"}, "sg-0node")
    finding, = [f for f in migration_findings(topology, (), state, policies) if f.code == "MIGRATION_POLICY_MISSING"]
    assert finding.severity.value == "critical"
    assert "prod-eks-lbc" in finding.message and "iam_policy_v1_to_v2_additional.json" in finding.message
    assert "UnauthorizedOperation" in finding.message
    writes = [op for (_, op) in clients.counter.calls if not op.startswith(("List", "Get", "Describe"))]
    assert writes == []  # the monitor's clients only read (the setup above used clients of its own)

    extra = iam.create_policy(PolicyName="AWSLoadBalancerControllerAdditionalIAMPolicy",
                              PolicyDocument=json.dumps(ADDITIONAL))["Policy"]["Arn"]
    iam.attach_role_policy(RoleName="prod-eks-lbc", PolicyArn=extra)
    policies, _ = read_role_policies(clients, role)
    codes = [f.code for f in migration_findings(topology, (), state, policies)]
    assert "MIGRATION_POLICY_MISSING" not in codes and "MIGRATION_POLICY_UNVERIFIED" in codes  # events still say denied


def test_iam_read_failure_is_unverified_not_ok(clients, kube_api):
    policies, failures = read_role_policies(clients, "arn:aws:iam::123456789012:role/does-not-exist")
    assert policies is None and failures[0].code == "NoSuchEntity"
    kube_api.add(k.v2_controller())
    kube_api.add(k.service_account("kube-system", "aws-load-balancer-controller",
                                   "arn:aws:iam::123456789012:role/does-not-exist"))
    state = ClusterReader(kube.for_host(kube_api.url)).read()
    found = migration_findings(world({"v1": "sg-0v1"}, "sg-0node"), (), state, None, failures)
    assert [f.code for f in found] == ["MIGRATION_POLICY_UNVERIFIED"]
    assert "ListRolePolicies NoSuchEntity" in found[0].message


def _groups(ec2):
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    node = ec2.create_security_group(GroupName="eks-cluster-sg-prod-eks-1", Description="EKS created security group",
                                     VpcId=vpc, TagSpecifications=[{"ResourceType": "security-group", "Tags": [
                                         {"Key": "kubernetes.io/cluster/prod-eks", "Value": "owned"}]}])["GroupId"]
    v1 = ec2.create_security_group(GroupName="a1b2c3d4-shop-web-1a2b", VpcId=vpc,
                                   Description="managed LoadBalancer securityGroup by ALB Ingress Controller",
                                   TagSpecifications=[{"ResourceType": "security-group", "Tags": [
                                       {"Key": "kubernetes.io/cluster-name", "Value": "prod-eks"},
                                       {"Key": "ingress.k8s.aws/resource", "Value": "ManagedLBSecurityGroup"}]}])["GroupId"]
    user = ec2.create_security_group(GroupName="shop-alb", Description="ALB SG made by the shop team", VpcId=vpc)["GroupId"]
    backend = ec2.create_security_group(GroupName="k8s-traffic-prod-eks-0a1b2c3d4e", VpcId=vpc,
                                        Description="[k8s] Shared Backend SecurityGroup for LoadBalancer")["GroupId"]
    for source in (v1, user):  # v1 and the user both add tcp 0-65535 with no description
        ec2.authorize_security_group_ingress(GroupId=node, IpPermissions=[
            {"IpProtocol": "tcp", "FromPort": 0, "ToPort": 65535, "UserIdGroupPairs": [{"GroupId": source}]}])
    ec2.authorize_security_group_ingress(GroupId=node, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 30080, "ToPort": 30080, "UserIdGroupPairs": [{"GroupId": backend}]}])
    return {"node": node, "v1": v1, "user": user, "backend": backend}


def guide_jq_relabel(ec2, group_id):
    """The migration guide's pipeline: every rule with FromPort 0 and ToPort 65535 gets the label on all its
    group pairs. (Real AWS applies it with update-security-group-rule-descriptions-ingress; moto applies
    neither view from that call, so the same edit goes through modify-security-group-rules by rule id.)"""
    sg = ec2.describe_security_groups(GroupIds=[group_id])["SecurityGroups"][0]
    chosen = [p for p in sg["IpPermissions"] if p.get("FromPort") == 0 and p.get("ToPort") == 65535]
    sources = {pair["GroupId"] for p in chosen for pair in p.get("UserIdGroupPairs", ())}
    rules = ec2.describe_security_group_rules(Filters=[{"Name": "group-id", "Values": [group_id]}])["SecurityGroupRules"]
    for r in rules:
        if r["IsEgress"] or r.get("ReferencedGroupInfo", {}).get("GroupId") not in sources:
            continue
        if (r["FromPort"], r["ToPort"]) != (0, 65535):
            continue
        ec2.modify_security_group_rules(GroupId=group_id, SecurityGroupRules=[{
            "SecurityGroupRuleId": r["SecurityGroupRuleId"], "SecurityGroupRule": {
                "IpProtocol": "tcp", "FromPort": 0, "ToPort": 65535,
                "ReferencedGroupId": r["ReferencedGroupInfo"]["GroupId"], "Description": LABEL}}])


@pytest.mark.parametrize("networking", [True, False], ids=["v2-adopted", "every-ingress-uses-the-annotation"])
def test_pitfall_2_guide_labels_the_user_made_sgs_rule(clients, kube_api, networking):
    admin = boto3.client("ec2", region_name=REGION)  # the account set up and relabelled by hand, not by the monitor
    groups = _groups(admin)
    guide_jq_relabel(admin, groups["node"])
    topology = world(groups, groups["node"], adoption="adopted")
    topology = Topology(topology.cluster, topology.region, topology.load_balancers, topology.target_groups,
                        tuple(SecurityGroup(g, n, "", "vpc-1", (("kubernetes.io/cluster/prod-eks", "owned"),))
                              for n, g in [("node", groups["node"])]))
    observation = aws.RuleReader(clients).read(topology)
    labelled = {r.peer: r for r in observation.rules if LABEL in r.description}
    assert set(labelled) == {groups["v1"], groups["user"]}  # the pipeline caught both

    sources = [groups["backend"]] if networking else []
    kube_api.add(k.binding("shop", "k8s-shop-web-0a1b2c3d4e", TG_ARN, "web", sources=sources, ports=[30080]))
    kube_api.add(k.ingress("shop", "admin", "admin", annotations={
        "alb.ingress.kubernetes.io/security-groups": groups["user"]}))
    state = ClusterReader(kube.for_host(kube_api.url)).read()

    report = evaluate(topology, observation)
    foreign, = [f for f in report.findings if f.code == "SHARED_LABEL_ON_FOREIGN_SOURCE"]
    assert foreign.rule == labelled[groups["user"]].rule_id
    unclaimed = [f for f in migration_findings(topology, observation.rules, state) if f.code == "UNCLAIMED_SHARED_LABEL"]
    assert {f.rule for f in unclaimed} == {labelled[groups["v1"]].rule_id, labelled[groups["user"]].rule_id}
    backend_rule = next(r for r in observation.rules if r.peer == groups["backend"])
    assert backend_rule.rule_id not in {f.rule for f in unclaimed}  # unlabelled: v2 never touches it
    user_finding = next(f for f in unclaimed if f.rule == labelled[groups["user"]].rule_id)
    assert f"SecurityGroupRuleId={user_finding.rule}" in user_finding.message


# --- an inline policy listing answered empty (literal answers) -----------------------------------

ROLE = "arn:aws:iam::123456789012:role/aws-load-balancer-controller"


def test_no_inline_policy_listed_while_the_migration_policy_reads_is_unverified_not_missing():
    with stubbed() as (clients, stubs):
        stubs["iam"].add_response("list_role_policies", {"PolicyNames": [], "IsTruncated": False})
        stubs["iam"].add_response("get_role_policy", {
            "RoleName": "aws-load-balancer-controller", "PolicyName": "aws-lbc-v1-to-v2-migration",
            "PolicyDocument": json.dumps(ADDITIONAL)},
            {"RoleName": "aws-load-balancer-controller", "PolicyName": "aws-lbc-v1-to-v2-migration"})
        stubs["iam"].add_response("list_attached_role_policies", {"AttachedPolicies": [], "IsTruncated": False})
        policies, failures = read_role_policies(clients, ROLE)
    assert policies is None  # a role read short of its policies proves nothing is missing
    assert [(f.operation, f.code) for f in failures] == [("ListRolePolicies", "EmptyAnswer")]


def test_a_role_with_no_policy_at_all_is_read_as_such_once_aws_says_so():
    """A role made before its policies were attached: what MIGRATION_POLICY_MISSING is for."""
    with stubbed() as (clients, stubs):
        stubs["iam"].add_response("list_role_policies", {"PolicyNames": [], "IsTruncated": False})
        stubs["iam"].add_client_error("get_role_policy", "NoSuchEntity", "The role policy was not found", 404)
        stubs["iam"].add_response("list_attached_role_policies", {"AttachedPolicies": [], "IsTruncated": False})
        policies, failures = read_role_policies(clients, ROLE)
    assert policies is not None and policies.documents == () and failures == ()
