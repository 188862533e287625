"""The verdict held beside the ELB's word (pure): each finding that says a path is cut gets its
confirmation; a cut the ELB's health checks cross and keep passing past the health-check window
becomes VERDICT_DISPUTED (a warning: the model misses something); and targets the ELB reports
failing for a network reason while every rule admits them become UNHEALTHY_UNEXPLAINED.

Health never changes a path's verdict: only the findings are re-worded, and a target group with no
successful read simply has nothing to say (confirmation `unknown`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from monitor.core import health
from monitor.core.health import HealthMemory, TargetKey
from monitor.core.model import SEVERITY_RANK, Finding, PathResult, Report, Severity, TargetGroup

ACCESS_REVOKED, EGRESS_BLOCKED = "ACCESS_REVOKED", "EGRESS_BLOCKED"
NACL_BLOCKED, CLIENTS_NOT_ADMITTED = "NACL_BLOCKED", "CLIENTS_NOT_ADMITTED"
CUT_CODES = frozenset({ACCESS_REVOKED, EGRESS_BLOCKED, NACL_BLOCKED, CLIENTS_NOT_ADMITTED})
VERDICT_DISPUTED = "VERDICT_DISPUTED"
UNHEALTHY_UNEXPLAINED = "UNHEALTHY_UNEXPLAINED"


@dataclass(frozen=True)
class Corroborated:
    report: Report
    disputed: frozenset[tuple[str, str | None, str | None]]  # (code, load balancer, group) of each disputed cut


def cut_needs(code: str, path: PathResult) -> tuple[tuple[str, int], ...]:
    """What a finding of this code says is cut on this path. Client addresses are never what the
    ELB's health checks come from, so a cut of them is never exercised."""
    if code == ACCESS_REVOKED:
        return path.missing
    if code == EGRESS_BLOCKED:
        return path.egress_missing
    if code == NACL_BLOCKED:
        # A network ACL that stops the replies stops every request's, the health checks' included.
        if any(block.reply for block in path.nacl_blocked):
            return path.needs
        return tuple(need for need in path.needs for block in path.nacl_blocked
                     if need[0] == block.protocol and block.from_port <= need[1] <= block.to_port)
    return ()


def exercised(finding: Finding, paths: Mapping[tuple[str, str, str], PathResult],
              lb_arn: str) -> tuple[TargetKey, ...]:
    """The paths of a cut finding whose health-check port, from the load balancer, is what is cut."""
    out = []
    for key in finding.paths:
        path = paths.get((lb_arn, *key))
        if path is not None and path.health_need is not None and path.health_need in cut_needs(finding.code, path):
            out.append(key)
    return tuple(out)


def windows_of(target_groups: Iterable[TargetGroup]) -> dict[str, float]:
    return {tg.arn: float(health.timing_of(tg).window) for tg in target_groups}


def _exercised_by_finding(report: Report) -> dict[int, tuple[TargetKey, ...]]:
    """For each cut finding (by its place in the report), the paths the ELB's health checks cross."""
    cuts = [(i, f) for i, f in enumerate(report.findings) if f.code in CUT_CODES]
    if not cuts:
        return {}  # most checks: no path of thousands indexed for nothing
    lb_arns = {lb.name: lb.arn for lb in report.load_balancers}
    paths = {(p.load_balancer_arn, p.target_group_arn, p.target): p for lb in report.load_balancers for p in lb.paths}
    return {i: exercised(f, paths, lb_arns.get(f.load_balancer or "", "")) for i, f in cuts}


def exercised_target_groups(report: Report) -> list[str]:
    """The target groups whose health can confirm (or dispute) a cut of this report: those a one-shot
    check reads, and no other."""
    return sorted({key[0] for keys in _exercised_by_finding(report).values() for key in keys})


def corroborate(report: Report, memory: HealthMemory, target_groups: Iterable[TargetGroup],
                one_shot: bool = False, windows: Mapping[str, float] | None = None) -> Corroborated:
    """The report with the ELB's word added. `one_shot` (check, preflight): reads taken once, right
    after the verdict, confirm or leave pending; they never dispute nor explain. `windows`: the
    target groups' health-check windows when the caller keeps them (else worked out here)."""
    target_groups = tuple(target_groups)
    windows = windows if windows is not None else windows_of(target_groups)
    crossed = _exercised_by_finding(report)
    findings: list[Finding] = []
    disputed: set[tuple[str, str | None, str | None]] = set()
    for index, finding in enumerate(report.findings):
        if index not in crossed:
            findings.append(finding)
            continue
        keys = crossed[index]
        word = _confirmation(keys, memory, one_shot)
        if not one_shot and keys and _disputed(keys, memory, windows):
            disputed.add((finding.code, finding.load_balancer, finding.security_group))
            findings.append(_dispute(finding, keys, memory))
        else:
            findings.append(replace(finding, confirmation=word))
    if not one_shot:
        findings.extend(_unexplained(report, memory, target_groups, windows))
    # Stable, by severity only: a disputed cut moves among the warnings, the rest keep the order given.
    findings.sort(key=lambda f: SEVERITY_RANK[f.severity])
    return Corroborated(replace(report, findings=tuple(findings)), frozenset(disputed))


