"""Simulates which labelled node rules the v2 controller's TargetGroupBinding reconcile would revoke.

Follows pkg/networking/networking_manager.go of the AWS Load Balancer Controller (docs/controllers.md, "When v2
revokes a node rule"): the wanted rules are computed from every binding's spec.networking per endpoint
SG; in restricted mode (the default) all ports from one source and protocol merge into one min-max
rule, CIDR peers stay one rule each; a labelled rule whose (protocol, ports, peer) tuple nobody wants
is revoked, the description being no part of the identity; SGs no binding uses, among those tagged
kubernetes.io/cluster/<c>, lose every labelled rule.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from monitor.core import controllers
from monitor.core.cluster_model import TargetGroupBinding
from monitor.core.model import PeerKind, Rule, Topology

_PROTOCOLS = {"6": "tcp", "17": "udp", "tcp": "tcp", "udp": "udp"}
FULL_RANGE = (0, 65535)

# (protocol, peer kind, peer): one source of wanted traffic; ports are merged per source.
Source = tuple[str, str, str]


@dataclass(frozen=True)
class GcPlan:
    """What v2 would do to labelled rules: the rules it revokes, and why the simulation held back."""

    revoked: tuple[Rule, ...]
    no_networking: bool  # no binding has spec.networking: every labelled rule on endpoint SGs goes
    uncertain_sources: frozenset[Source] = frozenset()  # sources whose wanted ports are unknown


def simulate(rules: tuple[Rule, ...] | list[Rule], bindings: tuple[TargetGroupBinding, ...],
             topology: Topology, restricted: bool = True) -> GcPlan:
    groups = {g.group_id: g for g in topology.security_groups}
    tag = controllers.cluster_tag(topology.cluster)
    wanted, uncertain = _wanted(bindings, topology, groups, restricted)
    revoked = []
    for rule in rules:
        if not controllers.has_shared_label(rule.description):
            continue
        group = groups.get(rule.group_id)
        endpoint = rule.group_id in wanted or (group is not None and tag in dict(group.tags))
        if not endpoint:
            continue  # v2 only touches SGs it resolved for a binding or found by the cluster tag
        identity = _identity(rule)
        if identity is None:
            revoked.append(rule)  # all-traffic or prefix-list rules are never wanted by a binding
            continue
        source, ports = identity
        if source in uncertain:
            continue
        if ports not in wanted.get(rule.group_id, {}).get(source, set()):
            revoked.append(rule)
    no_networking = not any(b.networking is not None for b in bindings)
    return GcPlan(revoked=tuple(revoked), no_networking=no_networking, uncertain_sources=frozenset(uncertain))


def _identity(rule: Rule) -> tuple[Source, tuple[int, int]] | None:
    protocol = _PROTOCOLS.get(rule.protocol)
    if protocol is None or rule.peer_kind is PeerKind.PREFIX_LIST:
        return None
    if rule.from_port is None or rule.to_port is None:
        return None
    return (protocol, rule.peer_kind.value, rule.peer), (rule.from_port, rule.to_port)


def _wanted(bindings, topology: Topology, groups, restricted: bool):
    """endpoint SG -> source -> set of wanted (from, to) port ranges; plus sources we cannot pin down."""
    targets_by_arn = {tg.arn: tg for tg in topology.target_groups}
    per_sg: dict[str, dict[Source, list[tuple[int, int]]]] = defaultdict(lambda: defaultdict(list))
    uncertain: set[Source] = set()
    for binding in bindings:
        if binding.networking is None:
            continue
        permissions, named = _permissions(binding)
        uncertain.update(named)
        endpoint_sgs = _endpoint_sgs(targets_by_arn.get(binding.target_group_arn), groups, topology.cluster)
        if endpoint_sgs is None:
            # Where this binding applies is unknown: none of its sources can be judged anywhere.
            uncertain.update(source for source, _ in permissions)
            uncertain.update(named)
            continue
        for sg in endpoint_sgs:
            for source, ports in permissions:
                per_sg[sg][source].append(ports)
    wanted: dict[str, dict[Source, set[tuple[int, int]]]] = {}
    for sg, sources in per_sg.items():
        wanted[sg] = {}
        for source, ranges in sources.items():
            if restricted and source[1] == PeerKind.SECURITY_GROUP.value:
                wanted[sg][source] = {_merged(ranges)}
            else:
                wanted[sg][source] = set(ranges)
    return wanted, uncertain


def _merged(ranges: list[tuple[int, int]]) -> tuple[int, int]:
    # v2 treats a 0-0 permission as every port, then takes the min and max over the rest.
    if any(r == (0, 0) for r in ranges):
        return FULL_RANGE
    return min(r[0] for r in ranges), max(r[1] for r in ranges)


def _permissions(binding: TargetGroupBinding) -> tuple[list[tuple[Source, tuple[int, int]]], set[Source]]:
    permissions: list[tuple[Source, tuple[int, int]]] = []
    named: set[Source] = set()
    for rule in binding.networking or ():
        ports = rule.ports or ()
        for peer in rule.peers:
            if peer.security_group:
                kind, value = PeerKind.SECURITY_GROUP.value, peer.security_group
            elif peer.cidr:
                kind = PeerKind.CIDR6.value if ":" in peer.cidr else PeerKind.CIDR.value
                value = peer.cidr
            else:
                continue
            if not ports:
                permissions.append((("tcp", kind, value), FULL_RANGE))
            for port in ports:
                source = (port.protocol.lower() if port.protocol else "tcp", kind, value)
                if port.port is None:
                    permissions.append((source, FULL_RANGE))
                elif isinstance(port.port, int) or str(port.port).isdigit():
                    number = int(port.port)
                    permissions.append((source, (number, number)))
                else:
                    named.add(source)  # a named port resolves from the pods, which we do not read
    return permissions, named


def _endpoint_sgs(target_group, groups, cluster: str) -> set[str] | None:
    """The SGs v2 resolves for a binding's endpoints: per ENI, its only SG or the single cluster-tagged one."""
    if target_group is None or target_group.targets is None:
        return None
    found: set[str] = set()
    for target in target_group.targets:
        if target.security_groups is None:
            return None
        sg = controllers.node_security_group(target.security_groups, groups, cluster)
        if sg is None:
            return None  # ambiguous: v2 fails this binding (AMBIGUOUS_NODE_SECURITY_GROUP says so)
        found.add(sg)
    return found
