"""The fast rule check: the inbound rules on every target SG, the outbound rules on every ALB SG,
and each ALB's current SG list.

Costs one paginated DescribeLoadBalancers (400 a page), one paginated DescribeNetworkAcls (the
load balancers' and targets' VPCs, monitor/aws/nacls.py) and one paginated
DescribeSecurityGroupRules per 200 group ids (targets' and ALBs' SGs in one filter, 1,000 rules a
page) a cycle. With more than 200 groups (an SG per ALB: from 200 ALBs on) the account's whole listing is often cheaper: it is
tried, and used while it takes fewer pages than the filtered calls would; when it would take as
many, it is dropped after that many pages and not tried again for an hour. The rules-per-group
quota (monitor/aws/quota.py) is read once for the reader's life, by the first check unless asked
before.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from monitor.aws.calls import (
    EC2_FILTER_VALUES,
    EC2_PAGE,
    ELB_PAGE,
    attempt,
    chunks,
    contradiction,
    pages,
    paginate,
    scope_of,
    tag_pairs,
)
from monitor.aws.discover import describe_groups, listed_by_arn, listed_item
from monitor.aws.nacls import read_network_acls
from monitor.aws.quota import read_rule_quota
from monitor.aws.session import AwsClients
from monitor.core.model import Observation, PeerKind, ReadFailure, Rule, RuleQuota, SecurityGroup, Topology

WHOLE_LISTING_RETRY_SECONDS = 3600.0  # a whole listing found dearer is not tried again for this long
_DEARER = object()


@dataclass(frozen=True, slots=True)
class Listed:
    """What a check keeps of the load balancer listing."""

    groups: tuple[tuple[str, tuple[str, ...]], ...]  # the known load balancers' security groups as listed
    arns: frozenset[str]  # every load balancer listed


class RuleReader:
    """Reads rules each cycle; remembers rule sources and prefix lists it had to look up, so a
    steady state costs no extra calls."""

    def __init__(self, clients: AwsClients, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._clients = clients
        self._monotonic = monotonic
        self._whole_after = 0.0  # when the account's whole listing may be tried again (found dearer)
        self._groups: dict[str, SecurityGroup] = {}
        self._prefix_lists: dict[str, tuple[str, ...]] = {}
        # The last listing's items for the load balancers the topology lacks or lists with other
        # security groups: what an incremental discovery starts from. Only those few are kept.
        self._changed: dict[str, dict] = {}
        self._quota: RuleQuota | None = None  # the rules-per-group quota, read once
        self._known: dict[Rule, Rule] = {}  # the last check's rules, to hand out the same objects again

    def listed(self, arns: frozenset[str] | set[str]) -> list[dict]:
        """The DescribeLoadBalancers items of these load balancers, as the last check listed them
        (those it did not list are left out)."""
        changed = self._changed
        return [changed[arn] for arn in sorted(arns) if arn in changed]

    def read(self, topology: Topology, list_load_balancers: bool = True) -> Observation:
        """The rules (and network ACLs) behind `topology`; with the load balancer listing unless told
        not to (then nothing is known of load balancers come, gone or changed: the topology's stand)."""
        listed, failures = self.list_load_balancers(topology) if list_load_balancers else (None, ())
        return self.read_rules(topology, listed, failures)

    def list_load_balancers(self, topology: Topology) -> tuple[Listed | None, tuple[ReadFailure, ...]]:
        """The load balancer listing against `topology` (None when it failed), and its failures."""
        failures: list[ReadFailure] = []
        return self._load_balancers(topology, failures), tuple(failures)

    def read_rules(self, topology: Topology, live: Listed | None, listing_failures: tuple[ReadFailure, ...] = ()
                   ) -> Observation:
        """The rules (and network ACLs) behind `topology`, with the listing `live` read before (None:
        not read, or failed with `listing_failures`)."""
        failures = list(listing_failures)
        target_groups = topology.target_group_ids
        # The ALBs' SGs as discovered and as listed now: their outbound rules decide whether the
        # ALB may send to its targets at all.
        lb_groups = {g for lb in topology.load_balancers for g in lb.security_groups}
        lb_groups.update(g for _, groups in (live.groups if live is not None else ()) for g in groups)
        group_ids = sorted(target_groups | lb_groups)
        rules: list[Rule] = []
        egress: list[Rule] = []
        wanted = {True: lb_groups, False: target_groups}  # by direction (egress or not)
        raw, read = self._rules_of(group_ids, failures, wanted)
        known, self._known = self._known, {}
        for item in raw:
            # Only the directions that matter: everything downstream treats `rules` as what admits
            # traffic into targets, so an ALB SG's inbound rules stay out of it (and a whole
            # listing's rules of other groups are dropped here, before they are read into Rules).
            if not _is_wanted(item, wanted):
                continue
            rule = to_rule(item)
            if rule is not None:
                # The same rule as the last check read is the same object: one copy held, and the
                # verdict carried over (monitor.core.carry) compares it at once.
                rule = self._known.setdefault(rule, known.get(rule, rule))
                (egress if rule.egress else rules).append(rule)
        extra = self._sources(topology, rules, failures)
        prefix_lists = self._resolve_prefix_lists([*rules, *egress], failures)
        lb_groups, live_arns = (live.groups, live.arns) if live is not None else ((), None)
        new_arns = live.arns - topology.known_lb_arns if live is not None else frozenset()
        # Network ACLs change like rules do, so they are read with them: one request a check.
        acls, acls_read = read_network_acls(self._clients, topology, failures)
        return Observation(
            rules=tuple(rules),
            read_groups=frozenset(read),
            lb_security_groups=lb_groups,
            live_lb_arns=live_arns,
            new_lb_arns=new_arns,
            extra_groups=extra,
            prefix_lists=prefix_lists,
            failures=tuple(failures),
            egress_rules=tuple(egress),
            rule_quota=self.read_quota(),
            network_acls=acls,
            network_acls_read=acls_read,
        )

    def with_listing(self, topology: Topology, observation: Observation) -> Observation:
        """`observation` (read without the load balancer listing) completed by the listing read now."""
        failures = list(observation.failures)
        live = self._load_balancers(topology, failures)
        if live is None:
            return replace(observation, failures=tuple(failures))
        return replace(observation, lb_security_groups=live.groups, live_lb_arns=live.arns,
                       new_lb_arns=live.arns - topology.known_lb_arns)

    def with_load_balancers(self, topology: Topology, observation: Observation, arns: list[str]) -> Observation:
        """`observation` (read without the listing) completed by a read of these known load balancers
        by ARN (20 a call): those AWS says are gone are missing from it (unknown until an update
        drops them), the others have their security groups as read now; those whose read failed are
        missing too (unknown, never judged on the older stand). What was not asked keeps the
        topology's stand."""
        failures = list(observation.failures)
        items, gone = listed_by_arn(self._clients, arns, failures)
        ours = {lb.arn: set(lb.security_groups) for lb in topology.load_balancers}
        groups: list[tuple[str, tuple[str, ...]]] = []
        for lb in items:  # their items join the last listing's: what the update asked for reads
            _take(lb, ours, topology.known_lb_arns, groups, self._changed)
        unread = set(arns) - gone - {arn for arn, _ in groups}
        live = frozenset(lb.arn for lb in topology.load_balancers) - gone - unread
        return replace(observation, lb_security_groups=tuple(groups), live_lb_arns=live,
                       failures=tuple(failures))

    def read_quota(self) -> RuleQuota:
        """The rules-per-group quota: read the first time (the daemon asks at its first discovery,
        off the check's deadline), then the same value for the reader's life."""
        if self._quota is None:
            self._quota = read_rule_quota(self._clients)
        return self._quota

    def _rules_of(self, group_ids: list[str], failures: list[ReadFailure],
                  wanted: dict[bool, set[str]] | None = None) -> tuple[list[dict], set[str]]:
        """The rules of these groups and the groups read completely. A whole listing keeps, page by
        page, only the rules `wanted` by direction (all of them when None). A failed whole listing leaves every group
        unread: unknown, not retried filtered in the same cycle (a throttled account would only be
        asked more)."""
        batches = list(chunks(group_ids, EC2_FILTER_VALUES))
        if len(batches) > 1 and self._monotonic() >= self._whole_after:
            whole = attempt(failures, "ec2", "DescribeSecurityGroupRules",
                            lambda: self._whole_listing(len(batches) - 1, wanted), "every group of the account")
            if whole is None:
                return [], set()
            if whole is _DEARER:
                self._whole_after = self._monotonic() + WHOLE_LISTING_RETRY_SECONDS
            elif whole[1]:
                return whole[0], set(group_ids)
            # else: an account holding the groups asked about has rules, so an empty whole listing
            # is doubted: the filtered calls, each checked in turn, read the groups instead.
        raw: list[dict] = []
        read: set[str] = set()
        for batch in batches:
            found = attempt(failures, "ec2", "DescribeSecurityGroupRules",
                            lambda: paginate(self._clients.ec2, "describe_security_group_rules", "SecurityGroupRules",
                                             EC2_PAGE, Filters=[{"Name": "group-id", "Values": batch}]),
                            scope_of(batch))
            if found == [] and not self._truly_ruleless(batch, failures):
                continue
            if found is not None:
                raw.extend(found)
                read.update(batch)
        return raw, read

    def _truly_ruleless(self, batch: list[str], failures: list[ReadFailure]) -> bool:
        """No rule at all for any group asked (an ALB's group always has some): believed only when
        DescribeSecurityGroups, which lists each group's rules too, agrees. One extra read, on this
        path only."""
        groups = attempt(failures, "ec2", "DescribeSecurityGroups",
                         lambda: paginate(self._clients.ec2, "describe_security_groups", "SecurityGroups", EC2_PAGE,
                                          Filters=[{"Name": "group-id", "Values": batch}]),
                         scope_of(batch))
        if groups is None:
            return False
        holding = [g["GroupId"] for g in groups if g.get("IpPermissions") or g.get("IpPermissionsEgress")]
        if holding:
            contradiction(failures, "ec2", "DescribeSecurityGroupRules",
                          f"no rule listed for any of {len(batch)} groups, yet DescribeSecurityGroups shows rules "
                          f"on {scope_of(holding)}", scope_of(batch))
        return not holding

    def _whole_listing(self, most_pages: int, wanted: dict[bool, set[str]] | None) -> tuple[list[dict], int] | object:
        """The account's and region's rules of the `wanted` groups, and how many rules it listed in
        all; or _DEARER when it takes more than `most_pages` pages (the filtered calls cost no more).
        The other groups' rules are dropped with their page."""
        items: list[dict] = []
        listed = 0
        listing = pages(self._clients.ec2, "describe_security_group_rules", EC2_PAGE)
        for count, page in enumerate(listing, start=1):
            if count > most_pages:
                return _DEARER
            found = page.get("SecurityGroupRules", ())
            listed += len(found)
            items.extend(found if wanted is None else (r for r in found if _is_wanted(r, wanted)))
        return items, listed

    def _load_balancers(self, topology: Topology, failures: list[ReadFailure]) -> Listed | None:
        """Each known ALB's security groups and every ARN listed; page by page, keeping nothing else
        of the listing but the few items an incremental discovery needs."""
        ours = {lb.arn: set(lb.security_groups) for lb in topology.load_balancers}
        groups: list[tuple[str, tuple[str, ...]]] = []
        arns: set[str] = set()
        changed: dict[str, dict] = {}

        def listing() -> None:
            for page in pages(self._clients.elbv2, "describe_load_balancers", ELB_PAGE):
                for lb in page.get("LoadBalancers", ()):
                    arns.add(lb["LoadBalancerArn"])
                    _take(lb, ours, topology.known_lb_arns, groups, changed)

        if attempt(failures, "elbv2", "DescribeLoadBalancers", lambda: listing() or True) is None:
            return None
        self._changed = changed
        return Listed(tuple(groups), frozenset(arns))

    def _sources(self, topology: Topology, rules: list[Rule], failures: list[ReadFailure]) -> tuple[SecurityGroup, ...]:
        """Rule sources the topology did not describe (e.g. a user-made SG on no ALB): needed to
        tell whether a labelled rule's source is controller-owned."""
        known = {g.group_id for g in topology.security_groups}
        wanted = sorted({r.peer for r in rules if r.peer_kind is PeerKind.SECURITY_GROUP} - known - set(self._groups))
        if wanted:
            for group in describe_groups(self._clients, wanted, failures):
                self._groups[group.group_id] = group
        return tuple(self._groups.values())

    def _resolve_prefix_lists(self, rules: list[Rule], failures: list[ReadFailure]):
        for list_id in sorted({r.peer for r in rules if r.peer_kind is PeerKind.PREFIX_LIST} - set(self._prefix_lists)):
            entries = attempt(failures, "ec2", "GetManagedPrefixListEntries",
                              lambda: paginate(self._clients.ec2, "get_managed_prefix_list_entries", "Entries", 100,
                                               PrefixListId=list_id),
                              list_id)
            if entries == []:
                # An empty list admits nothing, but so does an answer emptied on the way, and the
                # two cannot be told apart: unknown (and asked again next cycle), never "no path".
                contradiction(failures, "ec2", "GetManagedPrefixListEntries",
                              "no entry listed for a prefix list a rule refers to", list_id)
            elif entries is not None:
                self._prefix_lists[list_id] = tuple(e["Cidr"] for e in entries)
        return tuple(sorted(self._prefix_lists.items()))


def _is_wanted(raw: dict, wanted: dict[bool, set[str]]) -> bool:
    """Whether a listed rule is of a group wanted in its direction (outbound: True). A rule without
    its group cannot be placed: the check fails (blind) on it, never reads it as no rule."""
    return raw["GroupId"] in wanted[bool(raw.get("IsEgress"))]


def _take(lb: dict, ours: dict[str, set[str]], known: frozenset[str], groups: list[tuple[str, tuple[str, ...]]],
          changed: dict[str, dict]) -> None:
    """One DescribeLoadBalancers item: its security groups kept when it is one of `ours` (ARN ->
    groups discovered), its item kept in `changed` when an update will read it (not `known`, or one
    of ours with other groups; not known although ours: an earlier re-read of it failed)."""
    arn = lb["LoadBalancerArn"]
    mine = ours.get(arn)
    if mine is not None:
        listed = tuple(lb.get("SecurityGroups", ()))
        groups.append((arn, listed))
        if set(listed) != mine or arn not in known:
            changed[arn] = listed_item(lb)
    elif arn not in known:
        changed[arn] = listed_item(lb)


def to_rule(raw: dict) -> Rule | None:
    """One SecurityGroupRule as returned by DescribeSecurityGroupRules, inbound or outbound
    (`egress`, whose peer is the destination)."""
    if raw.get("ReferencedGroupInfo", {}).get("GroupId"):
        kind, peer = PeerKind.SECURITY_GROUP, raw["ReferencedGroupInfo"]["GroupId"]
    elif raw.get("CidrIpv4"):
        kind, peer = PeerKind.CIDR, raw["CidrIpv4"]
    elif raw.get("CidrIpv6"):
        kind, peer = PeerKind.CIDR6, raw["CidrIpv6"]
    elif raw.get("PrefixListId"):
        kind, peer = PeerKind.PREFIX_LIST, raw["PrefixListId"]
    else:
        return None
    protocol = str(raw.get("IpProtocol", "-1"))
    from_port, to_port = raw.get("FromPort"), raw.get("ToPort")
    if protocol == "-1" or from_port == -1:
        from_port = to_port = None
    rule_id = raw.get("SecurityGroupRuleId")
    return Rule(
        group_id=sys.intern(raw["GroupId"]),
        protocol=sys.intern(protocol),
        from_port=from_port,
        to_port=to_port,
        peer_kind=kind,
        peer=sys.intern(peer),
        rule_id=None if rule_id is None else sys.intern(rule_id),
        description=sys.intern(raw.get("Description", "") or ""),
        tags=tag_pairs(raw.get("Tags")),
        egress=bool(raw.get("IsEgress")),
    )
