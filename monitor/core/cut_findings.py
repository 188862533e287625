"""The critical findings of a cut path, per load balancer: the inbound rules its targets' groups
lack (ACCESS_REVOKED) and the outbound rules its own groups lack (EGRESS_BLOCKED), each with the
command that admits the traffic again. Pure."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from monitor.core import clients, controllers
from monitor.core.coverage import Need
from monitor.core.model import Finding, LoadBalancer, PathResult, Severity


def _spans(needs: Iterable[Need]) -> list[tuple[str, int, int]]:
    """(protocol, lowest port, highest port) per protocol, tcp first."""
    by_protocol: dict[str, list[int]] = defaultdict(list)
    for protocol, port in needs:
        by_protocol[protocol].append(port)
    return [(p, min(ports), max(ports)) for p, ports in sorted(by_protocol.items())]


def _span_text(spans: list[tuple[str, int, int]]) -> str:
    return ", ".join(f"{p} {lo}" if lo == hi else f"{p} {lo}-{hi}" for p, lo, hi in spans)


def _permissions(spans: list[tuple[str, int, int]], group: str, description: str) -> str:
    return " ".join(f"'IpProtocol={p},FromPort={lo},ToPort={hi},"
                    f"UserIdGroupPairs=[{{GroupId={group},Description={description}}}]'" for p, lo, hi in spans)


def revoked(lb: LoadBalancer, paths: tuple[PathResult, ...]) -> Iterable[Finding]:
    by_group: dict[str, list[PathResult]] = defaultdict(list)
    for path in paths:
        if path.covered is False and path.judged:
            by_group[path.node_security_group or "?"].append(path)
    # Without security groups (an NLB made so) its node rules can only name its subnets.
    source = lb.security_groups[0] if lb.security_groups else ", ".join((*lb.subnet_cidrs, *lb.subnet_ipv6_cidrs))
    for group_id, group_paths in sorted(by_group.items()):
        ports = sorted({p for path in group_paths for p in path.missing_ports})
        spans = _spans({m for path in group_paths for m in path.missing})
        permissions = (_permissions(spans, source, 'restored-by-hand') if lb.security_groups else
                       clients.cidr_permissions(spans, (*lb.subnet_cidrs, *lb.subnet_ipv6_cidrs), 'restored-by-hand'))
        yield Finding(
            code="ACCESS_REVOKED",
            severity=Severity.CRITICAL,
            load_balancer=lb.name,
            security_group=group_id,
            paths=_keys(group_paths),
            message=(
                f"{controllers.lb_label(lb)} cannot reach {len(group_paths)} target(s) on port(s) "
                f"{', '.join(map(str, ports))} through {group_id}: admit {_span_text(spans)} from {source} again, "
                f"with a description of your own (never the v2 label), e.g. `aws ec2 authorize-security-group-ingress "
                f"--group-id {group_id} --ip-permissions {permissions}`."
            ),
        )


def egress_blocked(lb: LoadBalancer, paths: tuple[PathResult, ...]) -> Iterable[Finding]:
    """One finding per destination group: the ALB's SGs let none of its traffic out to them."""
    by_group: dict[str, list[PathResult]] = defaultdict(list)
    for path in paths:
        if path.egress_allowed is False and path.judged:
            by_group[path.node_security_group or (path.security_groups or ("?",))[0]].append(path)
    sg = lb.security_groups[0] if lb.security_groups else "?"
    for group_id, group_paths in sorted(by_group.items()):
        spans = _spans({m for path in group_paths for m in path.egress_missing})
        ports = sorted({port for path in group_paths for _, port in path.egress_missing})
        yield Finding(
            code="EGRESS_BLOCKED",
            severity=Severity.CRITICAL,
            load_balancer=lb.name,
            security_group=sg,
            paths=_keys(group_paths),
            message=(
                f"{controllers.lb_label(lb)} cannot send to {len(group_paths)} target(s) behind {group_id} on "
                f"port(s) {', '.join(map(str, ports))}: its security group(s) {', '.join(lb.security_groups)} "
                f"allow no outbound {_span_text(spans)} to them; allow it, e.g. `aws ec2 "
                f"authorize-security-group-egress --group-id {sg} --ip-permissions "
                f"{_permissions(spans, group_id, 'alb-to-targets')}`."
            ),
        )


def _keys(paths: Iterable[PathResult]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted({(p.target_group_arn, p.target) for p in paths}))
