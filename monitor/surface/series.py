"""What the state gauges count, from one report: the finding codes always shown, findings by code,
paths by state, and the load balancers whose every cut the ELB disputes. No prometheus_client here:
monitor.surface.metrics renders these."""

from __future__ import annotations

from monitor.core.corroborate import CUT_CODES, VERDICT_DISPUTED
from monitor.core.model import PATH_STATE_NAMES, Report, Severity

# The contract's finding codes are always rendered, at 0 when absent, so `albsg_findings{code=…} > 0` and
# dashboards see a series from the first scrape; other codes appear while they are found.
KNOWN_FINDINGS: dict[str, str] = {
    "ACCESS_REVOKED": Severity.CRITICAL.value,
    "EGRESS_BLOCKED": Severity.CRITICAL.value,
    "CLIENTS_NOT_ADMITTED": Severity.CRITICAL.value,
    "NACL_BLOCKED": Severity.CRITICAL.value,
    "SHARED_LABEL_ON_FOREIGN_SOURCE": Severity.CRITICAL.value,
    "UNCLAIMED_SHARED_LABEL": Severity.WARNING.value,
    "AMBIGUOUS_NODE_SECURITY_GROUP": Severity.CRITICAL.value,
    "MIGRATION_POLICY_MISSING": Severity.CRITICAL.value,
    "CONTROLLERS_BOTH_RUNNING": Severity.CRITICAL.value,
    "V1_CONTROLLER_TOO_OLD": Severity.CRITICAL.value,
    "UNADOPTED_LOAD_BALANCER": Severity.INFO.value,
    "UNLABELLED_V1_RULE": Severity.INFO.value,
    "REMEDIATION_FIGHT": Severity.CRITICAL.value,
    "OBSERVATION_INCOMPLETE": Severity.WARNING.value,
    "RULE_QUOTA_NEAR": Severity.WARNING.value,
    "VERDICT_DISPUTED": Severity.WARNING.value,
    "UNHEALTHY_UNEXPLAINED": Severity.WARNING.value,
}

def disputed_load_balancers(report: Report) -> list[str]:
    """Unreachable load balancers whose every cut finding the ELB disputes."""
    cuts: dict[str, set[str]] = {}
    for finding in report.findings:
        if finding.load_balancer and (finding.code in CUT_CODES or finding.code == VERDICT_DISPUTED):
            cuts.setdefault(finding.load_balancer, set()).add(finding.code)
    return sorted(lb.name for lb in report.load_balancers
                  if lb.reachable is False and cuts.get(lb.name) == {VERDICT_DISPUTED})


def path_counts(report: Report) -> dict[str, int]:
    """Every path state, at 0 when no path is in it, so a dashboard sees each series from the start."""
    counts = dict.fromkeys(PATH_STATE_NAMES, 0)
    for lb in report.load_balancers:
        for path in lb.paths:
            counts[path.state] += 1
    return counts


def finding_counts(report: Report) -> dict[tuple[str, str], int]:
    counts = {(code, severity): 0 for code, severity in KNOWN_FINDINGS.items()}
    for finding in report.findings:
        key = (finding.code, finding.severity.value)
        counts[key] = counts.get(key, 0) + 1
    return counts
