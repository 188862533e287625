"""The only AWS writes: put back exactly one lost rule, and revoke a rule the monitor created.

Results are values, never exceptions. Throttling is retried by botocore's standard retry mode
(session.py); anything still failing is returned so the policy backs off instead of retrying in a
storm (EC2 authorize/revoke share a small per-account bucket with the controllers: docs/controllers.md).
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from botocore.parsers import ResponseParserError

from monitor.aws.calls import unparsable
from monitor.aws.rules import to_rule
from monitor.aws.session import AwsClients
from monitor.core import ownership
from monitor.core.memory import RuleTuple
from monitor.core.model import PeerKind
from monitor.core.policy import CLEANUP, RESTORE, REVOKE, Decision, WriteResult

DUPLICATE_CODE = "InvalidPermission.Duplicate"
# DescribeSecurityGroupRules answers this for an unknown id (moto: InvalidPermission.NotFound).
_GONE_CODES = ("InvalidSecurityGroupRuleId.NotFound", "InvalidPermission.NotFound", "InvalidGroup.NotFound")


def ip_permission(rule: RuleTuple, description: str) -> dict[str, Any]:
    """The IpPermissions entry for exactly this tuple, nothing wider."""
    permission: dict[str, Any] = {"IpProtocol": rule.protocol}
    if rule.protocol != "-1":
        permission["FromPort"] = -1 if rule.from_port is None else rule.from_port
        permission["ToPort"] = -1 if rule.to_port is None else rule.to_port
    peer = {
        PeerKind.SECURITY_GROUP.value: ("UserIdGroupPairs", "GroupId"),
        PeerKind.CIDR.value: ("IpRanges", "CidrIp"),
        PeerKind.CIDR6.value: ("Ipv6Ranges", "CidrIpv6"),
        PeerKind.PREFIX_LIST.value: ("PrefixListIds", "PrefixListId"),
    }[rule.peer_kind]
    permission[peer[0]] = [{peer[1]: rule.peer, "Description": description}]
    return permission


def authorize(clients: AwsClients, decision: Decision) -> WriteResult:
    """AuthorizeSecurityGroupIngress of the decision's tuple, with our description and rule tags."""
    if decision.kind != RESTORE or decision.action != RESTORE:
        raise ValueError(f"not a restore to carry out: {decision.kind}/{decision.action}")
    if not ownership.is_ours_tags(decision.tags) or not decision.description:
        raise ValueError("a restore must carry the monitor's description and owner tag")
    try:
        answer = clients.ec2.authorize_security_group_ingress(
            GroupId=decision.rule.group_id,
            IpPermissions=[ip_permission(decision.rule, decision.description)],
            TagSpecifications=[{"ResourceType": "security-group-rule",
                                "Tags": [{"Key": k, "Value": v} for k, v in decision.tags]}],
        )
    except ClientError as exc:
        code, message = _error(exc)
        if code == DUPLICATE_CODE:
            return WriteResult("duplicate", code=code, message=message)
        return WriteResult("failed", code=code, message=message)
    except BotoCoreError as exc:
        return WriteResult("failed", code=type(exc).__name__, message=str(exc))
    except ResponseParserError as exc:  # the rule may have been made: the next cycle's read says
        return WriteResult("failed", code=type(exc).__name__, message=unparsable(exc))
    created = answer.get("SecurityGroupRules") or [{}]
    return WriteResult("restored", rule_id=created[0].get("SecurityGroupRuleId"))


def revoke_own(clients: AwsClients, decision: Decision, cluster: str) -> WriteResult:
    """Revokes the decision's rule by its id, after reading it again: only if it still carries our
    owner tag for this cluster and is still the same tuple. Never revokes by IpPermissions."""
    if decision.kind != CLEANUP or decision.action != REVOKE or not decision.rule_id:
        raise ValueError(f"not a clean-up to carry out: {decision.kind}/{decision.action}")
    answer, failure = _by_id(lambda: clients.ec2.describe_security_group_rules(SecurityGroupRuleIds=[decision.rule_id]),
                             decision.rule_id)
    if failure is not None:
        return failure
    found = [to_rule(raw) for raw in answer.get("SecurityGroupRules", ())]
    # Only an inbound rule: the monitor never creates (so never revokes) an outbound one.
    current = next((r for r in found if r is not None and not r.egress and r.rule_id == decision.rule_id), None)
    if current is None:
        return WriteResult("gone", rule_id=decision.rule_id)
    if not ownership.is_ours(current, cluster):
        return WriteResult("refused", code="NotOurs", rule_id=decision.rule_id,
                           message=f"rule carries no {ownership.OWNER_TAG}={cluster} tag; not revoking it")
    if RuleTuple.of(current) != decision.rule:
        return WriteResult("refused", code="RuleChanged", rule_id=decision.rule_id,
                           message=f"rule is now {RuleTuple.of(current).text()}; not revoking it")
    _, failure = _by_id(lambda: clients.ec2.revoke_security_group_ingress(
        GroupId=current.group_id, SecurityGroupRuleIds=[decision.rule_id]), decision.rule_id)
    return failure or WriteResult("cleaned_up", rule_id=decision.rule_id)


def _by_id(call, rule_id: str) -> tuple[Any, WriteResult | None]:
    """One call about a rule id: (answer, None), or (None, a `gone` or `failed` result)."""
    try:
        return call(), None
    except ClientError as exc:
        code, message = _error(exc)
        return None, WriteResult("gone" if code in _GONE_CODES else "failed", code=code, message=message,
                                 rule_id=rule_id)
    except BotoCoreError as exc:
        return None, WriteResult("failed", code=type(exc).__name__, message=str(exc), rule_id=rule_id)
    except ResponseParserError as exc:  # an answer cut short: what it said is unknown
        return None, WriteResult("failed", code=type(exc).__name__, message=unparsable(exc), rule_id=rule_id)


def _error(exc: ClientError) -> tuple[str, str]:
    error = exc.response.get("Error", {})
    return str(error.get("Code", "Unknown")), str(error.get("Message", ""))
