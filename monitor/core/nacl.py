"""Whether the subnets' network ACLs pass a load balancer's traffic to a target, and the replies.

Network ACLs are stateless: a request leaves the load balancer's subnet (its ACL's outbound
entries, towards the target's address) and enters the target's subnet (inbound entries, from the
load balancer subnet's CIDR) on each port the path needs; the replies go back on 1024-65535 the
other way. Entries are read lowest rule number first and the first that matches decides; what no
entry matches meets the final `*` deny. Traffic inside one subnet is not filtered.
"""

from __future__ import annotations

import functools
import ipaddress
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from monitor.core import controllers
from monitor.core.model import (
    Finding,
    LoadBalancer,
    NaclBlock,
    NaclEntry,
    NetworkAcl,
    Observation,
    Severity,
    Target,
)

REPLY_PORTS = (1024, 65535)  # where a load balancer's connections come from, so where replies go
_PROTOCOL_NUMBERS = {"tcp": "6", "udp": "17"}
_ALL_PORTS = (0, 65535)
FINAL_RULE = 32767  # AWS lists the final deny with this number; it is shown as "*"

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Piece = tuple[Network, int, int]  # addresses × a port interval still undecided


@dataclass(frozen=True)
class Verdict:
    allowed: bool | None
    blocked: tuple[NaclBlock, ...] = ()


@dataclass(frozen=True)
class Acls:
    """The network ACLs of a check, indexed: which ACL filters each subnet."""

    read: bool | None
    by_subnet: dict[str, NetworkAcl]
    default_of_vpc: dict[str, NetworkAcl]

    def of(self, subnet_id: str, vpc_id: str | None) -> NetworkAcl | None:
        """The subnet's ACL: the one it is associated with, else its VPC's default (None: unknown)."""
        acl = self.by_subnet.get(subnet_id)
        if acl is None and vpc_id:
            acl = self.default_of_vpc.get(vpc_id)
        return acl


def index(observation: Observation) -> Acls:
    by_subnet: dict[str, NetworkAcl] = {}
    defaults: dict[str, NetworkAcl] = {}
    for acl in observation.network_acls:
        for subnet in acl.subnet_ids:
            by_subnet[subnet] = acl
        if acl.is_default:
            defaults[acl.vpc_id] = acl
    return Acls(observation.network_acls_read, by_subnet, defaults)


def judge(acls: Acls, lb: LoadBalancer, target: Target, needs: Iterable[tuple[str, int]], family: int,
          address: str | None) -> Verdict:
    """The verdict of the ACLs between every subnet of `lb` (an ALB is cross-zone) and the target's."""
    if acls.read is None:
        return Verdict(True)  # not part of this observation
    if acls.read is False or not lb.subnets_read or target.subnet_id is None or address is None:
        return Verdict(None)
    target_acl = acls.of(target.subnet_id, target.vpc_id or lb.vpc_id)
    blocks: list[NaclBlock] = []
    unknown = False
    needs = tuple(needs)
    for subnet in lb.subnets:
        if subnet.subnet_id == target.subnet_id:
            continue  # inside one subnet, no ACL is crossed
        cidrs = subnet.ipv6_cidrs if family == 6 else ((subnet.cidr,) if subnet.cidr else ())
        if not cidrs:
            continue  # the load balancer sends nothing of this family from there
        lb_acl = acls.of(subnet.subnet_id, lb.vpc_id)
        if lb_acl is None or target_acl is None:
            unknown = True
            continue
        for protocol, port in needs:
            blocks.extend(_pair(lb_acl, subnet.subnet_id, target_acl, target.subnet_id, protocol, port, cidrs,
                                address, family))
    if blocks:
        return Verdict(False, tuple(dict.fromkeys(blocks)))
    return Verdict(None if unknown else True)


def _pair(lb_acl: NetworkAcl, lb_subnet: str, target_acl: NetworkAcl, target_subnet: str, protocol: str, port: int,
          cidrs: tuple[str, ...], address: str, family: int) -> list[NaclBlock]:
    """The four crossings of one need between one load balancer subnet and the target's subnet."""
    if protocol not in _PROTOCOL_NUMBERS:
        return []
    host = f"{address}/{32 if family == 4 else 128}"
    found = []
    for cidr in cidrs:
        crossings = (
            (lb_acl, lb_subnet, True, host, (port, port), False),  # the request leaves
            (target_acl, target_subnet, False, cidr, (port, port), False),  # and enters
            (target_acl, target_subnet, True, cidr, REPLY_PORTS, True),  # the reply leaves
            (lb_acl, lb_subnet, False, host, REPLY_PORTS, True),  # and comes back
        )
        for acl, subnet, egress, peer, ports, reply in crossings:
            rule = first_deny(acl.entries, egress, protocol, peer, ports, family)
            if rule is not None:
                found.append(NaclBlock(acl.acl_id, rule, egress, subnet, protocol, ports[0], ports[1], peer, reply))
    return found


