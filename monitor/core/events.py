"""Reads one EventBridge message carrying a CloudTrail management event into a frozen `ApiEvent`
(who called which API, when, and which security groups, rules, ENIs, load balancers and target
groups the call touched), or into a classified `Rejected` value; it never raises.

Pure: no I/O, no clock. The CloudTrail shapes it reads:
EC2 records its query parameters in lowerCamel with `items` lists (`ipPermissions.items[].groups
.items[].groupId`, `ipRanges.items[].cidrIp`, `groupSet.items[].groupId`), except
ModifySecurityGroupRules, which keeps the PascalCase request under `ModifySecurityGroupRulesRequest`;
the revoke and authorize responses list the rules they removed or created, with their ids, in
`revokedSecurityGroupRuleSet` / `securityGroupRuleSet`. ELB records plain lowerCamel JSON.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any

from monitor.core.memory import RuleTuple

DETAIL_TYPE = "AWS API Call via CloudTrail"
EC2 = "aws.ec2"
ELB = "aws.elasticloadbalancing"
# Every API call that can cut (or restore) an ALB's path to its targets. deploy/events/event-pattern.json
# lists exactly these; tests/core/test_events.py holds the two equal.
EVENT_NAMES: dict[str, tuple[str, ...]] = {
    EC2: ("AuthorizeSecurityGroupEgress", "AuthorizeSecurityGroupIngress", "DeleteSecurityGroup",
          "ModifyNetworkInterfaceAttribute", "ModifySecurityGroupRules", "RevokeSecurityGroupEgress",
          "RevokeSecurityGroupIngress"),
    ELB: ("CreateLoadBalancer", "DeleteLoadBalancer", "DeregisterTargets", "ModifyTargetGroup", "RegisterTargets",
          "SetSecurityGroups"),
}
# EventBridge events are at most 256 KB (the PutEvents limit); anything larger did not come from it.
MAX_MESSAGE_BYTES = 256 * 1024
_PROTOCOL_NUMBERS = {"6": "tcp", "17": "udp", "1": "icmp", "58": "icmpv6"}


class Rejection(str, Enum):
    """Why a message is not an event the monitor acts on (each is counted, and deleted)."""

    OVERSIZED = "oversized"
    MALFORMED = "malformed"  # not JSON, not an object, or a required field missing or mistyped
    NOT_CLOUDTRAIL = "not_cloudtrail"  # another detail-type
    UNSUPPORTED = "unsupported"  # a CloudTrail API call, but not one of EVENT_NAMES
    FAILED_CALL = "failed_call"  # the call failed (errorCode set): it changed nothing


class Effect(str, Enum):
    REVOKE = "revoke"  # removes access or a resource
    GRANT = "grant"  # adds a rule
    CHANGE = "change"  # replaces something: may remove, may add


_EFFECTS = {"RevokeSecurityGroupIngress": Effect.REVOKE, "RevokeSecurityGroupEgress": Effect.REVOKE,
            "DeleteSecurityGroup": Effect.REVOKE, "DeleteLoadBalancer": Effect.REVOKE,
            "DeregisterTargets": Effect.REVOKE, "AuthorizeSecurityGroupIngress": Effect.GRANT,
            "AuthorizeSecurityGroupEgress": Effect.GRANT}


@dataclass(frozen=True)
class TouchedRule:
    """A rule an event removed, created or modified. `rule` is None when only its id is known;
    `direction` is "unknown" for ModifySecurityGroupRules, whose request does not say."""

    direction: str  # "ingress" | "egress" | "unknown"
    rule: RuleTuple | None
    rule_id: str | None = None


@dataclass(frozen=True)
class Principal:
    arn: str  # userIdentity.arn: for an assumed role, the session ARN (…:assumed-role/<role>/<session>)
    role_arn: str | None = None  # sessionContext.sessionIssuer.arn: the role itself, with its path
    type: str = ""


@dataclass(frozen=True)
class ApiEvent:
    event_id: str
    event_name: str
    source: str
    event_time: float  # seconds since the epoch, from detail.eventTime
    principal: Principal
    account: str | None = None  # the envelope's account, else detail.recipientAccountId
    region: str | None = None  # the envelope's region, else detail.awsRegion
    security_groups: tuple[str, ...] = ()
    rules: tuple[TouchedRule, ...] = ()
    network_interfaces: tuple[str, ...] = ()
    load_balancers: tuple[str, ...] = ()
    target_groups: tuple[str, ...] = ()
    targets: tuple[str, ...] = ()  # target ids registered or deregistered

    @property
    def effect(self) -> Effect:
        return _EFFECTS.get(self.event_name, Effect.CHANGE)


@dataclass(frozen=True)
class Rejected:
    reason: Rejection
    detail: str
    event_id: str | None = None
    event_name: str | None = None


def parse_message(body: str | bytes) -> ApiEvent | Rejected:
    """One SQS message body, as an EventBridge rule with an SQS target delivers it."""
    size = len(body.encode() if isinstance(body, str) else body)
    if size > MAX_MESSAGE_BYTES:
        return Rejected(Rejection.OVERSIZED, f"{size} bytes, more than {MAX_MESSAGE_BYTES}")
    try:
        envelope = json.loads(body)
    except (ValueError, RecursionError) as exc:  # RecursionError: absurdly deep nesting
        return Rejected(Rejection.MALFORMED, f"not JSON: {type(exc).__name__}")
    return parse_event(envelope)


def parse_event(envelope: Any) -> ApiEvent | Rejected:
    """One EventBridge event (already decoded)."""
    if not isinstance(envelope, dict):
        return Rejected(Rejection.MALFORMED, "not a JSON object")
    detail_type, source, detail = envelope.get("detail-type"), envelope.get("source"), envelope.get("detail")
    if not isinstance(detail_type, str) or not isinstance(source, str) or not isinstance(detail, dict):
        return Rejected(Rejection.MALFORMED, "detail-type, source or detail missing")
    if detail_type != DETAIL_TYPE:
        return Rejected(Rejection.NOT_CLOUDTRAIL, f"detail-type {detail_type[:80]!r}")
    name, event_id = detail.get("eventName"), detail.get("eventID")
    if not isinstance(name, str) or not isinstance(event_id, str) or not event_id:
        return Rejected(Rejection.MALFORMED, "detail.eventName or detail.eventID missing")
    if name not in EVENT_NAMES.get(source, ()):
        return Rejected(Rejection.UNSUPPORTED, f"{source} {name[:80]}", event_id, name[:80])
    if detail.get("errorCode"):
        return Rejected(Rejection.FAILED_CALL, str(detail["errorCode"])[:120], event_id, name)
    when = _time(detail.get("eventTime"))
    if when is None:
        return Rejected(Rejection.MALFORMED, "detail.eventTime missing or not a time", event_id, name)
    request = _obj(detail.get("requestParameters"))
    response = _obj(detail.get("responseElements"))
    touched = (_ec2_touched if source == EC2 else _elb_touched)(name, request, response)
    return ApiEvent(event_id=event_id, event_name=name, source=source, event_time=when,
                    principal=_principal(detail.get("userIdentity")),
                    # The envelope's, else what CloudTrail itself recorded (an emulator may drop the former).
                    account=_str(envelope.get("account")) or _str(detail.get("recipientAccountId")),
                    region=_str(envelope.get("region")) or _str(detail.get("awsRegion")), **touched)


# --- EC2 ------------------------------------------------------------------------------------------

def _ec2_touched(name: str, request: dict, response: dict) -> dict[str, Any]:
    groups: list[str] = []
    rules: list[TouchedRule] = []
    enis: list[str] = []
    if name in ("AuthorizeSecurityGroupIngress", "AuthorizeSecurityGroupEgress",
                "RevokeSecurityGroupIngress", "RevokeSecurityGroupEgress"):
        direction = "egress" if name.endswith("Egress") else "ingress"
        group = _str(request.get("groupId"))
        groups.append(group or "")
        answered = "securityGroupRuleSet" if name.startswith("Authorize") else "revokedSecurityGroupRuleSet"
        # The response names every rule the call created or removed, with its id: prefer it.
        rules.extend(_response_rule(item, direction) for item in _items(response.get(answered)))
        if group and not rules:  # in a default VPC, unmatched rules are listed there, not refused
            unknown = _permission_rules(group, direction, response.get("unknownIpPermissionSet"))
            rules.extend(r for r in _permission_rules(group, direction, request.get("ipPermissions"))
                         if r not in unknown)
        known_ids = {r.rule_id for r in rules}
        for rule_id in _rule_ids(request.get("securityGroupRuleIds")):
            if rule_id not in known_ids:
                rules.append(TouchedRule(direction, None, rule_id))
    elif name == "ModifySecurityGroupRules":
        modify = _obj(request.get("ModifySecurityGroupRulesRequest"))
        group = _str(modify.get("GroupId"))
        groups.append(group or "")
        entries = modify.get("SecurityGroupRule")
        for entry in entries if isinstance(entries, list) else [entries]:
            entry = _obj(entry)
            spec = _obj(entry.get("SecurityGroupRule"))
            peer = _peer(spec, "CidrIpv4", "CidrIpv6", "PrefixListId", "ReferencedGroupId")
            rule = _tuple(group, spec.get("IpProtocol"), spec.get("FromPort"), spec.get("ToPort"), peer)
            rules.append(TouchedRule("unknown", rule, _str(entry.get("SecurityGroupRuleId"))))
    elif name == "DeleteSecurityGroup":
        groups.append(_str(request.get("groupId")) or _str(response.get("groupId")) or "")
    elif name == "ModifyNetworkInterfaceAttribute":
        enis.append(_str(request.get("networkInterfaceId")) or "")
        groups.extend(_str(_obj(item).get("groupId")) or "" for item in _items(request.get("groupSet")))
    groups.extend(r.rule.group_id for r in rules if r.rule is not None)
    return {"security_groups": _unique(groups), "rules": tuple(dict.fromkeys(rules)),
            "network_interfaces": _unique(enis)}


def _permission_rules(group: str, direction: str, permissions: Any) -> list[TouchedRule]:
    """One rule per peer, as the monitor's rule model has them (EC2 groups peers by permission)."""
    rules = []
    for permission in map(_obj, _items(permissions)):
        protocol, low, high = permission.get("ipProtocol"), permission.get("fromPort"), permission.get("toPort")
        peers = [("sg", _str(_obj(p).get("groupId"))) for p in _items(permission.get("groups"))]
        peers += [("cidr", _str(_obj(p).get("cidrIp"))) for p in _items(permission.get("ipRanges"))]
        peers += [("cidr6", _str(_obj(p).get("cidrIpv6"))) for p in _items(permission.get("ipv6Ranges"))]
        peers += [("prefix_list", _str(_obj(p).get("prefixListId"))) for p in _items(permission.get("prefixListIds"))]
        for kind, value in peers:
            rule = _tuple(group, protocol, low, high, (kind, value) if value else None)
            if rule is not None:
                rules.append(TouchedRule(direction, rule))
    return rules


