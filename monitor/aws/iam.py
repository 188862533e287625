"""Reads the policy documents of an IAM role (inline and attached managed) for the migration check."""

from __future__ import annotations

import json
from urllib.parse import unquote

from monitor.aws.calls import attempt, contradiction, paginate
from monitor.aws.session import AwsClients
from monitor.core.iam_policy import MIGRATION_POLICY_NAME, PolicyDocument, RolePolicies, role_name_from_arn
from monitor.core.model import ReadFailure


def read_role_policies(clients: AwsClients, role_arn: str) -> tuple[RolePolicies | None, tuple[ReadFailure, ...]]:
    """Every policy document of the role; None (with the failures) when any of them could not be read,
    because a partial set cannot prove that an action is missing or allowed."""
    failures: list[ReadFailure] = []
    name = role_name_from_arn(role_arn)
    documents: list[PolicyDocument] = []
    inline = attempt(failures, "iam", "ListRolePolicies",
                     lambda: paginate(clients.iam, "list_role_policies", "PolicyNames", None, RoleName=name), role_arn)
    if inline == [] and _has_inline(clients, name, MIGRATION_POLICY_NAME, failures, role_arn):
        # No inline policy listed, yet the migration policy is there under its documented name:
        # the listing cannot be believed, and a role read without it would look short of it.
        contradiction(failures, "iam", "ListRolePolicies",
                      f"no inline policy listed, yet GetRolePolicy reads {MIGRATION_POLICY_NAME}", role_arn)
    for policy_name in inline or ():
        answer = attempt(failures, "iam", "GetRolePolicy",
                         lambda: clients.iam.get_role_policy(RoleName=name, PolicyName=policy_name),
                         f"{role_arn} inline {policy_name}")
        if answer is not None:
            documents.append(PolicyDocument(name=policy_name, kind="inline", arn=None,
                                            document=_decode(answer["PolicyDocument"])))
    attached = attempt(failures, "iam", "ListAttachedRolePolicies",
                       lambda: paginate(clients.iam, "list_attached_role_policies", "AttachedPolicies", None,
                                        RoleName=name),
                       role_arn)
    for policy in attached or ():
        arn = policy["PolicyArn"]
        meta = attempt(failures, "iam", "GetPolicy", lambda: clients.iam.get_policy(PolicyArn=arn), arn)
        if meta is None:
            continue
        version_id = meta["Policy"]["DefaultVersionId"]
        version = attempt(failures, "iam", "GetPolicyVersion",
                          lambda: clients.iam.get_policy_version(PolicyArn=arn, VersionId=version_id), arn)
        if version is not None:
            documents.append(PolicyDocument(name=policy["PolicyName"], kind="managed", arn=arn,
                                            document=_decode(version["PolicyVersion"]["Document"])))
    if failures:
        return None, tuple(failures)
    return RolePolicies(role_arn=role_arn, documents=tuple(documents)), ()


def _has_inline(clients: AwsClients, role: str, policy: str, failures: list[ReadFailure], role_arn: str) -> bool:
    """Whether the role has this inline policy (NoSuchEntity: no); a failed read is recorded."""
    tried: list[ReadFailure] = []
    found = attempt(tried, "iam", "GetRolePolicy",
                    lambda: clients.iam.get_role_policy(RoleName=role, PolicyName=policy), f"{role_arn} inline {policy}")
    if found is None and tried[0].code != "NoSuchEntity":
        failures.extend(tried)
    return found is not None


def _decode(document) -> dict:
    """IAM returns documents URL-encoded (RFC 3986); botocore usually decodes them already."""
    if isinstance(document, dict):
        return document
    return json.loads(unquote(document))
