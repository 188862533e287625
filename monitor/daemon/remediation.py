"""The act step of a check cycle: remember, plan, carry out the plan's writes, and leave an audit
trail (a log event, a metric and, with Kubernetes, an Event on the Ingress) of every decision.

The decisions themselves are pure (monitor.core.memory, monitor.core.policy); this module is their edge. It
writes only on a complete AWS observation and only after confirming leadership right before each
write; it saves the state (memory and history) after every cycle that changed it, and again when
the saved state has gone missing (a deleted --state-file), whether or not it changed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Protocol

import structlog

from monitor.aws import AwsClients
from monitor.aws.writes import authorize, revoke_own
from monitor.core import migration, policy
from monitor.core.errors import StateError
from monitor.core.history import History
from monitor.core.memory import Memory, remember
from monitor.core.model import LoadBalancerResult, Observation, Report
from monitor.core.policy import (
    CIDR_NOT_RESTORED,
    CLEANUP,
    INCOMPLETE,
    NOT_LEADER,
    RESTORE,
    SUPPRESSED,
    Decision,
    WriteResult,
)
from monitor.core.settings import Settings
from monitor.core.state_doc import State, StateStore
from monitor.daemon.ports import MetricsSink

log = structlog.get_logger("monitor.remediation")

# The reason a planned write was not sent: its check passed its deadline (the daemon abandons it).
PAST_DEADLINE = "past_deadline"

# Event reasons on the Ingress, by (decision kind, metric result).
EVENT_REASONS = {
    (RESTORE, "restored"): ("RuleRestored", False),
    (RESTORE, "already_present"): ("RuleAlreadyPresent", False),
    (RESTORE, "failed"): ("RestoreFailed", True),
    (RESTORE, "suppressed"): ("RestoreSuppressed", True),
    (RESTORE, "dry_run"): ("RestoreDryRun", True),
    (CLEANUP, "cleaned_up"): ("RuleCleanedUp", False),
    (CLEANUP, "failed"): ("CleanupFailed", True),
    (CLEANUP, "suppressed"): ("CleanupSuppressed", False),
    (CLEANUP, "dry_run"): ("CleanupDryRun", False),
}


class Leadership(Protocol):
    def is_leader(self) -> bool: ...

    def confirm(self) -> bool:
        """Leadership checked afresh, right before a write."""

    def start(self) -> None: ...

    def stop(self, release: bool = True) -> None: ...


class SoleLeader:
    """Without Kubernetes there is nobody to elect with: this process is the leader (run one replica)."""

    def is_leader(self) -> bool:
        return True

    def confirm(self) -> bool:
        return True

    def start(self) -> None:
        pass

    def stop(self, release: bool = True) -> None:
        pass


class EventSink(Protocol):
    def record(self, namespace: str, ingress: str, reason: str, message: str, warning: bool, now: float) -> bool: ...


@dataclass(frozen=True)
class Outcome:
    """One decision of a cycle as carried out: its write's result, its metric label, and whether it
    was announced (logged, counted, posted) this cycle."""

    decision: Decision
    result: WriteResult | None
    label: str
    announced: bool
    at: float = 0.0  # when the cycle carried it out (wall clock)


class Remediator:
    def __init__(self, clients: AwsClients, settings: Settings, metrics: MetricsSink, store: StateStore,
                 leadership: Leadership | None = None, events: EventSink | None = None,
                 shared_store: bool = False) -> None:
        self._clients = clients
        self._settings = settings
        self._metrics = metrics
        self._store = store
        self._leadership = leadership or SoleLeader()
        self._events = events
        # A store other replicas also save to (the ConfigMap): re-read it on becoming leader, so the
        # history of the former leader (quarantines, caps) carries over.
        self._shared = shared_store
        self.memory, self.history = Memory(), History()
        # The load balancers `memory` was last learnt from (remember() keeps what it knew of those unchanged).
        self._judged: dict[str, LoadBalancerResult] = {}
        # (memory, complete, load balancers) when remember() last returned the memory it was given:
        # a report of these very results (a carried verdict) would teach it nothing either.
        self._settled: tuple[Memory, bool, tuple[LoadBalancerResult, ...]] | None = None
        self._saved: State | None = None
        self._persisted: bool | None = None  # whether the last save (or the start-up probe) worked
        self._failed_saves = 0  # saves that failed since the last one that worked
        self._missing = False  # the saved state was found gone, and not yet saved again
        self._was_leader = False
        self._last: dict[tuple, tuple[str, str]] = {}  # per decision key: (action, reason) last cycle
        self._started: float | None = None  # our first cycle: the history holds every restore since
        self._foreign: frozenset[str] = frozenset()  # rule ids reported as another writer's last cycle

    @property
    def state(self) -> State:
        return State(self._settings.cluster_name, self.memory, self.history)

    def load(self) -> None:
        """Start from the stored state. Raises StateError (exit 2 at startup) when it is unusable."""
        stored = self._store.load()
        if stored is not None:
            self.memory, self.history = stored.memory, stored.history
            self._judged = {}
            self._saved = stored
            log.info("state_loaded", paths=len(stored.memory.paths), attempts=len(stored.history.attempts),
                     quarantined=len(stored.history.quarantined))

    def check_store(self, where: str) -> None:
        """At start: say at once, in the log and on /metrics, when the state cannot be saved, rather
        than at the first save of an outage; `where` names the store in the log."""
        if not self._store.durable:
            return
        problem = self._store.probe()
        if problem is not None:
            log.warning("state_not_writable", state=where, error=problem,
                        detail="remembered rules will not survive a restart until this is fixed")
        self._persisted = problem is None
        self._metrics.set_state_persisted(problem is None)

    def _settled_on(self, report: Report) -> bool:
        """Whether remember() would return the memory unchanged: it did for a report of the same
        result objects (by identity: what a carried verdict hands on), equally complete."""
        settled = self._settled
        if settled is None or settled[0] is not self.memory or settled[1] != report.complete:
            return False
        before, now = settled[2], report.load_balancers
        return len(before) == len(now) and all(a is b for a, b in zip(before, now))

    def act(self, aws_report: Report, report: Report, observation: Observation, now: float,
            in_time: Callable[[], bool] | None = None) -> tuple[Report, tuple[Outcome, ...]]:
        """`aws_report` is the verdict on the AWS reads alone (its completeness gates every write);
        `report` is what gets published, to which the plan's findings are added. `in_time` says
        whether the cycle is still within its deadline; it is asked right before each write."""
        leader = self._leadership.is_leader()
        if leader and not self._was_leader and self._shared:
            leader = self._adopt_stored_state()
        self._was_leader = leader
        self._metrics.set_remediation_enabled(self._settings.mode == "enforce" and leader)
        self._started = now if self._started is None else self._started
        if not self._settled_on(aws_report):
            learnt = remember(self.memory, aws_report, observation.rules, now, self._judged)
            self._settled = (learnt, aws_report.complete, aws_report.load_balancers) if learnt is self.memory else None
            self.memory = learnt
            self._judged = {lb.arn: lb for lb in aws_report.load_balancers}
        plan = policy.plan(self.memory, aws_report, observation, self._settings, now, leader, self.history,
                           started=self._started)
        self._announce_foreign(plan)
        history = plan.history
        outcomes: list[Outcome] = []
        for decision in plan.decisions:
            result = None
            if decision.is_write:
                decision, result = self._write(decision, aws_report, in_time)
                if result is not None:
                    history = policy.record(history, decision, result, now)
            outcomes.append(Outcome(decision, result, policy.result_label(decision, result), False, now))
        self.history = history
        outcomes = self._announce(outcomes, now, leader)
        if leader:
            self._save()
        if plan.findings:
            report = report.with_findings(plan.findings, order=migration.order_key)
        return report, tuple(outcomes)

    def _announce_foreign(self, plan: policy.Plan) -> None:
        """One warning per rule another writer restored under our tag (the finding stays a while)."""
        foreign = {f.rule: f for f in plan.findings if f.code == "FOREIGN_RESTORE" and f.rule}
        for rule_id in sorted(set(foreign) - self._foreign):
            f = foreign[rule_id]
            log.warning("foreign_restore_seen", rule_id=rule_id, group=f.security_group, load_balancer=f.load_balancer,
                        detail="a rule with this monitor's owner tag that it did not create: another enforce "
                               "replica restores rules for this cluster")
        self._foreign = frozenset(foreign)

    # -- writes -----------------------------------------------------------------------------------
    def _write(self, decision: Decision, aws_report: Report,
               in_time: Callable[[], bool] | None = None) -> tuple[Decision, WriteResult | None]:
        if not aws_report.complete:  # the policy never plans this; refuse it here as well
            log.error("write_refused", reason=INCOMPLETE, rule=decision.rule.text())
            return replace(decision, action=SUPPRESSED, reason=INCOMPLETE), None
        if in_time is not None and not in_time():  # what the cycle read may be stale by now
            return replace(decision, action=SUPPRESSED, reason=PAST_DEADLINE), None
        if not self._leadership.confirm():
            return replace(decision, action=SUPPRESSED, reason=NOT_LEADER), None
        if decision.kind == RESTORE:
            return decision, authorize(self._clients, decision)
        return decision, revoke_own(self._clients, decision, self._settings.cluster_name)

    # -- audit trail ------------------------------------------------------------------------------
    def _announce(self, outcomes: list[Outcome], now: float, leader: bool) -> list[Outcome]:
        """Every write is announced. A decision that writes nothing is announced when it is new or its
        action or reason changed since the last cycle: a path held in grace for a minute is one
        `suppressed` decision, not four, and an ongoing dry run is counted once per outage. Only the
        leader posts Events, so that two replicas do not tell an Ingress everything twice."""
        current: dict[tuple, tuple[str, str]] = {}
        announced: list[Outcome] = []
        for outcome in outcomes:
            d = outcome.decision
            key = (d.kind, d.rule, d.rule_id)
            state = (d.action, d.reason)
            changed = outcome.result is not None or self._last.get(key) != state
            current[key] = state
            if changed:
                self._audit(outcome, now, leader)
            announced.append(replace(outcome, announced=changed))
        self._last = current
        return announced

    def _audit(self, outcome: Outcome, now: float, leader: bool) -> None:
        d, result, label = outcome.decision, outcome.result, outcome.label
        self._metrics.count_remediation(label)
        fields = {"kind": d.kind, "action": d.action, "reason": d.reason, "result": label,
                  "rule": d.rule.text(), "group": d.rule.group_id, "load_balancer": ",".join(d.load_balancers),
                  "ingresses": [f"{ns}/{name}" for ns, name in d.ingresses], "paths": d.paths,
                  "mode": self._settings.mode}
        if d.rule_id:
            fields["rule_id"] = d.rule_id
        if result is not None:
            fields.update(outcome=result.outcome, code=result.code, message=result.message,
                          created_rule_id=result.rule_id if d.kind == RESTORE else None)
        if label == "already_present":
            fields["detail"] = ("the rule was already there when the monitor went to restore it: another writer "
                                "put it back first, most likely a second enforce replica (see foreign_restore_seen)")
        # A path left to a human (its only lost rule was an address range) is as loud as a restore;
        # a rule someone else put back first points at a second writer.
        loud = label in ("restored", "already_present", "cleaned_up", "dry_run") or d.reason == CIDR_NOT_RESTORED
        level = "error" if label == "failed" else "warning" if loud else "info"
        getattr(log, level)("remediation_decision", **fields)
        if self._events is not None and leader:
            self._post_events(d, label, result, now)

    def post_event(self, namespace: str, ingress: str, reason: str, message: str, warning: bool, now: float) -> None:
        """An Event on an Ingress from another piece of the daemon (the ELB's word on a cut): posted by
        the leader only, like the remediation's own, so that replicas do not repeat each other."""
        if self._events is not None and self._was_leader:
            self._events.record(namespace, ingress, reason, message, warning, now)

    def _post_events(self, d: Decision, label: str, result: WriteResult | None, now: float) -> None:
        reason, warning = EVENT_REASONS[(d.kind, label)]
        message = _event_message(d, label, result)
        for namespace, name in _ingresses(d.ingresses):
            self._events.record(namespace, name, reason, message, warning, now)

    # -- state ------------------------------------------------------------------------------------
    def _adopt_stored_state(self) -> bool:
        """On becoming leader: take over the stored history and what the stored memory knows that
        ours does not. False (do not write this cycle) when the store cannot be read."""
        try:
            stored = self._store.load()
        except StateError as exc:
            log.error("state_load_failed", error=str(exc))
            return False
        if stored is not None:
            merged = dict(stored.memory.paths)
            for key, entry in self.memory.paths:
                if entry.covering or key not in merged:
                    merged[key] = entry
            self.memory = Memory(paths=tuple(sorted(merged.items(), key=lambda item: item[0])))
            self._judged = {}
            self.history = stored.history
            self._saved = stored
        return True

    def _save(self) -> None:
        """Saves a changed state, and an unchanged one whose saved copy is gone: otherwise a deleted
        file stays deleted while nothing changes, and a restart then forgets every remembered rule."""
        state = self.state
        # Before the first save or load there is nothing to be missing: a first start has no file yet.
        missing = self._saved is not None and self._store.missing()
        if missing and not self._missing:
            log.warning("state_missing", state=self._store.where,
                        detail="the saved state is gone (deleted, or its volume replaced); saving it again")
        self._missing = missing
        if state == self._saved and not missing:
            return
        try:
            self._store.save(state)
        except StateError as exc:  # kept dirty: saved again next cycle
            log.error("state_save_failed", error=str(exc))
            self._failed_saves += 1
            self._persisted = False
            self._metrics.count_state_save_failure()
            return
        if self._persisted is False:
            log.info("state_saved_again", state=self._store.where, failed_saves=self._failed_saves)
        elif missing:
            log.info("state_recreated", state=self._store.where)
        self._saved, self._persisted, self._failed_saves, self._missing = state, True, 0, False
        self._metrics.set_state_persisted(True)


def _ingresses(pairs: tuple[tuple[str, str], ...]) -> list[tuple[str, str]]:
    """(namespace, name) of each Ingress; an IngressGroup's names are joined with commas (see
    monitor.core.ingress_join), across namespaces as 'ns/name'."""
    out = []
    for namespace, names in pairs:
        for name in filter(None, names.split(",")):
            ns, _, bare = name.rpartition("/")
            if ns or namespace:
                out.append((ns or namespace, bare))
    return sorted(set(out))


def _event_message(d: Decision, label: str, result: WriteResult | None) -> str:
    lbs = ", ".join(d.load_balancers) or "its load balancer"
    if label == "restored":
        return f"alb-sg-monitor restored the revoked rule {d.rule.text()} that {lbs} needs to reach its targets."
    if label == "already_present":
        return (f"alb-sg-monitor went to restore the rule {d.rule.text()} that {lbs} needs and found it already "
                "there: another writer (a second alb-sg-monitor replica, a controller or a person) put it back first.")
    if label == "cleaned_up":
        return f"alb-sg-monitor removed its own rule {d.rule_id} ({d.rule.text()}): no live ALB uses its source any more."
    if label == "failed":
        what = "Restoring" if d.kind == RESTORE else "Removing"
        return f"{what} rule {d.rule.text()} for {lbs} failed: {result.code if result else ''} {result.message if result else ''}".strip()
    if label == "dry_run":
        what = "restore" if d.kind == RESTORE else "remove its own"
        return f"Observe mode: alb-sg-monitor would {what} rule {d.rule.text()} for {lbs}; nothing was written."
    if d.reason == CIDR_NOT_RESTORED:
        return (f"alb-sg-monitor does not restore the lost rule {d.rule.text()} that {lbs} needs: its source is an "
                "address range, which may have been removed on purpose. Put it back by hand, or admit the ALB's "
                "security group instead, if the removal was a mistake.")
    what = "Restoring" if d.kind == RESTORE else "Removing"
    return f"{what} rule {d.rule.text()} for {lbs} is held back: {d.reason}."

