"""The clients of a network load balancer that preserves their addresses: which ranges they send
from, whether a target's rules admit them on the traffic port, and the finding when they do not.

With client IP preservation on, a target sees the client's address, not the NLB's: a node rule
that admits only the NLB's subnets passes every health check (those come from the NLB's own
addresses) while every client is dropped. Pure: the path's rules and the load balancer in, a
verdict out.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from monitor.core import controllers, coverage
from monitor.core.coverage import Need, Peer, Verdict
from monitor.core.model import Finding, LoadBalancer, PathResult, Rule, Severity, Target, TargetGroup

# Target group protocols of a network load balancer: the only ones with preserve_client_ip.enabled.
NETWORK_PROTOCOLS = frozenset({"TCP", "UDP", "TCP_UDP", "TLS"})
ANYWHERE = {4: "0.0.0.0/0", 6: "::/0"}


def default_preserve(target_type: str, protocol: str) -> bool:
    """AWS's default when the attribute is unset: on for instance targets and for UDP and TCP_UDP,
    off for ip targets with TCP or TLS ("Client IP preservation", Network Load Balancers guide)."""
    return target_type == "instance" or (protocol or "").upper() in ("UDP", "TCP_UDP")


def preserves(lb: LoadBalancer, tg: TargetGroup) -> bool | None:
    """Whether this path's targets see client addresses; None when the attribute was not read."""
    if lb.lb_type != "network":
        return False  # an ALB always sends from its own addresses
    return tg.preserve_client_ip


def ranges(lb: LoadBalancer, family: int) -> tuple[str, ...] | None:
    """The client ranges of one IP version that must be admitted; None when not known. The Service's
    loadBalancerSourceRanges when it names some, else everyone for an internet-facing NLB (IPv6
    only when it is dualstack), else the VPC's CIDRs for an internal one. Traffic to a target of the
    other version is translated by the NLB and arrives from its own addresses, so it is not counted."""
    if lb.client_ranges is None:
        return None
    if lb.client_ranges:
        found = lb.client_ranges
    elif lb.scheme == "internal":
        if not lb.vpc_cidrs:
            return None
        found = lb.vpc_cidrs
    else:
        found = (ANYWHERE[4], ANYWHERE[6]) if lb.ip_address_type.startswith("dualstack") else (ANYWHERE[4],)
    return tuple(r for r in found if (":" in r) == (family == 6))


@dataclass(frozen=True)
class Clients:
    admitted: bool | None = True
    missing: tuple[str, ...] = ()  # the ranges no rule admits, when admitted is False


def judge(lb: LoadBalancer, tg: TargetGroup, target: Target, needs: tuple[Need, ...], rules: list[Rule],
          source: Peer, prefix_lists: Mapping[str, tuple[str, ...]], complete: bool) -> tuple[Verdict, Clients]:
    """The path's verdict (`covered`) and its clients'.

    `covered` stays the verdict from the load balancer's own groups and subnets: what remediation
    learns covering rules from and restores lost ones by. For a preserving NLB only the health check
    comes from those subnets; its traffic comes from the clients. So a traffic need that is not also
    the health check's counts as covered when the clients are admitted for it (and unknown when they
    cannot be known): the rules remembered for it are then client rules (CIDR, never restored) or a
    reference to the NLB's group (restored exactly as lost), and a client range never admitted is
    CLIENTS_NOT_ADMITTED, not a lost rule to restore."""
    verdict = coverage.cover(rules, needs, source, prefix_lists, rules_complete=complete)
    preserving = preserves(lb, tg)
    if preserving is False:
        return verdict, Clients()
    traffic = tuple(n for n in needs if n in traffic_needs(tg, target))
    found = None if preserving is None else ranges(lb, source.family)

    def from_clients(wanted: tuple[Need, ...], networks: tuple[str, ...] | None = found) -> Verdict:
        if networks is None:
            return Verdict(None)
        if not networks:
            return Verdict(True)  # no client of this IP version: nothing to admit
        return coverage.cover(rules, wanted, Peer(source.groups, networks, source.family), prefix_lists,
                              rules_complete=complete)

    admitted = from_clients(traffic)
    missing: tuple[str, ...] = ()
    if admitted.covered is False:
        missing = tuple(r for r in found or () if from_clients(traffic, (r,)).covered is False)
    if verdict.covered is not True:
        health = (coverage.health_check_protocol(tg.health_check_protocol), tg.health_port_for(target))
        verdict = _need_by_need(rules, needs, [n for n in traffic if n != health], source, from_clients,
                                prefix_lists, complete)
    return verdict, Clients(admitted.covered, missing)


