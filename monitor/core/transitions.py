"""Pure comparison of consecutive reports: which paths went from covered to uncovered.

A path whose coverage is unknown for a while keeps its last known state, so a revocation that
happened while reads were failing is still counted when the reads come back (covered → unknown
→ uncovered is one revocation; covered → unknown → covered is none). A path not judged (no ENI of
the account owns its target's address) has no coverage: it is forgotten.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from monitor.core.model import PathResult, Report

PathKey = tuple[str, str, str, tuple[int, ...]]  # (load balancer ARN, target group ARN, target, ports)


@dataclass(frozen=True, slots=True)
class Revocation:
    """One path seen covered before and uncovered now."""

    load_balancer: str  # the ALB's name, as in the metric label and the findings
    load_balancer_arn: str
    target_group_arn: str
    target: str
    ports: tuple[int, ...]
    missing_ports: tuple[int, ...]
    security_groups: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Coverage:
    """The last known coverage (True/False) of every path of the last report; unknown ones keep
    the value they had before they became unknown."""

    known: Mapping[PathKey, bool] = field(default_factory=dict)


def path_key(path: PathResult) -> PathKey:
    return (path.load_balancer_arn, path.target_group_arn, path.target, path.ports)


def advance(previous: Coverage, report: Report) -> tuple[Coverage, tuple[Revocation, ...]]:
    """The coverage after `report`, and the revocations it shows compared with `previous`.

    Paths absent from the report (ALB deleted, target deregistered) are forgotten, never counted.
    """
    known: dict[PathKey, bool] = {}
    revocations: list[Revocation] = []
    for lb in report.load_balancers:
        for path in lb.paths:
            if not path.judged:
                continue  # no coverage to know or remember: it is forgotten, as a vanished path is
            key = path_key(path)
            before = previous.known.get(key)
            state = path.reachable  # a cut outbound rule of the ALB cuts the path as surely as an inbound one
            if state is None:
                if before is not None:
                    known[key] = before
                continue
            known[key] = state
            if before is True and state is False:
                revocations.append(Revocation(
                    load_balancer=lb.name,
                    load_balancer_arn=lb.arn,
                    target_group_arn=path.target_group_arn,
                    target=path.target,
                    ports=path.ports,
                    missing_ports=_lost_ports(path),
                    security_groups=path.security_groups,
                ))
    return Coverage(known=known), tuple(revocations)


def _lost_ports(path: PathResult) -> tuple[int, ...]:
    """The ports a path lost: not admitted, not let out, or stopped by a network ACL (every port of
    it when only the replies are stopped)."""
    lost = {*path.missing_ports, *(port for _, port in path.egress_missing),
            *(b.from_port for b in path.nacl_blocked if not b.reply)}
    return tuple(sorted(lost)) or path.ports


def revoked_load_balancers(revocations: tuple[Revocation, ...]) -> tuple[str, ...]:
    """The ALBs that lost coverage in one cycle, once each: what albsg_rule_revocations_total counts.
    (One revoked rule behind many targets is one revocation of that ALB, not one per target.)"""
    return tuple(sorted({r.load_balancer for r in revocations}))
