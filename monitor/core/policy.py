"""The remediation policy: memory + this cycle's report + safety rails -> a plan of decisions.

Pure: no I/O, no clock, no logging. Every decision, taken or not, is in the plan, so the
edges can log, count and announce each one. A restore never widens anything: it re-adds exactly a
tuple that was seen covering a path and then disappeared, on the SG it was on. Which lost rules
qualify (only from the ALB's own SGs, the fewest that re-cover the path, never an address range)
is monitor.core.restores; this module applies the rails to them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from monitor.core import ownership, quota
from monitor.core.history import CREATED, DUPLICATE, FAILED, Attempt, History, Quarantine
from monitor.core.memory import Memory, RuleTuple
from monitor.core.model import Finding, Observation, PeerKind, Report, RuleQuota, Severity
from monitor.core.restores import CIDR_NOT_RESTORED, SOURCE_DETACHED, needs
from monitor.core.settings import Settings, format_duration

RESTORE, CLEANUP = "restore", "cleanup"  # Decision.kind
REVOKE, DRY_RUN, SUPPRESSED = "revoke", "dry_run", "suppressed"  # Decision.action (and RESTORE)

# Decision.reason of a suppressed decision; stable, they are log fields and Event texts.
GRACE = "grace"
INCOMPLETE = "incomplete_observation"
NOT_LEADER = "not_leader"
CAP_PER_CYCLE = "cap_per_cycle"
CAP_PER_HOUR = "cap_per_hour"
BACKOFF = "backoff"
RULE_LIMIT = "rule_limit"
QUARANTINED = "quarantined"

RULE_LIMIT_CODE = "RulesPerSecurityGroupLimitExceeded"
_HOUR = 3600.0


@dataclass(frozen=True)
class Decision:
    kind: str  # RESTORE or CLEANUP
    action: str  # RESTORE / REVOKE (write), DRY_RUN, SUPPRESSED
    rule: RuleTuple
    reason: str = ""  # why suppressed; "" otherwise
    load_balancers: tuple[str, ...] = ()  # names of the ALBs concerned
    ingresses: tuple[tuple[str, str], ...] = ()  # (namespace, name) of their Ingresses, for Events
    paths: int = 0  # path ports that need this rule back
    since: float | None = None  # restore: uncovered since; cleanup: orphaned since
    description: str = ""  # restore: the description the rule is created with
    tags: tuple[tuple[str, str], ...] = ()  # restore: its tags
    rule_id: str | None = None  # cleanup: the rule to revoke

    @property
    def is_write(self) -> bool:
        return self.action in (RESTORE, REVOKE)


@dataclass(frozen=True)
class Plan:
    decisions: tuple[Decision, ...]
    findings: tuple[Finding, ...]  # REMEDIATION_FIGHT, REMEDIATION_FAILED, FOREIGN_RESTORE
    history: History  # with this cycle's quarantines and orphan clocks; record() results into it

    @property
    def writes(self) -> tuple[Decision, ...]:
        return tuple(d for d in self.decisions if d.is_write)


@dataclass(frozen=True)
class WriteResult:
    """What one write did; the AWS adapter returns these instead of raising."""

    outcome: str  # "restored", "duplicate", "cleaned_up", "gone", "refused", "failed"
    code: str = ""  # AWS error code (or our refusal reason)
    message: str = ""
    rule_id: str | None = None

    @property
    def ok(self) -> bool:
        return self.outcome in ("restored", "duplicate", "cleaned_up", "gone")


def plan(memory: Memory, report: Report, observation: Observation, settings: Settings, now: float,
         leader: bool, history: History, started: float | None = None) -> Plan:
    """`started`: since when `history` holds every restore this monitor made (its first cycle);
    None skips the check for rules another writer restored under our tag."""
    kept_since = now - max(_HOUR, settings.fight_window, settings.restore_backoff_max)
    history = history.pruned(kept_since)
    if report.complete and history.quarantined:
        present = {RuleTuple.of(rule) for rule in observation.rules}
        # Lifted when someone else put the rule back (the fight is over), or when no remembered
        # path needs it any more (its ALB or target is gone).
        remembered = {t for _, entry in memory.paths for t in (*entry.covering, *entry.lost)}
        history = replace(history, quarantined=tuple(q for q in history.quarantined
                                                     if q.rule not in present and q.rule in remembered))
    decisions: list[Decision] = []
    findings: list[Finding] = []
    planned = 0
    hour_writes = history.writes_since(now - _HOUR)
    for rule, need in sorted(needs(memory, report).items(), key=lambda kv: (kv[1].since, kv[0].sort_key())):
        last = history.last_success(rule)
        since = max(need.since, last) if last is not None else need.since  # grace restarts after a restore
        lbs = tuple(sorted(need.lbs))
        base = Decision(kind=RESTORE, action=SUPPRESSED, rule=rule, load_balancers=lbs,
                        ingresses=tuple(sorted({i for i in need.lbs.values() if i[1]})), paths=need.paths, since=since)
        if need.reason == CIDR_NOT_RESTORED:
            # Never written, in any mode: after the grace (a revoke-then-grant blip is no news) the
            # decision is announced once and the ACCESS_REVOKED finding stays for a human.
            decisions.append(replace(base, reason=GRACE if now - need.since < settings.grace else CIDR_NOT_RESTORED))
            continue
        quarantine = history.quarantine_of(rule)
        if quarantine is None and report.complete:
            revocations = history.created_since(rule, now - settings.fight_window) + 1
            if revocations >= settings.fight_threshold:
                quarantine = Quarantine(rule=rule, since=now, revocations=revocations)
                history = replace(history, quarantined=(*history.quarantined, quarantine))
        streak = history.failure_streak(rule)
        if streak:
            findings.append(_failed(rule, streak, lbs, observation.rule_quota or quota.NOT_READ))
        if quarantine is not None:
            findings.append(_fight(quarantine, lbs, settings))
            decisions.append(replace(base, reason=QUARANTINED))
        elif need.reason == SOURCE_DETACHED:
            decisions.append(replace(base, reason=SOURCE_DETACHED))
        elif now - since < settings.grace:
            decisions.append(replace(base, reason=GRACE))
        elif not report.complete:
            decisions.append(replace(base, reason=INCOMPLETE))
        else:
            lb_name = lbs[0] if lbs else ""
            base = replace(base, description=ownership.description(lb_name, now),
                           tags=ownership.rule_tags(settings.cluster_name, lb_name, now))
            reason = _rail(settings, leader, streak, now, hour_writes + planned, planned)
            if settings.mode != "enforce":
                decisions.append(replace(base, action=DRY_RUN))
            elif reason:
                decisions.append(replace(base, reason=reason))
            else:
                decisions.append(replace(base, action=RESTORE))
                planned += 1
    cleanups, history = _cleanups(report, observation, settings, now, leader, history)
    if started is not None and leader and settings.mode == "enforce":
        findings += [_foreign(rule, settings) for rule in foreign_restores(
            observation.rules, history, settings.cluster_name, max(started, kept_since))]
    return Plan(decisions=(*decisions, *cleanups), findings=tuple(findings), history=history)


# Our restored-at tag has whole seconds; the history has the exact time of the same write.
_TAG_SLACK = 2.0


def foreign_restores(rules, history: History, cluster: str, since: float) -> list:
    """Rules tagged as restored by alb-sg-monitor for this cluster, at or after `since`, that this
    monitor did not create (no restore of that tuple at that time in its history): another enforce
    replica writes too. Each replica counts only its own restores, so together they need twice
    the revocations before the fight-loop detector stops them."""
    foreign = []
    for rule in sorted(rules, key=lambda r: r.rule_id or ""):
        if not ownership.is_ours(rule, cluster):
            continue
        at = ownership.restored_at(rule)
        if at is None or at < since - _TAG_SLACK:
            continue
        tuple_ = RuleTuple.of(rule)
        if not any(a.rule == tuple_ and a.outcome == CREATED and abs(a.at - at) <= _TAG_SLACK
                   for a in history.attempts):
            foreign.append(rule)
    return foreign


def _rail(settings: Settings, leader: bool, streak: tuple[Attempt, ...], now: float, hour_writes: int,
          planned: int) -> str:
    """The first safety rail that holds a restore back this cycle, or ''."""
    if not leader:
        return NOT_LEADER
    if streak:
        wait = min(settings.restore_backoff * 2 ** (len(streak) - 1), settings.restore_backoff_max)
        if now < streak[-1].at + wait:
            return RULE_LIMIT if streak[-1].code == RULE_LIMIT_CODE else BACKOFF
    if hour_writes >= settings.max_restores_per_hour:
        return CAP_PER_HOUR
    if planned >= settings.max_restores_per_cycle:
        return CAP_PER_CYCLE
    return ""


def _cleanups(report: Report, observation: Observation, settings: Settings, now: float, leader: bool,
              history: History) -> tuple[list[Decision], History]:
    """Our own rules whose source no live ALB uses any more: revoke them, or the Ingress deletion
    stalls on DependencyViolation when v2 deletes the SG (#3037, #2117)."""
    if not report.complete or observation.new_lb_arns:
        return [], history  # an ALB we have not described yet might use the source
    attached = {sg for lb in report.load_balancers for sg in lb.security_groups}
    live_names = {lb.name for lb in report.load_balancers}
    decisions: list[Decision] = []
    orphaned: dict[str, float] = {}
    planned = 0
    for rule in sorted(observation.rules, key=lambda r: r.rule_id or ""):
        if not rule.rule_id or not ownership.is_ours(rule, settings.cluster_name):
            continue
        if rule.peer_kind is PeerKind.SECURITY_GROUP:
            detached = rule.peer not in attached
        else:
            detached = ownership.restored_for(rule) not in live_names
        if not detached:
            continue
        since = history.orphaned_since(rule.rule_id)
        since = now if since is None else since
        orphaned[rule.rule_id] = since
        lb_name = ownership.restored_for(rule) or ""
        base = Decision(kind=CLEANUP, action=SUPPRESSED, rule=RuleTuple.of(rule), rule_id=rule.rule_id,
                        load_balancers=(lb_name,) if lb_name else (), since=since, tags=rule.tags)
        if now - since < settings.cleanup_grace:
            decisions.append(replace(base, reason=GRACE))
        elif settings.mode != "enforce":
            decisions.append(replace(base, action=DRY_RUN))
        elif not leader:
            decisions.append(replace(base, reason=NOT_LEADER))
        elif planned >= settings.max_restores_per_cycle:
            decisions.append(replace(base, reason=CAP_PER_CYCLE))
        else:
            decisions.append(replace(base, action=REVOKE))
            planned += 1
    return decisions, replace(history, orphaned=tuple(sorted(orphaned.items())))


def record(history: History, decision: Decision, result: WriteResult, now: float) -> History:
    """The history after one write of the plan was carried out."""
    if decision.kind == RESTORE and decision.action == RESTORE:
        outcome = {"restored": CREATED, "duplicate": DUPLICATE}.get(result.outcome, FAILED)
        attempt = Attempt(rule=decision.rule, at=now, outcome=outcome, code="" if result.ok else result.code)
        return replace(history, attempts=(*history.attempts, attempt))
    if decision.kind == CLEANUP and decision.action == REVOKE and result.ok:
        return replace(history, orphaned=tuple(o for o in history.orphaned if o[0] != decision.rule_id))
    return history


def result_label(decision: Decision, result: WriteResult | None) -> str:
    """The `result` label of albsg_remediations_total for a decision (and its write, if any)."""
    if decision.action in (DRY_RUN, SUPPRESSED):
        return decision.action
    if result is None or not result.ok:
        return "failed"
    if decision.kind == RESTORE:
        # InvalidPermission.Duplicate: the rule was there when the write arrived, put back by
        # another writer since this cycle read the rules; this monitor restored nothing.
        return "already_present" if result.outcome == "duplicate" else "restored"
    return "cleaned_up"


def with_findings(report: Report, plan_: Plan) -> Report:
    """The report with the plan's findings added (they count for exit codes and albsg_findings)."""
    return replace(report, findings=(*report.findings, *plan_.findings))


def _fight(quarantine: Quarantine, lbs: tuple[str, ...], settings: Settings) -> Finding:
    rule = quarantine.rule
    return Finding(
        code="REMEDIATION_FIGHT",
        severity=Severity.CRITICAL,
        load_balancer=lbs[0] if lbs else None,
        security_group=rule.group_id,
        message=(
            f"Rule {rule.text()} was revoked {quarantine.revocations} times within "
            f"{format_duration(settings.fight_window)} although alb-sg-monitor restored it: restoring it has "
            f"stopped. Find who revokes it (CloudTrail RevokeSecurityGroupIngress on {rule.group_id}; often a "
            "second controller or cluster managing the same group) and stop that, then add the rule back."
        ),
    )


def _foreign(rule, settings: Settings) -> Finding:
    tags = dict(rule.tags)
    return Finding(
        code="FOREIGN_RESTORE",
        severity=Severity.WARNING,
        load_balancer=ownership.restored_for(rule) or None,
        security_group=rule.group_id,
        rule=rule.rule_id,
        message=(
            f"Rule {rule.rule_id} ({RuleTuple.of(rule).text()}) carries alb-sg-monitor's owner tag for cluster "
            f"{settings.cluster_name}, restored at {tags.get(ownership.RESTORED_AT_TAG, '?')}, but this monitor did "
            "not create it: another alb-sg-monitor in enforce mode restores rules for this cluster. Run one enforce "
            "replica per cluster, or several with Kubernetes leader election: each writer counts only its own "
            "restores, so a fight takes twice as many revocations to be stopped."
        ),
    )


def _failed(rule: RuleTuple, streak: tuple[Attempt, ...], lbs: tuple[str, ...], rule_quota: RuleQuota) -> Finding:
    code = streak[-1].code
    if code == RULE_LIMIT_CODE:
        hint = (f"{rule.group_id} has reached its rules-per-group quota of {rule_quota.text()}; remove unused rules "
                f"or raise the quota (Service Quotas, vpc {quota.QUOTA_CODE})")
    elif code in ("UnauthorizedOperation", "AccessDenied", "AccessDeniedException"):
        hint = ("grant the monitor's role ec2:AuthorizeSecurityGroupIngress and ec2:CreateTags "
                f"(the remediation policy) on {rule.group_id}")
    else:
        hint = "retrying with backoff; restore it by hand if the outage matters now"
    return Finding(
        code="REMEDIATION_FAILED",
        severity=Severity.WARNING,
        load_balancer=lbs[0] if lbs else None,
        security_group=rule.group_id,
        message=f"Restoring {rule.text()} failed {len(streak)} time(s), last with {code}: {hint}.",
    )


__all__ = ["Decision", "Plan", "WriteResult", "plan", "record", "result_label", "with_findings"]
