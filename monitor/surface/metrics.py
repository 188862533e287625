"""The Prometheus metrics of docs/reference.md: the only module that imports prometheus_client.

State gauges (reachability, findings, completeness) are rendered at scrape time from the last
completed cycle's Report by a custom collector, so an ALB that vanished vanishes from /metrics
and a scrape never calls AWS. Counters and the histogram are ordinary prometheus_client objects,
all in one registry per Metrics instance (not the process-global one), so tests can build several.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, PlatformCollector, ProcessCollector
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder

from monitor import __version__
from monitor.core.model import Report
from monitor.surface.series import disputed_load_balancers, finding_counts, path_counts

# A `_created` sample per counter doubles every series for no use on a dashboard or in an alert.
prometheus_client.disable_created_metrics()

# The four results of the contract, plus `cleaned_up`: the monitor revoked one of its own restored rules,
# and `already_present`: a restore found the rule there already (another writer put it back first).
REMEDIATION_RESULTS = ("restored", "dry_run", "failed", "suppressed", "cleaned_up", "already_present")


# What happened to each message read from the events queue: `matched` (it touched something watched),
# or why it was ignored (monitor.core.events.Rejection values, duplicate, unwatched, rejected).
EVENT_RESULTS = ("matched", "duplicate", "unwatched", "malformed", "oversized", "not_cloudtrail", "unsupported",
                 "failed_call", "rejected")
# Why a well-formed event was not believed (monitor.core.event_trust.Distrust values).
EVENT_REJECTIONS = ("other_account", "other_region", "future")
ACTOR_KINDS = ("v2_controller", "v1_controller", "monitor", "other")
# CloudTrail delivers to EventBridge within seconds to a few minutes.
EVENT_LAG_BUCKETS = (0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)
# A revoke-then-grant gap: seconds (a controller revoking before granting) to the polls' interval.
OUTAGE_BUCKETS = (1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 300.0, 900.0, 3600.0)

# The daemon's two loops, the values of albsg_cycle_failures_total's `loop` label.
CYCLE_LOOPS = ("check", "topology")

# Cycles take well under a second against a small account and can take minutes against a large,
# throttled one (three attempts with backoff per call).
CYCLE_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0)


class _StateCollector:
    """Renders the state gauges from the last snapshot handed to Metrics.publish()."""

    def __init__(self, metrics: "Metrics") -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        report, last_success, remediation_enabled = self._metrics.snapshot()
        build = GaugeMetricFamily("albsg_build_info", "Always 1; the version of alb-sg-monitor running.",
                                  labels=["version"])
        build.add_metric([__version__], 1)
        yield build
        yield GaugeMetricFamily("albsg_remediation_enabled",
                                "1 in enforce mode while holding leadership, else 0.",
                                value=1 if remediation_enabled else 0)
        if last_success is not None:
            yield GaugeMetricFamily("albsg_last_success_timestamp_seconds",
                                    "Unix time at which the last complete check cycle ended.",
                                    value=last_success)
        if report is None:
            return  # no cycle has completed yet: no state to claim
        yield GaugeMetricFamily("albsg_observation_complete",
                                "1 when every AWS read of the last cycle succeeded, else 0.",
                                value=1 if report.complete else 0)
        reachable = GaugeMetricFamily(
            "albsg_load_balancer_reachable",
            "1 when every target of the load balancer is admitted by the node/pod security groups, "
            "0 when one is not; no sample while unknown (a read failed).",
            labels=["load_balancer", "ingress_namespace", "ingress"])
        for lb in report.load_balancers:
            if lb.reachable is not None:
                reachable.add_metric([lb.name, lb.ingress_namespace, lb.ingress], 1 if lb.reachable else 0)
        yield reachable
        disputed = GaugeMetricFamily(
            "albsg_load_balancer_disputed",
            "1 while every cut the monitor finds on the load balancer is disputed by the ELB's health checks "
            "(VERDICT_DISPUTED): the alert rules do not page on its reachability 0 then.",
            labels=["load_balancer"])
        for name in disputed_load_balancers(report):
            disputed.add_metric([name], 1)
        yield disputed
        paths = GaugeMetricFamily(
            "albsg_paths",
            "Paths of the last check by state: covered, uncovered, unknown (a read failed), not_judged "
            "(no ENI of the account owns the target's address; never counted reachable).",
            labels=["state"])
        for state, count in path_counts(report).items():
            paths.add_metric([state], count)
        yield paths
        findings = GaugeMetricFamily("albsg_findings", "Findings of the last cycle, by code.",
                                     labels=["code", "severity"])
        for (code, severity), count in sorted(finding_counts(report).items()):
            findings.add_metric([code, severity], count)
        yield findings


class _TargetsCollector:
    """albsg_targets: each target group's targets by the state the ELB's last health read gave them."""

    def __init__(self, metrics: "Metrics") -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        targets = GaugeMetricFamily(
            "albsg_targets",
            "Targets of each target group by the ELB's last health read of it (its own word, beside the verdict).",
            labels=["load_balancer", "target_group", "state"])
        for load_balancer, target_group, state, count in self._metrics.targets():
            targets.add_metric([load_balancer, target_group, state], count)
        yield targets


class _PersistenceCollector:
    """albsg_state_persisted: rendered only where the state is meant to outlive the process (a
    --state-file or the ConfigMap); kept in memory only, there is nothing to claim."""

    def __init__(self, metrics: "Metrics") -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        persisted = self._metrics.state_persisted()
        if persisted is not None:
            yield GaugeMetricFamily(
                "albsg_state_persisted",
                "1 while the remembered rules and remediation history are saved where they survive a restart; "
                "0 when the last save failed or the location was found not writable at start.",
                value=1 if persisted else 0)


class Metrics:
    """Every metric of the monitor, in its own registry. Thread-safe: cycles publish from the
    scheduler's threads while the HTTP server scrapes from its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._lock = threading.Lock()
        self._report: Report | None = None
        self._last_success: float | None = None
        self._remediation_enabled = False
        self.registry.register(_StateCollector(self))
        self.revocations = Counter(
            "albsg_rule_revocations_total",
            "Paths seen going from covered to uncovered between cycles, by load balancer.",
            ["load_balancer"], registry=self.registry)
        self.remediations = Counter(
            "albsg_remediations_total", "Remediation decisions (restores and clean-ups of our own rules), by result.", ["result"], registry=self.registry)
        for result in REMEDIATION_RESULTS:
            self.remediations.labels(result)
        self.attributed = Counter(
            "albsg_revocations_attributed_total",
            "Revoked paths a CloudTrail event attributed to a caller, by kind of caller.",
            ["actor_kind"], registry=self.registry)
        for kind in ACTOR_KINDS:
            self.attributed.labels(kind)
        self.cycle_duration = Histogram(
            "albsg_cycle_duration_seconds", "Duration of one rule check cycle.",
            buckets=CYCLE_BUCKETS, registry=self.registry)
        self.cycle_failures = Counter(
            "albsg_cycle_failures_total",
            "Cycles that ended with an unexpected error instead of a report, by loop.",
            # Not `job`: a scrape's own `job` target label would rename it to `exported_job`.
            ["loop"], registry=self.registry)
        self.topology_refreshes = Counter(
            "albsg_topology_refreshes_total", "Topology discoveries run, by reason.", ["reason"],
            registry=self.registry)
        self.api_calls = Counter(
            "albsg_aws_api_calls_total", "AWS API requests sent, retries included.",
            ["service", "operation"], registry=self.registry)
        self.api_errors = Counter(
            "albsg_aws_api_errors_total", "AWS API requests that failed, by error code.",
            ["service", "operation", "code"], registry=self.registry)
        for loop in CYCLE_LOOPS:
            self.cycle_failures.labels(loop)
        # process_* (resident memory against the pod's limit, CPU, open files) and python_info.
        # ProcessCollector reads /proc and is silent where there is none.
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        self._state_persisted: bool | None = None
        self.registry.register(_PersistenceCollector(self))
        self.discovery_rate_limit = Gauge(
            "albsg_discovery_rate_limit",
            "Requests a second discovery may send now, by API family (--discovery-rate, lowered after throttling).",
            ["family"], registry=self.registry)
        self.discovery_waited = Counter(
            "albsg_discovery_wait_seconds_total",
            "Seconds discovery waited on its own request budget, by API family.",
            ["family"], registry=self.registry)
        self._targets: list[tuple[str, str, str, int]] = []
        self.registry.register(_TargetsCollector(self))
        self.disputes = Counter(
            "albsg_verdict_disputes",
            "Cuts the ELB's health checks disputed: each time a cut path kept passing them past the health-check "
            "window.", registry=self.registry)
        self.state_save_failures = Counter(
            "albsg_state_save_failures_total",
            "Saves of the remembered rules and remediation history that failed (retried every cycle).",
            registry=self.registry)

    def enable_events(self) -> None:
        """The events-queue series, from the first scrape, when a queue is configured."""
        if hasattr(self, "events_total"):
            return
        self.events_received = Counter(
            "albsg_events_received_total",
            "CloudTrail events from the events queue that touched something watched, by API call.",
            ["event_name"], registry=self.registry)
        self.events_total = Counter(
            "albsg_events_total", "Messages read from the events queue, by result: matched, or why ignored.",
            ["result"], registry=self.registry)
        for result in EVENT_RESULTS:
            self.events_total.labels(result)
        self.events_rejected = Counter(
            "albsg_events_rejected_total",
            "Events from the events queue not believed: from another account or region, or dated in the future.",
            ["reason"], registry=self.registry)
        for reason in EVENT_REJECTIONS:
            self.events_rejected.labels(reason)
        self.event_lag = Histogram(
            "albsg_event_lag_seconds", "From a matched event's time (the API call) to its receipt from the queue.",
            buckets=EVENT_LAG_BUCKETS, registry=self.registry)
        self.outage_windows = Counter(
            "albsg_outage_windows_total",
            "Revoke-then-grant gaps of one rule seen in the events and confirmed by a later read, whether or not a "
            "check fell inside them.",
            registry=self.registry)
        self.outage_window_seconds = Histogram(
            "albsg_outage_window_seconds", "Length of the revoke-then-grant gaps seen in the events.",
            buckets=OUTAGE_BUCKETS, registry=self.registry)

    # -- state --------------------------------------------------------------------------------
    def publish(self, report: Report, now: float) -> None:
        """Make `report` the state /metrics shows; a complete one also moves the success time."""
        with self._lock:
            previous, self._report = self._report, report
            if report.complete:
                self._last_success = now
        # Every ALB gets its revocation series at 0, so the first revocation is an increase that
        # rate()/increase() can see; an ALB that is gone takes its series with it.
        names = {lb.name for lb in report.load_balancers}
        for name in sorted(names):
            self.revocations.labels(name)
        for lb in previous.load_balancers if previous else ():
            if lb.name not in names:
                try:
                    self.revocations.remove(lb.name)
                except KeyError:
                    pass

    def set_remediation_enabled(self, enabled: bool) -> None:
        with self._lock:
            self._remediation_enabled = enabled

    def snapshot(self) -> tuple[Report | None, float | None, bool]:
        with self._lock:
            return self._report, self._last_success, self._remediation_enabled

    # -- events -------------------------------------------------------------------------------
    def count_revocations(self, load_balancers: Iterable[str]) -> None:
        for name in load_balancers:
            self.revocations.labels(name).inc()

    def count_attributed(self, actor_kind: str) -> None:
        self.attributed.labels(actor_kind).inc()

    def count_events(self, result: str, count: int = 1) -> None:
        self.enable_events()
        self.events_total.labels(result).inc(count)

    def count_rejected_event(self, reason: str) -> None:
        self.enable_events()
        self.events_rejected.labels(reason).inc()

    def observe_event(self, event_name: str, lag_seconds: float) -> None:
        self.enable_events()
        self.events_received.labels(event_name).inc()
        self.events_total.labels("matched").inc()
        self.event_lag.observe(lag_seconds)

    def observe_outage_window(self, seconds: float) -> None:
        self.enable_events()
        self.outage_windows.inc()
        self.outage_window_seconds.observe(seconds)

    def count_remediation(self, result: str) -> None:
        if result not in REMEDIATION_RESULTS:
            raise ValueError(f"unknown remediation result {result!r}")
        self.remediations.labels(result).inc()

    def set_state_persisted(self, persisted: bool) -> None:
        with self._lock:
            self._state_persisted = persisted

    def state_persisted(self) -> bool | None:
        with self._lock:
            return self._state_persisted

    def count_state_save_failure(self) -> None:
        self.state_save_failures.inc()
        self.set_state_persisted(False)

    def count_disputes(self, count: int) -> None:
        self.disputes.inc(count)

    def set_targets(self, rows: list[tuple[str, str, str, int]]) -> None:
        with self._lock:
            self._targets = list(rows)

    def targets(self) -> list[tuple[str, str, str, int]]:
        with self._lock:
            return list(self._targets)

    def observe_cycle(self, seconds: float) -> None:
        self.cycle_duration.observe(seconds)

    def count_cycle_failure(self, loop: str) -> None:
        if loop not in CYCLE_LOOPS:
            raise ValueError(f"unknown loop {loop!r}")
        self.cycle_failures.labels(loop).inc()

    def count_topology_refresh(self, reason: str) -> None:
        self.topology_refreshes.labels(reason).inc()

    # ApiCounter listener (monitor.aws.session.ApiListener): register with
    # `clients.counter.listeners.append(metrics)`.
    def api_call(self, service: str, operation: str) -> None:
        self.api_calls.labels(service, operation).inc()

    def api_error(self, service: str, operation: str, code: str) -> None:
        self.api_errors.labels(service, operation, code).inc()

    # Pacer listener (monitor.aws.pacing.PaceListener): `clients.pacer.add_listener(metrics)`.
    def discovery_rate(self, family: str, rate: float) -> None:
        self.discovery_rate_limit.labels(family).set(rate)
        self.discovery_waited.labels(family)

    def discovery_wait(self, family: str, seconds: float) -> None:
        self.discovery_waited.labels(family).inc(seconds)

    # -- exposition ---------------------------------------------------------------------------
    def exposition(self, accept: str | None = None) -> tuple[bytes, str]:
        """The body and content type answering a scrape with this Accept header."""
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.registry), content_type
