"""Names the lost rule of every ACCESS_REVOKED (and EGRESS_BLOCKED) finding, and who cut it when a
CloudTrail event says so.

Pure: the report, the memory of covering rules, the recent events and the known roles in, a report
with `rule` and `attribution` filled in out. The rule comes from the memory (the rules that covered
the path when it was last healthy and are gone now); the caller is the latest revoking event that
removed one of those rules (by id or by tuple), or deleted the group.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from monitor.event_match import KnownRoles, actor_kind
from monitor.events import ApiEvent, Effect
from monitor.memory import Memory, RuleTuple
from monitor.model import Attribution, Report

ATTRIBUTED_CODES = ("ACCESS_REVOKED", "EGRESS_BLOCKED")


def lost_rules(report: Report, memory: Memory) -> dict[tuple[str, str], tuple[RuleTuple, ...]]:
    """(load balancer name, group) -> the remembered covering rules of its paths now missing there."""
    names = {lb.arn: lb.name for lb in report.load_balancers}
    lost: dict[tuple[str, str], dict[RuleTuple, None]] = {}
    for key, entry in memory.paths:
        name = names.get(key.load_balancer_arn)
        if name is None:
            continue
        for rule in entry.lost:
            lost.setdefault((name, rule.group_id), {})[rule] = None
    return {k: tuple(sorted(v, key=RuleTuple.sort_key)) for k, v in lost.items()}


def attribute(report: Report, memory: Memory, events: Iterable[ApiEvent], roles: KnownRoles) -> Report:
    """The report with its ACCESS_REVOKED / EGRESS_BLOCKED findings naming the lost rule and, when an
    event matches, who removed it."""
    revokes = sorted((e for e in events if e.effect is not Effect.GRANT), key=lambda e: (e.event_time, e.event_id))
    lost = lost_rules(report, memory)
    findings = []
    changed = False
    for finding in report.findings:
        if finding.code not in ATTRIBUTED_CODES or finding.security_group is None:
            findings.append(finding)
            continue
        direction = "ingress" if finding.code == "ACCESS_REVOKED" else "egress"
        rules = lost.get((finding.load_balancer or "", finding.security_group), ()) if direction == "ingress" else ()
        event = _latest_match(revokes, finding.security_group, direction, rules)
        rule = finding.rule or _rule_text(rules, event, finding.security_group, direction)
        attribution = finding.attribution
        if event is not None:
            attribution = Attribution(principal=event.principal.arn or event.principal.role_arn or "unknown",
                                      actor_kind=actor_kind(event.principal, roles).value,
                                      event_time=event.event_time, event_id=event.event_id,
                                      event_name=event.event_name)
        if rule != finding.rule or attribution != finding.attribution:
            finding, changed = replace(finding, rule=rule, attribution=attribution), True
        findings.append(finding)
    return replace(report, findings=tuple(findings)) if changed else report


def _latest_match(revokes: list[ApiEvent], group: str, direction: str,
                  rules: tuple[RuleTuple, ...]) -> ApiEvent | None:
    ids = {r.rule_id for r in rules if r.rule_id}
    for event in reversed(revokes):
        if event.event_name == "DeleteSecurityGroup" and group in event.security_groups:
            return event
        for touched in event.rules:
            if touched.direction not in (direction, "unknown"):
                continue
            if touched.rule_id and touched.rule_id in ids:
                return event
            if touched.rule is not None and touched.rule.group_id == group and (
                    not rules or touched.rule in rules):
                return event
            if touched.rule is None and not rules and group in event.security_groups:
                return event  # revoked by id, and nothing remembered to compare with
    return None


def _rule_text(rules: tuple[RuleTuple, ...], event: ApiEvent | None, group: str, direction: str) -> str | None:
    """The lost rules' ids (else their tuples), or, with nothing remembered, what the event removed."""
    if rules:
        return ", ".join(r.rule_id or r.text() for r in rules)
    if event is None:
        return None
    touched = [t for t in event.rules if t.direction in (direction, "unknown")
               and (t.rule is None or t.rule.group_id == group)]
    named = [t.rule_id or (t.rule.text() if t.rule else "") for t in touched]
    return ", ".join(n for n in named if n) or None
