"""RULE_QUOTA_NEAR: a security group on a path close to its rules-per-group quota (pure).

AWS holds a security group to a quota of rules (Service Quotas, vpc L-0EA8095F, 60 by default)
per direction, and separately for IPv4 and IPv6 rules. At the quota AuthorizeSecurityGroupIngress
fails with RulesPerSecurityGroupLimitExceeded: the v2 controller's next rule and any restore fail
(v2 leaves obsolete rules behind, aws-load-balancer-controller#4896). The rules counted are the
ones the rule check read anyway: inbound on the targets' groups, outbound on the load balancers'.
A group whose rules were not read completely gets no finding: unknown is never a verdict.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from monitor.core.model import Finding, Observation, PeerKind, Rule, RuleQuota, Severity

DEFAULT_QUOTA = 60  # AWS's default, assumed when the quota cannot be read
MARGIN = 5  # a group holding the quota minus this many rules or more is near it
QUOTA_CODE = "L-0EA8095F"  # Service Quotas, service code vpc: "Inbound or outbound rules per security group"
NOT_READ = RuleQuota(DEFAULT_QUOTA, read=False)

INBOUND, OUTBOUND = "inbound", "outbound"
IPV4, IPV6 = "IPv4", "IPv6"


def weights(rule: Rule) -> dict[str, int]:
    """What one rule counts against each family's quota.

    A CIDR rule counts once against its own family. A rule referencing a security group or an
    AWS-managed prefix list counts once against IPv4 and once against IPv6 (AWS: "counts as one rule
    for IPv4 and one rule for IPv6"). A rule referencing a customer-managed prefix list counts as the
    list's maximum entries (MaxEntries), and the monitor cannot know that number: the rule check
    reads only the entries of the lists it must resolve, and neither MaxEntries nor who manages a
    list (DescribeManagedPrefixLists would be one more call). So every prefix-list rule is counted
    as one against each family, as an AWS-managed list counts: a group holding customer-managed
    lists may be nearer its quota than said."""
    if rule.peer_kind is PeerKind.CIDR:
        return {IPV4: 1}
    if rule.peer_kind is PeerKind.CIDR6:
        return {IPV6: 1}
    return {IPV4: 1, IPV6: 1}


def counts(rules: Iterable[Rule]) -> Counter[tuple[str, str, str]]:
    """(group, direction, family) -> the rules counted against that quota."""
    counted: Counter[tuple[str, str, str]] = Counter()
    for rule in rules:
        direction = OUTBOUND if rule.egress else INBOUND
        for family, weight in weights(rule).items():
            counted[(rule.group_id, direction, family)] += weight
    return counted


def near_quota(observation: Observation, owners: dict[str, str] | None = None) -> list[Finding]:
    """One warning per (group, direction, family) within MARGIN rules of the quota, for the groups
    whose rules were read completely. `owners`: a load balancer's name per group of its own, to
    name it on a finding about that group."""
    quota = observation.rule_quota or NOT_READ
    owners = owners or {}
    counted = counts((*observation.rules, *observation.egress_rules))
    findings = []
    for (group, direction, family), count in sorted(counted.items()):
        if group not in observation.read_groups or count < quota.value - MARGIN:
            continue
        findings.append(Finding(
            code="RULE_QUOTA_NEAR",
            severity=Severity.WARNING,
            load_balancer=owners.get(group) if direction == OUTBOUND else None,
            security_group=group,
            message=(
                f"{group} holds {count} {direction} {family} rules, "
                + (f"at its rules-per-group quota of {quota.text()}: "
                   if count >= quota.value else
                   f"{quota.value - count} short of its rules-per-group quota of {quota.text()}: once it is full ")
                + "the v2 controller's next rule, or a restore, fails with RulesPerSecurityGroupLimitExceeded; "
                f"remove stale rules from {group} (the v2 controller can leave obsolete ones behind) or ask for a "
                f"higher quota (Service Quotas, vpc {QUOTA_CODE})."
            ),
        ))
    return findings