def _response_rule(item: Any, direction: str) -> TouchedRule:
    item = _obj(item)
    referenced = _str(item.get("referencedGroupId")) or _str(_obj(item.get("referencedGroupInfo")).get("groupId"))
    peer = _peer({**item, "referencedGroupId": referenced}, "cidrIpv4", "cidrIpv6", "prefixListId", "referencedGroupId")
    if isinstance(item.get("isEgress"), bool):
        direction = "egress" if item["isEgress"] else "ingress"
    rule = _tuple(_str(item.get("groupId")), item.get("ipProtocol"), item.get("fromPort"), item.get("toPort"), peer)
    return TouchedRule(direction, rule, _str(item.get("securityGroupRuleId")))


def _rule_ids(value: Any) -> list[str]:
    """Rule ids of a revoke by id, whether recorded as an `items` list of objects or of strings."""
    ids = []
    for item in _items(value):
        rule_id = _str(_obj(item).get("securityGroupRuleId")) if isinstance(item, dict) else _str(item)
        if rule_id:
            ids.append(rule_id)
    return ids


def _peer(spec: dict, cidr: str, cidr6: str, prefix_list: str, group: str) -> tuple[str, str] | None:
    for kind, key in (("cidr", cidr), ("cidr6", cidr6), ("prefix_list", prefix_list), ("sg", group)):
        if value := _str(spec.get(key)):
            return kind, value
    return None