@functools.lru_cache(maxsize=4096)
def first_deny(entries: tuple[NaclEntry, ...], egress: bool, protocol: str, peer: str, ports: tuple[int, int],
               family: int) -> str | None:
    """The entry that denies some of `peer` × `ports` (its rule number, or "*"), or None when the
    entries allow all of it. Walks the entries in order keeping what is still undecided: an allow
    decides what it covers, a deny touching anything undecided blocks. Remembered: every check asks
    again for the same few addresses (nodes behind many load balancers) through the same entries."""
    number = _PROTOCOL_NUMBERS.get(protocol, protocol)
    undecided: list[Piece] = [(ipaddress.ip_network(peer, strict=False), ports[0], ports[1])]
    ordered = sorted((e for e in entries if e.egress is egress), key=lambda e: e.rule_number)
    for entry in ordered:
        if entry.protocol not in ("-1", number):
            continue
        network = _network(entry.cidr)
        if network is None or network.version != family:
            continue
        low, high = _ports(entry)
        touched = [p for p in undecided if p[0].overlaps(network) and p[1] <= high and low <= p[2]]
        if not touched:
            continue
        if not entry.allow:
            return "*" if entry.rule_number >= FINAL_RULE else str(entry.rule_number)
        undecided = [rest for piece in undecided for rest in _minus(piece, network, low, high)]
        if not undecided:
            return None
    return "*"


def _minus(piece: Piece, network: Network, low: int, high: int) -> list[Piece]:
    """`piece` without network × [low, high]. Two CIDRs are either nested or apart."""
    addresses, lo, hi = piece
    if not addresses.overlaps(network) or hi < low or high < lo:
        return [piece]
    rest: list[Piece] = []
    if not network.supernet_of(addresses):  # the entry's CIDR is smaller: the addresses outside it stay
        rest.extend((part, lo, hi) for part in addresses.address_exclude(network))
    inside = network if not network.supernet_of(addresses) else addresses
    if lo < low:
        rest.append((inside, lo, low - 1))
    if high < hi:
        rest.append((inside, high + 1, hi))
    return rest


def _network(cidr: str) -> Network | None:
    try:
        return ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        return None


def _ports(entry: NaclEntry) -> tuple[int, int]:
    if entry.protocol == "-1" or entry.from_port is None or entry.to_port is None:
        return _ALL_PORTS
    return entry.from_port, entry.to_port


def findings(lb: LoadBalancer, paths: Iterable) -> list[Finding]:
    """One NACL_BLOCKED per (ACL, rule, direction): what it stops and the entry that would pass it."""
    by_entry: dict[tuple[str, str, bool], list[tuple[object, NaclBlock]]] = defaultdict(list)
    for path in paths:
        for block in path.nacl_blocked:
            by_entry[(block.acl_id, block.rule, block.egress)].append((path, block))
    out = []
    for (acl_id, rule, egress), hits in sorted(by_entry.items(), key=lambda kv: (kv[0][0], _order(kv[0][1]), kv[0][2])):
        blocks = list(dict.fromkeys(block for _, block in hits))
        targets = len({path.target for path, _ in hits})
        subnets = ", ".join(sorted({b.subnet_id for b in blocks}))
        first = blocks[0]
        where = "its final rule *, which no entry before it overrides" if rule == "*" else f"rule {rule}"
        peers = sorted({b.peer for b in blocks} - {first.peer})
        more = f" and the same for {', '.join(peers)}" if peers else ""
        stopped = "; ".join(_stopped(b) for b in blocks[:3]) + (f"; and {len(blocks) - 3} more" if len(blocks) > 3 else "")
        number = "<a free number>" if rule == "*" else f"<a free number below {rule}>"
        family = "--ipv6-cidr-block" if ":" in first.peer else "--cidr-block"
        fix = (f"aws ec2 create-network-acl-entry --network-acl-id {acl_id} {'--egress' if egress else '--ingress'} "
               f"--rule-number {number} --protocol {first.protocol} --port-range From={first.from_port},"
               f"To={first.to_port} {family} {first.peer} --rule-action allow")
        replace_hint = "" if rule == "*" else (
            f" (or turn rule {rule} into an allow with `aws ec2 replace-network-acl-entry`, if nothing else needs it denied)")
        out.append(Finding(
            code="NACL_BLOCKED",
            severity=Severity.CRITICAL,
            load_balancer=lb.name,
            paths=tuple(sorted({(path.target_group_arn, path.target) for path, _ in hits})),
            message=(
                f"{controllers.lb_label(lb)} cannot reach {targets} target(s): network ACL {acl_id} of subnet(s) "
                f"{subnets} denies {first.direction} {stopped} at {where} (network ACLs are stateless: the "
                f"requests and their replies each need an allow); allow it ahead of that rule, e.g. `{fix}`"
                f"{more}{replace_hint}."
            ),
        ))
    return out


def _stopped(block: NaclBlock) -> str:
    ports = f"{block.protocol} {block.from_port}" if block.from_port == block.to_port else (
        f"{block.protocol} {block.from_port}-{block.to_port}")
    what = f"the replies on {ports}" if block.reply else ports
    return f"{what} {'to' if block.egress else 'from'} {block.peer}"


def _order(rule: str) -> int:
    return FINAL_RULE if rule == "*" else int(rule)
