"""Saying who cut a path: the events held against each check's reads, the roles that tell the
controllers from people, and the announcement (log event, metric, Ingress Event) once per event and finding."""

from __future__ import annotations

import threading
from dataclasses import replace

from monitor.core.attribution import ATTRIBUTED_CODES, attribute
from monitor.core.event_evidence import Sightings, read_rules
from monitor.core.event_match import KnownRoles
from monitor.core.model import Observation, Report
from monitor.daemon.event_feed import attribution_off
from monitor.daemon.shared import Shared, log


class Attributor:
    """The rule ids the checks read (what events are held against) and the attributions announced."""

    def __init__(self, shared: Shared, roles: KnownRoles | None) -> None:
        self._shared = shared
        self._roles = roles or KnownRoles()  # from flags and the pod's own role
        self._attributed: dict[tuple[str, str, str], None] = {}  # (event id, ALB, group) announced
        self._seen = Sightings()  # the rule ids the checks read: what events are held against
        self._seen_lock = threading.Lock()

    def roles(self) -> KnownRoles:
        """The callers' roles: from flags and the pod, and the controllers' IRSA roles Kubernetes shows."""
        base = self._roles
        state = self._shared.cluster_state
        if state is None:
            return base
        v2 = {c.role_arn for c in state.controllers_of("v2") if c.role_arn}
        v1 = {c.role_arn for c in state.controllers_of("v1") if c.role_arn}
        return replace(base, v2_controller=base.v2_controller | v2, v1_controller=base.v1_controller | v1)

    def attribute(self, report: Report, observation: Observation) -> Report:
        """Events held against this check's reads: windows they confirm, and who cut what they saw go."""
        shared = self._shared
        feed, lookups = shared.feed, shared.lookups
        memory = shared.memory()
        events = feed.recent() if feed is not None else lookups.recent() if lookups else ()
        with self._seen_lock:  # a check abandoned past its deadline may still be here
            now = shared.wall()
            self._seen.saw(read_rules(observation), observation.read_groups, now)
            if feed is not None:
                feed.saw_rules(self._seen, now)
            report = attribute(report, memory, events, self.roles(), self._seen)
        if lookups is not None:
            for finding in report.findings:
                if finding.code in ATTRIBUTED_CODES and finding.security_group:
                    if finding.attribution is None:
                        lookups.request(finding.security_group)
                    else:
                        lookups.done(finding.security_group)
        failure = feed.failure if feed is not None else None
        if failure is None:
            return report
        return replace(report, findings=report.findings + (attribution_off(feed.queue_url, failure.code),))

    def announce(self, report: Report) -> None:
        """Once per event and finding: the log event, the metric, and an Event on the Ingress."""
        shared = self._shared
        lbs = {lb.name: lb for lb in report.load_balancers}
        for finding in report.findings:
            a = finding.attribution
            if a is None:
                continue
            key = (a.event_id, finding.load_balancer or "", finding.security_group or "")
            if key in self._attributed:
                continue
            self._attributed[key] = None
            while len(self._attributed) > 10_000:
                self._attributed.pop(next(iter(self._attributed)))
            shared.metrics.count_attributed(a.actor_kind)
            log.warning("revocation_attributed", code=finding.code, load_balancer=finding.load_balancer,
                        security_group=finding.security_group, rule=finding.rule, principal=a.principal,
                        actor_kind=a.actor_kind, event_name=a.event_name, event_id=a.event_id,
                        event_time=a.event_time)
            lb = lbs.get(finding.load_balancer or "")
            sink = shared.feed.events if shared.feed is not None else None
            if sink is not None and lb is not None and lb.ingress and shared.feed.may_post():
                sink.record(lb.ingress_namespace, lb.ingress, "RevocationAttributed",
                            f"{finding.code} on {finding.security_group}: rule {finding.rule or 'unknown'} was "
                            f"removed by {a.principal} ({a.actor_kind}) with {a.event_name} (event {a.event_id}).",
                            True, shared.wall())
