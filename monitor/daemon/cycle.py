"""One full check or preflight: read Kubernetes (when on) and AWS, evaluate, add migration findings.

The same path serves `check`, `preflight` and the demo; the daemon runs its halves on two schedules.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Protocol

from monitor.aws import AwsClients, RuleReader, discover
from monitor.aws.health import read_health
from monitor.aws.iam import read_role_policies
from monitor.core import migration
from monitor.core.cluster_model import ClusterState
from monitor.core.corroborate import corroborate, exercised_target_groups
from monitor.core.evaluate import evaluate
from monitor.core.health import HealthMemory
from monitor.core.ingress_join import join_ingresses
from monitor.core.model import Observation, ReadFailure, Report, Topology


class ClusterSource(Protocol):
    """What the cycle needs from Kubernetes: one method. `None` stands for --kubernetes off."""

    def read(self) -> ClusterState: ...


@dataclass(frozen=True)
class Snapshot:
    """Everything read in one pass, for the verdict and for what acts on it."""

    topology: Topology
    observation: Observation
    state: ClusterState | None


def read_all(clients: AwsClients, cluster: str, kube: ClusterSource | None, reader: RuleReader | None = None,
             progress=None) -> Snapshot:
    progress = progress or (lambda _: None)
    if kube is not None:
        progress("reading the cluster through the Kubernetes API")
    state = kube.read() if kube is not None else None
    topology = discover(clients, cluster, progress)
    if state is not None:
        state = this_cluster(state, topology, cluster)
        topology = join_ingresses(topology, state)
    progress("reading the inbound rules of the targets' security groups")
    observation = (reader or RuleReader(clients)).read(topology)
    return Snapshot(topology, observation, state)


def this_cluster(state: ClusterState, topology: Topology, cluster: str) -> ClusterState:
    """The state as read, or nothing but a WrongCluster failure when the API serves another cluster
    (a kubeconfig on another context): its bindings and Ingresses must not judge this one."""
    reason = migration.wrong_cluster(topology, state, cluster)
    if reason is None:
        return state
    return ClusterState(failures=(ReadFailure("kubernetes", "cluster identity", "WrongCluster", reason),))


def verdict(snapshot: Snapshot) -> Report:
    """The check's report: reachability, rule findings, and what Kubernetes adds when it is on."""
    return with_kubernetes(evaluate(snapshot.topology, snapshot.observation), snapshot)


def with_kubernetes(report: Report, snapshot: Snapshot) -> Report:
    """The AWS verdict plus the Kubernetes findings (and read failures) when Kubernetes is on. The
    daemon keeps both: the AWS verdict alone decides whether a write may happen."""
    state = snapshot.state
    if state is None:
        return report
    extra = (*migration.kubernetes_unavailable(state),
             *with_impact(migration.unclaimed_shared_labels(snapshot.topology, snapshot.observation.rules, state),
                          snapshot, report))
    return report.with_findings(_not_yet_named(extra, report), state.failures, order=migration.order_key)


def check_once(clients: AwsClients, cluster: str, kube: ClusterSource | None = None, progress=None) -> Report:
    snapshot = read_all(clients, cluster, kube, progress=progress)
    return with_health_once(clients, verdict(snapshot), snapshot.topology, progress)


def with_health_once(clients: AwsClients, report: Report, topology: Topology, progress=None) -> Report:
    """check and preflight: the ELB's word on each cut, from one health read of each target group
    behind one (paced like discovery). Taken once, it confirms or leaves pending, never disputes; a
    failed read leaves `unknown` and makes nothing else unknown."""
    wanted = exercised_target_groups(report)  # a cut the health checks do not cross is not_exercised unread
    memory = HealthMemory()
    if wanted and progress:
        progress(f"reading the target health of {len(wanted)} target group(s) behind cut paths")
    failures: list[ReadFailure] = []
    with clients.pacer.discovering():
        for arn in wanted:
            read = read_health(clients, arn, failures, time.time)
            if read is not None:
                memory.saw_read(read, admitted=False)
    return corroborate(report, memory, topology.target_groups, one_shot=True).report


def preflight_once(clients: AwsClients, cluster: str, kube: ClusterSource | None, progress=None) -> Report:
    """Migration readiness: the check, plus what will cut traffic if the cutover goes on (issue 5).

    Without Kubernetes the controllers cannot be seen; the report says so (MIGRATION_POLICY_UNVERIFIED)."""
    snapshot = read_all(clients, cluster, kube, progress=progress)
    state = snapshot.state if snapshot.state is not None else ClusterState()
    v2 = next((c for c in state.controllers_of("v2") if c.role_arn), None)
    if v2 and progress:
        progress(f"reading the IAM policies of {v2.role_arn}")
    role, iam_failures = read_role_policies(clients, v2.role_arn) if v2 else (None, ())
    report = evaluate(snapshot.topology, snapshot.observation)
    findings = migration.migration_findings(snapshot.topology, snapshot.observation.rules, state, role, iam_failures)
    findings = with_impact(findings, snapshot, report)
    failures = (*(snapshot.state.failures if snapshot.state else ()), *iam_failures)
    report = report.with_findings(_not_yet_named(findings, report), failures, order=migration.order_key)
    return with_health_once(clients, report, snapshot.topology, progress)


def with_impact(findings, snapshot: Snapshot, report: Report) -> tuple:
    """Say, on each UNCLAIMED_SHARED_LABEL finding, what v2's garbage collection of all of them would
    cut: the verdict again without those rules, against `report`, the verdict with them (pure, no AWS call)."""
    doomed = {f.rule for f in findings if f.code == "UNCLAIMED_SHARED_LABEL" and f.rule}
    if not doomed:
        return tuple(findings)
    kept = tuple(r for r in snapshot.observation.rules if r.rule_id not in doomed)
    after = evaluate(snapshot.topology, replace(snapshot.observation, rules=kept))
    before = {lb.arn: lb.reachable for lb in report.load_balancers}
    cut = sorted(lb.name for lb in after.load_balancers if lb.reachable is False and before.get(lb.arn) is True)
    note = (f" (v2 collecting these labelled rules would cut {', '.join(cut)})" if cut
            else " (nothing loses its path if v2 collects these labelled rules: other rules admit the same traffic)")
    return tuple(replace(f, message=f.message.rstrip(".") + note + ".") if f.code == "UNCLAIMED_SHARED_LABEL" else f
                 for f in findings)


def _not_yet_named(findings, report: Report) -> tuple:
    """Drop a finding about a rule a critical finding already names (a foreign-source label is also
    an unclaimed one; saying it twice buries the fix)."""
    named = {f.rule for f in report.findings if f.rule and f.severity.value == "critical"}
    return tuple(f for f in findings if not (f.rule and f.rule in named))