def _by_group(keys: Iterable[TargetKey]) -> dict[str, list[TargetKey]]:
    grouped: dict[str, list[TargetKey]] = defaultdict(list)
    for key in keys:
        grouped[key[0]].append(key)
    return grouped


def _confirmation(keys: tuple[TargetKey, ...], memory: HealthMemory, one_shot: bool) -> str:
    if not keys:
        return health.NOT_EXERCISED
    words = set()
    for arn, group_keys in _by_group(keys).items():
        since = 0.0 if one_shot else min(memory.cut_since.get(k, 0.0) for k in group_keys)
        words.add(health.confirmation(group_keys, memory.reads.get(arn), True, since))
    if health.UNKNOWN in words:
        return health.UNKNOWN
    return health.CONFIRMED if words == {health.CONFIRMED} else health.PENDING


def _disputed(keys: tuple[TargetKey, ...], memory: HealthMemory, windows: Mapping[str, float]) -> bool:
    for arn, group_keys in _by_group(keys).items():
        since = min((memory.cut_since[k] for k in group_keys if k in memory.cut_since), default=None)
        if since is None or not health.disputed(group_keys, memory.reads.get(arn), True, since,
                                                windows.get(arn, 0.0)):
            return False
    return True


def _dispute(finding: Finding, keys: tuple[TargetKey, ...], memory: HealthMemory) -> Finding:
    since = min(memory.cut_since[k] for k in keys if k in memory.cut_since)
    last = max(memory.reads[arn].at for arn in {k[0] for k in keys})
    judged = finding.message.split(": ", 1)[0]
    return replace(
        finding,
        code=VERDICT_DISPUTED,
        severity=Severity.WARNING,
        confirmation=None,
        message=(
            f"The ELB disputes a cut ({finding.code}): {judged}, yet its health checks have reached "
            f"{len(keys)} target(s) on that port from the load balancer for {last - since:.0f} s since the cut "
            "was first seen, past the health-check window. The monitor's model misses a rule that admits "
            "them: compare the rules with the ELB's view before changing anything (docs/runbook.md)."
        ),
    )


def _unexplained(report: Report, memory: HealthMemory, target_groups: tuple[TargetGroup, ...],
                 windows: Mapping[str, float]) -> Iterable[Finding]:
    failing_groups = {arn for arn, _ in memory.failing_since}
    if not failing_groups:
        return  # no target failing: nothing to explain, and no path indexed for it
    by_tg: dict[str, list[PathResult]] = defaultdict(list)
    lb_names = {lb.arn: lb.name for lb in report.load_balancers}
    for lb in report.load_balancers:
        for path in lb.paths:
            if path.target_group_arn in failing_groups:
                by_tg[path.target_group_arn].append(path)
    for tg in target_groups:
        if tg.arn not in failing_groups:
            continue  # memory.unexplained() finds nothing for it
        group_paths = by_tg.get(tg.arn, [])
        if not group_paths or not all(p.reachable is True for p in group_paths):
            continue
        failing = memory.unexplained(tg.arn, windows.get(tg.arn, 0.0))
        if not failing:
            continue
        read = memory.reads[tg.arn]
        reasons = sorted({t.reason for t in read.targets if t.target_id in failing and t.network_failure})
        since = min(memory.failing_since[(tg.arn, t)] for t in failing)
        lb_name = next((lb_names[a] for a in tg.load_balancer_arns if a in lb_names), None)
        yield Finding(
            code=UNHEALTHY_UNEXPLAINED,
            severity=Severity.WARNING,
            load_balancer=lb_name,
            paths=tuple((tg.arn, t) for t in failing),
            message=(
                f"The security groups and network ACLs admit every path of target group {tg.name or tg.arn}, "
                f"yet the ELB has reported {len(failing)} target(s) ({', '.join(failing[:5])}"
                f"{' and more' if len(failing) > 5 else ''}) unhealthy ({', '.join(reasons)}) for "
                f"{read.at - since:.0f} s: look past the network rules (a host firewall, a route, a process "
                "not listening on its port)."
            ),
        )
