"""The shipped IAM policies allow every AWS operation the code calls, the read-only one allows no
write, and every action, resource type and condition key they use is one IAM really evaluates."""

from __future__ import annotations

import ast
import fnmatch
import json
import re
from pathlib import Path

import pytest
from policy_sentry.querying.actions import get_action_data

from tests.support.aws_calls import ROOT, ScanError, scan_code, scan_source

POLICIES = ROOT / "deploy" / "iam"
READ_ONLY = POLICIES / "read-only.json"
REMEDIATION = POLICIES / "remediation.json"
OWNER_TAG = "alb-sg-monitor/owner"
# Operations IAM never denies: no policy needs to name them.
PERMISSIONLESS = {"sts:GetCallerIdentity"}
# Consuming the monitor's own events queue (--events-queue): in the read-only policy, scoped to the
# monitor's queues, although IAM classes DeleteMessage as a write (it writes nothing the monitor watches).
OWN_QUEUE_ACTIONS = {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"}
OWN_QUEUE_RESOURCE = "arn:aws:sqs:*:*:alb-sg-monitor-*"


def in_read_only_policy(call) -> bool:
    """Reads, and consuming the monitor's own events queue."""
    return call.is_read or call.action in OWN_QUEUE_ACTIONS


# --- a small evaluator of our own policies ------------------------------------------------------

def load(path: Path) -> list[dict]:
    statements = json.loads(path.read_text())["Statement"]
    return statements if isinstance(statements, list) else [statements]


def as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def allows(statements: list[dict], action: str) -> bool:
    for statement in statements:
        assert "NotAction" not in statement and "NotResource" not in statement, "keep policies explicit"
        if statement["Effect"] == "Allow" and any(
                fnmatch.fnmatchcase(action.lower(), pattern.lower()) for pattern in as_list(statement["Action"])):
            return True
    return False


# --- tests ----------------------------------------------------------------------------------------

SCANNER_CASES = {
    "client attribute": ("clients.ec2.describe_security_groups(Filters=[])", {"ec2:DescribeSecurityGroups"}),
    "private attribute": ("self._elbv2.describe_target_health(TargetGroupArn=a)",
                          {"elasticloadbalancing:DescribeTargetHealth"}),
    "paginator": ('clients.iam.get_paginator("list_attached_role_policies")', {"iam:ListAttachedRolePolicies"}),
    "helper with a method name": ('paginate(d.clients.elbv2, "describe_load_balancers", "LoadBalancers", 400)',
                                  {"elasticloadbalancing:DescribeLoadBalancers"}),
    "alias": ("ec2 = clients.ec2\nec2.authorize_security_group_ingress(GroupId=g)",
              {"ec2:AuthorizeSecurityGroupIngress"}),
    "client variable with a suffix": ("def f(iam_client):\n    return iam_client.get_role_policy(RoleName=r, PolicyName=p)",
                                      {"iam:GetRolePolicy"}),
    "parameter named after the service": (
        "def revoke(ec2, ids):\n    return ec2.revoke_security_group_ingress(SecurityGroupRuleIds=ids)",
        {"ec2:RevokeSecurityGroupIngress"}),
    "boto3.client": ('iam = boto3.client("iam")\niam.get_role(RoleName=n)', {"iam:GetRole"}),
    "session.client(sts)": ('sts = session.client("sts")\nsts.get_caller_identity()', {"sts:GetCallerIdentity"}),
    "operation label": ('attempt(failures, "iam", "GetPolicyVersion", fn)', {"iam:GetPolicyVersion"}),
    "unambiguous method on an unknown receiver": ("client.describe_target_groups()",
                                                  {"elasticloadbalancing:DescribeTargetGroups"}),
    "not boto3": ("items.append(x)\nlog.info('describe_tags')\nfoo.describe()", set()),
}


@pytest.mark.parametrize("case", SCANNER_CASES)
def test_scanner_recognises_how_boto3_calls_are_written(case):
    source, expected = SCANNER_CASES[case]
    assert {c.action for c in scan_source(source)} == expected


def test_scanner_refuses_a_call_it_cannot_attribute():
    with pytest.raises(ScanError, match="describe_tags"):
        scan_source("client.describe_tags(ResourceArns=arns)")  # ec2 and elbv2 both have it
    with pytest.raises(ScanError, match="not an operation"):
        scan_source("clients.ec2.describe_load_balancers()")


def test_scanner_sees_the_reads_the_monitor_already_does():
    actions = {c.action for c in scan_code()}
    assert {"ec2:DescribeSecurityGroupRules", "ec2:DescribeInstances", "ec2:GetManagedPrefixListEntries",
            "elasticloadbalancing:DescribeLoadBalancers", "elasticloadbalancing:DescribeTags",
            "elasticloadbalancing:DescribeTargetHealth", "sqs:ReceiveMessage", "sqs:DeleteMessage",
            "sqs:GetQueueAttributes", "cloudtrail:LookupEvents"} <= actions


def test_every_read_the_code_does_is_in_the_read_only_policy():
    missing = sorted({f"{c.action} ({c.where})" for c in scan_code()
                      if in_read_only_policy(c) and c.action not in PERMISSIONLESS and not allows(load(READ_ONLY), c.action)})
    assert not missing, "add to deploy/iam/read-only.json: " + ", ".join(missing)


def test_every_write_the_code_does_is_in_the_remediation_policy_only():
    writes = {c for c in scan_code() if not in_read_only_policy(c)}
    missing = sorted({f"{c.action} ({c.where})" for c in writes if not allows(load(REMEDIATION), c.action)})
    assert not missing, "add to deploy/iam/remediation.json: " + ", ".join(missing)
    assert not [c.action for c in writes if allows(load(READ_ONLY), c.action)]


def test_read_only_policy_allows_no_write():
    for statement in load(READ_ONLY):
        for action in as_list(statement["Action"]):
            assert "*" not in action and "?" not in action, f"{action}: list actions one by one"
            prefix, name = action.split(":")
            levels = {row["access_level"] for row in get_action_data(prefix, name).get(prefix, ())}
            if action in OWN_QUEUE_ACTIONS:  # only on the monitor's own queues, nothing it watches
                assert as_list(statement["Resource"]) == [OWN_QUEUE_RESOURCE], statement
                assert levels and levels <= {"Read", "Write"}, f"{action} is {levels or 'not an action'}"
                continue
            assert levels and levels <= {"Read", "List"}, f"{action} is {levels or 'not an action'}"


def _resource_type(arn: str) -> tuple[str, str]:
    """('ec2', 'security-group') for arn:aws:ec2:*:*:security-group/* (and for AWS's ${...} formats)."""
    parts = arn.split(":", 5)
    return parts[2], re.split(r"[/:]", parts[5])[0]


def _untyped(arn_format: str) -> bool:
    """A resource ARN format with no type before its name, e.g. an SQS queue's
    arn:${Partition}:sqs:${Region}:${Account}:${QueueName}."""
    return re.fullmatch(r"\$\{[^}]+\}", arn_format.split(":", 5)[5]) is not None


def _key_allowed(key: str, allowed: list[str]) -> bool:
    return any(fnmatch.fnmatchcase(key, re.sub(r"\$\{[^}]+\}", "*", pattern)) for pattern in allowed)


@pytest.mark.parametrize("policy", [READ_ONLY, REMEDIATION], ids=lambda p: p.name)
def test_policy_uses_only_real_actions_resource_types_and_condition_keys(policy):
    """A resource type an action does not have grants nothing, and a condition key IAM does not
    evaluate for it never matches: both fail silently in AWS, so they fail here."""
    for statement in load(policy):
        resources = as_list(statement["Resource"])
        keys = [key for block in statement.get("Condition", {}).values() for key in block]
        for action in as_list(statement["Action"]):
            prefix, name = action.split(":")
            rows = get_action_data(prefix, name).get(prefix)
            assert rows, f"{action} is not an IAM action"
            for resource in resources:
                matching = rows if resource == "*" else [
                    r for r in rows if r["resource_arn_format"] != "*"
                    and (_resource_type(r["resource_arn_format"]) == _resource_type(resource)
                         or _untyped(r["resource_arn_format"])
                         and _resource_type(r["resource_arn_format"])[0] == _resource_type(resource)[0])]
                assert matching, f"{action} has no resource type {resource}: the statement grants nothing"
                for key in keys:
                    assert all(_key_allowed(key, r["condition_keys"]) for r in matching), \
                        f"{action} on {resource} does not support the condition key {key}"


def test_remediation_writes_are_scoped_to_the_cluster_and_to_rule_creation():
    by_action: dict[str, list[dict]] = {}
    for statement in load(REMEDIATION):
        for action in as_list(statement["Action"]):
            by_action.setdefault(action, []).append(statement)
    assert set(by_action) == {"ec2:AuthorizeSecurityGroupIngress", "ec2:RevokeSecurityGroupIngress", "ec2:CreateTags"}
    cluster_tag = "aws:ResourceTag/kubernetes.io/cluster/CLUSTER_NAME"
    for statement in by_action["ec2:AuthorizeSecurityGroupIngress"] + by_action["ec2:RevokeSecurityGroupIngress"]:
        assert statement["Resource"] != "*"
        if _resource_type(statement["Resource"])[1] == "security-group":
            assert statement["Condition"] == {"Null": {cluster_tag: "false"}}
        else:  # the new rule itself: only with our owner tag
            assert statement["Condition"] == {"StringEquals": {f"aws:RequestTag/{OWNER_TAG}": "CLUSTER_NAME"}}
    (tagging,) = by_action["ec2:CreateTags"]
    assert tagging["Resource"].endswith(":security-group-rule/*")
    assert tagging["Condition"]["StringEquals"]["ec2:CreateAction"] == "AuthorizeSecurityGroupIngress"


def test_cluster_name_substitution_gives_a_valid_policy():
    text = REMEDIATION.read_text().replace("CLUSTER_NAME", "prod-eks")
    policy = json.loads(text)
    assert "CLUSTER_NAME" not in text
    assert "aws:ResourceTag/kubernetes.io/cluster/prod-eks" in text
    assert len(json.dumps(policy, separators=(",", ":"))) <= 6144, "managed policy size limit"


def test_the_writer_tags_restored_rules_with_the_owner_tag_the_policy_requires():
    if not any(c.operation == "AuthorizeSecurityGroupIngress" for c in scan_code()):
        pytest.skip("no code authorizes rules yet")
    constants = {node.value for path in (ROOT / "monitor").rglob("*.py")
                 for node in ast.walk(ast.parse(path.read_text()))
                 if isinstance(node, ast.Constant) and isinstance(node.value, str)}
    assert OWNER_TAG in constants, (
        f"remediation.json only lets the monitor create rules tagged {OWNER_TAG}=<cluster>; the code never uses that key")