def traffic_needs(tg: TargetGroup, target: Target) -> set[Need]:
    """The traffic port with the target group's protocol(s), health check apart."""
    return {(protocol, target.port) for protocol in coverage.traffic_protocols(tg.protocol)}


def _need_by_need(rules, needs, clients_only, source: Peer, from_clients, prefix_lists, complete) -> Verdict:
    """`covered`, one need at a time: those in `clients_only` are covered when the subnets or the
    clients are admitted for them."""
    parts = []
    for need in needs:
        part = coverage.cover(rules, (need,), source, prefix_lists, rules_complete=complete)
        if part.covered is not True and need in clients_only:
            other = from_clients((need,))
            if other.covered is True or (other.covered is None and part.covered is False):
                part = Verdict(other.covered, other.covered_by)
        parts.append(part)
    used = tuple(sorted({i for p in parts for i in p.covered_by}))
    if any(p.covered is False for p in parts):
        return Verdict(False, used, tuple(m for p in parts for m in p.missing))
    return Verdict(None if any(p.covered is None for p in parts) else True, used)


def not_admitted(lb: LoadBalancer, paths: Iterable[PathResult], target_groups: Iterable[TargetGroup]) -> list[Finding]:
    """CLIENTS_NOT_ADMITTED: one per target group and node security group whose clients are dropped."""
    groups = {tg.arn: tg for tg in target_groups}
    by_key: dict[tuple[str, str], list[PathResult]] = defaultdict(list)
    for path in paths:
        if path.clients_admitted is False:
            by_key[(path.target_group_arn, path.node_security_group or (path.security_groups or ("?",))[0])].append(path)
    found = []
    for (tg_arn, group_id), group_paths in sorted(by_key.items()):
        tg = groups.get(tg_arn)
        ports = sorted({t.port for t in (tg.targets or ()) if tg and t.target_id in {p.target for p in group_paths}})
        protocols = coverage.traffic_protocols(tg.protocol if tg else "")
        missing = sorted({r for p in group_paths for r in p.clients_missing})
        spans = ", ".join(f"{p} {port}" for p in protocols for port in ports)
        found.append(Finding(
            code="CLIENTS_NOT_ADMITTED",
            severity=Severity.CRITICAL,
            load_balancer=lb.name,
            security_group=group_id,
            message=(
                f"{controllers.lb_label(lb)} preserves client addresses (target group {tg.name if tg else tg_arn}): "
                f"its {len(group_paths)} target(s) behind {group_id} see the clients' addresses on {spans}, and no "
                f"rule admits {', '.join(missing)}; health checks pass (they come from the load balancer's own "
                f"subnets) while every such client is dropped: admit the clients on the traffic port, e.g. "
                f"`aws ec2 authorize-security-group-ingress --group-id {group_id} --ip-permissions "
                f"{cidr_permissions([(p, port, port) for p in protocols for port in ports], missing, 'clients')}`"
                + (f", or from the load balancer's group {lb.security_groups[0]}" if lb.security_groups else "")
                + ", or turn preserve_client_ip.enabled off on the target group."
            ),
        ))
    return found


def cidr_permissions(spans: list[tuple[str, int, int]], cidrs: Iterable[str], description: str) -> str:
    """--ip-permissions admitting port spans from address ranges: the fix for a load balancer
    without security groups, whose node rules can only name its subnets."""
    cidrs = list(cidrs)
    v4 = ",".join(f"{{CidrIp={c},Description={description}}}" for c in cidrs if ":" not in c)
    v6 = ",".join(f"{{CidrIpv6={c},Description={description}}}" for c in cidrs if ":" in c)
    ranges_text = ",".join(p for p in (f"IpRanges=[{v4}]" if v4 else "", f"Ipv6Ranges=[{v6}]" if v6 else "") if p)
    return " ".join(f"'IpProtocol={p},FromPort={lo},ToPort={hi},{ranges_text}'" for p, lo, hi in spans)
