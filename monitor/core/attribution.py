"""Names the lost rule of every ACCESS_REVOKED (and EGRESS_BLOCKED) finding, and who cut it when a
CloudTrail event says so.

Pure: the report, the memory of covering rules, the recent events and the known roles in, a report
with `rule` and `attribution` filled in out. The rule comes from the memory (the rules that covered
the path when it was last healthy and are gone now); the caller is the latest revoking event that
removed one of those rules (by id, else by tuple), or deleted the group, and is dated before the
check that first saw the path cut. An event is evidence, not truth: it names who cut a rule only
when the monitor's own reads saw that rule go (for an outbound rule, which the memory does not
keep, when the checks' reads saw the rule it names on that group and see it no more).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from monitor.core.event_evidence import Sightings
from monitor.core.event_match import KnownRoles, actor_kind
from monitor.core.event_trust import CLOCK_SKEW_SECONDS
from monitor.core.events import ApiEvent, Effect, TouchedRule
from monitor.core.memory import Memory, RuleTuple
from monitor.core.model import Attribution, Report

ATTRIBUTED_CODES = ("ACCESS_REVOKED", "EGRESS_BLOCKED")


def _lost(report: Report, memory: Memory) -> dict[tuple[str, str], tuple[tuple[RuleTuple, ...], float | None]]:
    """(load balancer name, group) -> the remembered covering rules of its paths now missing there,
    with when a check first saw those paths cut."""
    names = {lb.arn: lb.name for lb in report.load_balancers}
    lost: dict[tuple[str, str], dict[RuleTuple, None]] = {}
    since: dict[tuple[str, str], float] = {}
    for key, entry in memory.paths:
        name = names.get(key.load_balancer_arn)
        if name is None:
            continue
        for rule in entry.lost:
            lost.setdefault((name, rule.group_id), {})[rule] = None
            if entry.uncovered_since is not None:
                since[(name, rule.group_id)] = min(since.get((name, rule.group_id), entry.uncovered_since),
                                                   entry.uncovered_since)
    return {k: (tuple(sorted(v, key=RuleTuple.sort_key)), since.get(k)) for k, v in lost.items()}


def attribute(report: Report, memory: Memory, events: Iterable[ApiEvent], roles: KnownRoles,
              seen: Sightings | None = None) -> Report:
    """The report with its ACCESS_REVOKED / EGRESS_BLOCKED findings naming the lost rule and, when an
    event matches what the reads saw go, who removed it."""
    revokes = sorted((e for e in events if e.effect is not Effect.GRANT), key=lambda e: (e.event_time, e.event_id))
    lost = _lost(report, memory)
    seen = seen if seen is not None else Sightings()
    findings = []
    changed = False
    for finding in report.findings:
        if finding.code not in ATTRIBUTED_CODES or finding.security_group is None:
            findings.append(finding)
            continue
        direction = "ingress" if finding.code == "ACCESS_REVOKED" else "egress"
        rules, since = lost.get((finding.load_balancer or "", finding.security_group), ((), None)) \
            if direction == "ingress" else ((), None)
        event = _latest_match(revokes, finding.security_group, direction, rules, since, seen)
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


def _latest_match(revokes: list[ApiEvent], group: str, direction: str, rules: tuple[RuleTuple, ...],
                  since: float | None, seen: Sightings) -> ApiEvent | None:
    for event in reversed(revokes):
        if since is not None and event.event_time > since + CLOCK_SKEW_SECONDS:
            continue  # dated after a check saw the cut: it cannot be what made it
        if event.event_name == "DeleteSecurityGroup" and group in event.security_groups and rules:
            return event
        for touched in event.rules:
            if touched.direction not in (direction, "unknown"):
                continue
            if direction == "ingress" and any(_names(touched, rule) for rule in rules):
                return event
            if direction == "egress" and seen.gone("egress", touched, group):
                return event
    return None


def _names(touched: TouchedRule, lost: RuleTuple) -> bool:
    """The event's rule is the lost one: the same id when both have one, else the same tuple."""
    if touched.rule_id and lost.rule_id:
        return touched.rule_id == lost.rule_id
    return touched.rule is not None and touched.rule == lost


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