def _tuple(group: str | None, protocol: Any, low: Any, high: Any, peer: tuple[str, str] | None) -> RuleTuple | None:
    protocol = _str(protocol if not isinstance(protocol, int) else str(protocol))
    if not group or not protocol or peer is None:
        return None
    protocol = _PROTOCOL_NUMBERS.get(protocol.lower(), protocol.lower())
    from_port, to_port = _int(low), _int(high)
    if protocol == "-1" or from_port == -1:  # all traffic / all ICMP: no port range, as rules.py reads it
        from_port = to_port = None
    return RuleTuple(group, protocol, from_port, to_port, peer[0], peer[1])


# --- ELB ------------------------------------------------------------------------------------------

def _elb_touched(name: str, request: dict, response: dict) -> dict[str, Any]:
    named = name in ("SetSecurityGroups", "CreateLoadBalancer")
    groups = [_str(g) or "" for g in _list(request.get("securityGroups"))] if named else []
    targets = [_str(_obj(t).get("id")) or "" for t in _list(request.get("targets"))]
    lbs = [_str(request.get("loadBalancerArn")) or ""]
    if name == "CreateLoadBalancer":  # the new load balancer's ARN is only in the response
        lbs = [_str(_obj(lb).get("loadBalancerArn")) or "" for lb in _list(response.get("loadBalancers"))]
    return {"security_groups": _unique(groups), "load_balancers": _unique(lbs),
            "target_groups": _unique([_str(request.get("targetGroupArn")) or ""]), "targets": _unique(targets)}


# --- who ------------------------------------------------------------------------------------------

def _principal(identity: Any) -> Principal:
    identity = _obj(identity)
    issuer = _obj(_obj(identity.get("sessionContext")).get("sessionIssuer"))
    role = _str(issuer.get("arn")) if issuer.get("type") in (None, "Role") else None
    return Principal(arn=_str(identity.get("arn")) or "", role_arn=role, type=_str(identity.get("type")) or "")


# --- tolerant readers: CloudTrail leaves empty lists as {} and some values as strings ------------

def _items(value: Any) -> list:
    if isinstance(value, dict):
        value = value.get("items")
    return value if isinstance(value, list) else []


def _list(value: Any) -> list:
    return value if isinstance(value, list) else _items(value)


def _obj(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.lstrip("-").isdigit():
        return int(value)
    return None


def _time(value: Any) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.timestamp() if parsed.tzinfo is not None else None


def _unique(values: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(v for v in values if v))
