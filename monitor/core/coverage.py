"""Whether a set of security-group rules lets one end reach the other, per protocol and port, over
the union of the rules: a reference to one of the other end's groups, or CIDR rules and prefix-list
entries that together cover every address the other end sends from (or receives on).

Pure: rules, the other end and the prefix lists' entries in; a verdict out. The same test serves
the targets' inbound rules (from the load balancer's subnets) and the load balancer's outbound
rules (to the target's address).
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from monitor.core.model import PeerKind, Rule

Need = tuple[str, int]  # (protocol, port): "tcp" or "udp", and a port number
TCP, UDP = "tcp", "udp"
# Rules may name a protocol by number (IANA): 6 is tcp, 17 is udp.
_BY_NUMBER = {"6": TCP, "17": UDP}
_NetworkList = list[ipaddress.IPv4Network | ipaddress.IPv6Network]


def traffic_protocols(target_group_protocol: str) -> tuple[str, ...]:
    """What a target group's traffic travels as: HTTP, HTTPS, TCP and TLS over tcp, UDP over udp,
    TCP_UDP over both (Elastic Load Balancing target group protocols)."""
    protocol = (target_group_protocol or "").upper()
    if protocol == "UDP":
        return (UDP,)
    if protocol == "TCP_UDP":
        return (TCP, UDP)
    return (TCP,)


def health_check_protocol(protocol: str) -> str:
    """Health checks are HTTP, HTTPS or TCP: all tcp."""
    return TCP


def rule_protocol(rule: Rule) -> str:
    return _BY_NUMBER.get(rule.protocol, rule.protocol)


def admits(rule: Rule, need: Need) -> bool:
    """Whether the rule's protocol and port range take in this protocol and port (-1: everything)."""
    protocol, port = need
    if rule.protocol == "-1":
        return True
    if rule_protocol(rule) != protocol or rule.from_port is None or rule.to_port is None:
        return False
    return rule.from_port <= port <= rule.to_port


def coverage_id(rule: Rule) -> str:
    """How a covering rule is named in a path's covered_by: its id, else a text form."""
    return rule.rule_id or f"{rule.group_id}:{rule.ports_text()}:{rule.peer}"


@dataclass(frozen=True)
class Peer:
    """The other end of a path, as the rules must see it.

    `groups`: the security groups a rule may reference to admit it (None: not known).
    `networks`: the address ranges that must all be covered by CIDR rules (the load balancer's
    subnets, or the target's own address); None when they could not be read.
    `family`: 4 or 6, the IP version the traffic uses; only CIDRs of that version count."""

    groups: frozenset[str] | None
    networks: tuple[str, ...] | None
    family: int = 4


@dataclass(frozen=True)
class Verdict:
    covered: bool | None  # None: something it depends on was not read
    covered_by: tuple[str, ...] = ()
    missing: tuple[Need, ...] = ()  # what no rule admits, when covered is False


def cover(rules: Iterable[Rule], needs: Iterable[Need], peer: Peer, prefix_lists: Mapping[str, tuple[str, ...]],
          rules_complete: bool = True) -> Verdict:
    """The verdict over every need. `rules_complete`: every group whose rules count was read (a
    rule on an unread group might still admit what is missing, so then nothing is ever False)."""
    rules = tuple(rules)
    contributors: set[str] = set()
    missing: list[Need] = []
    unknown = False
    for need in needs:
        state, used = _one(rules, need, peer, prefix_lists)
        contributors.update(used)
        if state is False:
            missing.append(need)
        elif state is None:
            unknown = True
    if missing and rules_complete:
        return Verdict(False, tuple(sorted(contributors)), tuple(missing))
    if missing or unknown:
        return Verdict(None, tuple(sorted(contributors)))
    return Verdict(True, tuple(sorted(contributors)))


def _one(rules: tuple[Rule, ...], need: Need, peer: Peer, prefix_lists: Mapping[str, tuple[str, ...]]):
    """(covered: bool | None, the rules that make it so) for one protocol and port."""
    admitting = [r for r in rules if admits(r, need)]
    by_group = [r for r in admitting if r.peer_kind is PeerKind.SECURITY_GROUP
                and peer.groups is not None and r.peer in peer.groups]
    cidr_rules = []
    networks: _NetworkList = []
    unread = False  # a prefix list whose entries are not known
    for rule in admitting:
        if rule.peer_kind in (PeerKind.CIDR, PeerKind.CIDR6):
            found = _networks([rule.peer], peer.family)
        elif rule.peer_kind is PeerKind.PREFIX_LIST:
            if rule.peer not in prefix_lists:
                unread = True
                continue
            found = _networks(prefix_lists[rule.peer], peer.family)
        else:
            continue
        if found:
            cidr_rules.append((rule, found))
            networks.extend(found)
    by_cidr = _union_covers(networks, peer)
    used = {coverage_id(r) for r in by_group}
    if by_cidr:
        used.update(coverage_id(r) for r, found in cidr_rules if _overlaps(found, peer))
    if by_group or by_cidr:
        return True, used
    if unread or (peer.networks is None and networks) or (peer.groups is None):
        return None, used
    return False, used


def _networks(cidrs: Iterable[str], family: int) -> _NetworkList:
    found: _NetworkList = []
    for cidr in cidrs:
        network = _network(cidr)
        if network is not None and network.version == family:
            found.append(network)
    return found


@functools.lru_cache(maxsize=8192)
def _network(cidr: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    """A CIDR parsed once: the same few CIDRs (node rules, subnets) recur on every path of every
    check, and parsing them was most of a steady check's CPU at a few hundred ALBs."""
    try:
        return ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        return None


def _required(peer: Peer) -> _NetworkList:
    return _networks(peer.networks or (), peer.family)


def _union_covers(networks: _NetworkList, peer: Peer) -> bool:
    """Every required range lies inside the union of `networks` (0.0.0.0/0 or ::/0: everything)."""
    if any(n.prefixlen == 0 for n in networks):
        return True
    required = _required(peer)
    if peer.networks is None or not required:
        return False
    left = required
    for network in networks:
        left = [piece for part in left for piece in _minus(part, network)]
        if not left:
            return True
    return False


def _minus(part, network) -> list:
    """`part` with `network` taken out, as a list of networks."""
    if part.subnet_of(network):
        return []
    if network.subnet_of(part):
        return list(part.address_exclude(network))
    return [part]


def _overlaps(found: _NetworkList, peer: Peer) -> bool:
    required = _required(peer)
    return any(n.prefixlen == 0 or any(n.overlaps(r) for r in required) for n in found)
