"""Renders a Report as the JSON document of docs/reference.md or as a table for a terminal."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from monitor.core import failures
from monitor.core.model import Finding, LoadBalancerResult, NaclBlock, Report

_STATE = {True: "ok", False: "UNREACHABLE", None: "unknown"}
_CONFIRMATION_WORDS = {
    "confirmed": "confirmed (the ELB reports these targets failing for a network reason)",
    "pending": "pending (the ELB has not reported these targets failing yet)",
    "not_exercised": "not exercised (they do not cross what is cut: another port, or client addresses)",
    "unknown": "unknown (target health not read)",
}


def to_dict(report: Report) -> dict[str, Any]:
    return {
        "cluster": report.cluster,
        "region": report.region,
        "complete": report.complete,
        "load_balancers": [
            {
                "name": lb.name,
                "arn": lb.arn,
                "adoption": lb.adoption,
                "ingress": f"{lb.ingress_namespace}/{lb.ingress}" if lb.ingress else None,
                "security_groups": list(lb.security_groups),
                "reachable": lb.reachable,
                "paths": [
                    {
                        "target_group": p.target_group_arn,
                        "target": p.target,
                        "ports": list(p.ports),
                        "security_groups": list(p.security_groups),
                        "covered": p.covered,
                        "covered_by": list(p.covered_by),
                        "missing_ports": list(p.missing_ports),
                        "needs": _pairs(p.needs),
                        "missing": _pairs(p.missing),
                        "egress_allowed": p.egress_allowed,
                        "egress_missing": _pairs(p.egress_missing),
                        "clients_admitted": p.clients_admitted,
                        "clients_missing": list(p.clients_missing),
                        "nacl_allowed": p.nacl_allowed,
                        "nacl_blocked": [_nacl_block(b) for b in p.nacl_blocked],
                        "state": p.state,
                        **({"not_judged_reason": p.not_judged_reason} if not p.judged else {}),
                    }
                    for p in lb.paths
                ],
            }
            for lb in report.load_balancers
        ],
        "findings": [_finding(f) for f in report.findings],
    }


def _finding(f: Finding) -> dict[str, Any]:
    out: dict[str, Any] = {"code": f.code, "severity": f.severity.value, "load_balancer": f.load_balancer,
                           "security_group": f.security_group, "rule": f.rule, "message": f.message}
    if f.confirmation is not None:
        out["confirmation"] = f.confirmation
    if f.attribution is not None:
        a = f.attribution
        out["attribution"] = {"principal": a.principal, "actor_kind": a.actor_kind, "event_name": a.event_name,
                              "event_id": a.event_id, "event_time": iso_time(a.event_time)}
    return out


def _nacl_block(b: NaclBlock) -> dict[str, Any]:
    return {"network_acl": b.acl_id, "rule": b.rule, "direction": b.direction, "subnet": b.subnet_id,
            "protocol": b.protocol, "from_port": b.from_port, "to_port": b.to_port, "peer": b.peer, "reply": b.reply}


def iso_time(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _pairs(needs) -> list[dict[str, Any]]:
    return [{"protocol": protocol, "port": port} for protocol, port in needs]


def to_json(report: Report, attribution: dict[str, Any] | None = None) -> str:
    """The report as JSON; check and preflight add how attribution is set up."""
    out = to_dict(report)
    if attribution is not None:
        out["attribution"] = attribution
    return json.dumps(out, indent=2)


def paths_cell(lb: LoadBalancerResult) -> str:
    """`reachable/judged` paths of a load balancer: only a path known to be reachable counts; an
    unknown one is said apart, never as reachable, and so are the paths not judged (`+1 not judged`)."""
    judged = [p for p in lb.paths if p.judged]
    good = sum(1 for p in judged if p.reachable is True)
    unknown = sum(1 for p in judged if p.reachable is None)
    outside = len(lb.paths) - len(judged)
    return (f"{good}/{len(judged)}" + (f" ({unknown} unknown)" if unknown else "")
            + (f" +{outside} not judged" if outside else ""))


def state_cell(lb: LoadBalancerResult) -> str:
    """The STATE column: `ok`, `UNREACHABLE`, `unknown`, or `not judged` when no path of it is."""
    return "not judged" if lb.not_judged else _STATE[lb.reachable]


def to_table(report: Report, title: str = "check", attribution: str | None = None) -> str:
    lines = [f"{title}: cluster {report.cluster} in {report.region}"
             + ("" if report.complete else "  (observation INCOMPLETE: some reads failed)")]
    if attribution:
        lines.append(f"attribution: {attribution}")
    rows = [("LOAD BALANCER", "ADOPTION", "INGRESS", "PATHS", "STATE")]
    for lb in report.load_balancers:
        paths = paths_cell(lb)
        ingress = f"{lb.ingress_namespace}/{lb.ingress}" if lb.ingress else "-"
        rows.append((lb.name, lb.adoption, ingress, paths, state_cell(lb)))
    lines.extend(_columns(rows))
    unlisted = failures.listing_failure(report.failures, listed=bool(report.load_balancers))
    if unlisted:
        lines.append(f"({unlisted})")
    elif not report.load_balancers:
        lines.append("(no load balancers of this cluster found)")
    lines.append("")
    if report.findings:
        lines.append("FINDINGS")
        for f in report.findings:
            lines.append(f"  {f.severity.value.upper():8} {f.code}: {f.message}")
            if f.confirmation is not None:
                lines.append(f"           the ELB's health checks: {_CONFIRMATION_WORDS[f.confirmation]}")
            if f.attribution is not None:
                a = f.attribution
                lines.append(f"           cut by {a.principal} ({a.actor_kind}, {a.event_name} at "
                             f"{iso_time(a.event_time)}, event {a.event_id})")
    else:
        lines.append("no findings")
    return "\n".join(lines)


def _columns(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
