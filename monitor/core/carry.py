"""The verdict carried from one check to the next: a load balancer is judged again only when
something its paths depend on changed, and every other keeps its last judgement.

What a judgement depends on: the load balancer as discovered and its security groups as listed
now; its target groups and their targets; the rules, tags and completeness of every security group
on its paths (its targets' groups and its own); and, for all of them at once, the cluster, the
prefix lists and the network ACLs. A full evaluation (monitor.core.evaluate) runs when nothing is
carried yet, for a check whose reads were incomplete (and the one after it), and every FULL_EVERY
checks as a guard. tests/core/test_carry.py holds the carried verdict equal to the full one over
randomised sequences of changes.

Pure: the last `Carried` comes in, the report and the next `Carried` go out.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from monitor.core.evaluate import Judgement, assemble, fresh, judge, listed, whole_findings
from monitor.core.inputs import Indexed, Inputs, inputs
from monitor.core.model import (
    Finding,
    LoadBalancer,
    Observation,
    PeerKind,
    Report,
    Rule,
    RuleQuota,
    TargetGroup,
    Topology,
)

FULL_EVERY = 60  # checks between two full evaluations, the guard against a dependency missed


@dataclass(frozen=True, slots=True)
class _Kept:
    """A load balancer's last judgement and what it was judged against."""

    lb: LoadBalancer  # as the topology held it (compared by identity first: the topology is kept)
    groups_listed: tuple[str, ...]  # its security groups as listed then
    target_groups: tuple[TargetGroup, ...]
    incomplete: bool
    depends_on: frozenset[str]  # every security group on its paths
    judgement: Judgement


@dataclass(frozen=True, slots=True)
class Carried:
    """What one check leaves for the next: its reads, indexed, and every judgement it holds."""

    indexed: Indexed  # the topology and its indexes (groups by id), made again only with another topology
    rules: dict[str, list[Rule]]
    read: frozenset[str]
    fresh_lb_sgs: dict[str, tuple[str, ...]]
    shared: tuple  # cluster, prefix lists, network ACLs: a change judges every load balancer again
    rule_quota: RuleQuota | None
    kept: dict[str, _Kept]
    whole: tuple[Finding, ...]
    checks: int  # checks since the last full evaluation


@dataclass(frozen=True, slots=True)
class Carrying:
    """One check's verdict, the state for the next, and how much of it was judged again."""

    report: Report
    carried: Carried | None  # None: the next check evaluates in full
    judged: int  # load balancers judged in this check
    full: bool


def evaluate_carried(topology: Topology, observation: Observation, last: Carried | None,
                     full_every: int = FULL_EVERY) -> Carrying:
    """The report of `evaluate(topology, observation)`, judging again only what changed since `last`."""
    given = inputs(topology, observation, last.indexed if last is not None else None)
    incomplete = bool(topology.failures or observation.failures)
    shared = _shared(topology, observation)
    full = last is None or incomplete or last.checks + 1 >= full_every or shared != last.shared
    changed: Changes = {} if full or last is None else _changed_groups(last, given)
    kept: dict[str, _Kept] = {}
    judged = 0
    for lb in topology.load_balancers:
        if not listed(lb, observation):
            continue
        target_groups = given.by_lb.get(lb.arn, ())
        now = fresh(lb, given).security_groups
        before = None if full or last is None else last.kept.get(lb.arn)
        if before is not None and _same(before, lb, now, target_groups, lb.arn in topology.incomplete_lbs, changed):
            kept[lb.arn] = before
            continue
        judged += 1
        kept[lb.arn] = _Kept(lb, now, target_groups, lb.arn in topology.incomplete_lbs,
                             _depends_on(now, target_groups), judge(lb, topology, given))
    judgements = {arn: k.judgement for arn, k in kept.items()}
    if (not full and last is not None and not changed and last.indexed.topology is topology
            and last.fresh_lb_sgs == given.fresh_lb_sgs and last.rule_quota == observation.rule_quota):
        whole = last.whole
    else:
        whole = whole_findings(topology, observation, given, judgements)
    report = assemble(topology, observation, judgements, whole)
    if incomplete:
        return Carrying(report, None, judged, full)
    carried = Carried(given.indexed, given.context.rules_by_group, given.context.read_groups,
                      given.fresh_lb_sgs, shared, observation.rule_quota, kept, whole,
                      0 if full else last.checks + 1 if last is not None else 0)
    return Carrying(report, carried, judged, full)


def _shared(topology: Topology, observation: Observation) -> tuple:
    return topology.cluster, observation.prefix_lists, observation.network_acls, observation.network_acls_read


Changes = dict[str, frozenset[str] | None]  # group -> the groups its changed rules name; None: any change


def _changed_groups(last: Carried, given: Inputs) -> Changes:
    """The security groups whose rules, tags or completeness differ from the last check's. A group
    whose only changed rules name other security groups as their peer matters to the load balancers
    sending from (or to) those groups only: each is given with those peers; any other change (a CIDR
    or prefix-list rule, the group's tags, whether it was read) with None."""
    context = given.context
    changed: Changes = {group: None for group in last.read.symmetric_difference(context.read_groups)}
    for group in last.rules.keys() | context.rules_by_group.keys():
        before, now = last.rules.get(group, []), context.rules_by_group.get(group, [])
        if before == now or group in changed:
            continue
        differ = set(before).symmetric_difference(now)
        if not differ or any(r.peer_kind is not PeerKind.SECURITY_GROUP for r in differ):
            changed[group] = None  # (an empty difference: the same rules in another order)
        else:
            changed[group] = frozenset(r.peer for r in differ)
    if last.indexed is not given.indexed:  # the same indexes: the same topology and looked-up groups
        before_groups = last.indexed.groups
        for group in before_groups.keys() | context.groups.keys():
            before_group, now_group = before_groups.get(group), context.groups.get(group)
            if before_group is not now_group and before_group != now_group:
                changed[group] = None
    return changed


def _same(before: _Kept, lb: LoadBalancer, groups_listed: tuple[str, ...], target_groups: tuple[TargetGroup, ...],
          incomplete: bool, changed: Changes) -> bool:
    if not ((before.lb is lb or before.lb == lb) and before.groups_listed == groups_listed
            and before.incomplete == incomplete and before.target_groups == target_groups):
        return False
    for group in before.depends_on.intersection(changed):
        peers = changed[group]
        # Its own groups' rules (outbound) always matter; a target group's, when a changed rule names
        # one of its own groups as the source (an inbound rule from another group admits none of its traffic).
        if peers is None or group in groups_listed or not peers.isdisjoint(groups_listed):
            return False
    return True


def _depends_on(groups_listed: Iterable[str], target_groups: tuple[TargetGroup, ...]) -> frozenset[str]:
    depends = set(groups_listed)
    for tg in target_groups:
        for target in tg.targets or ():
            depends.update(target.security_groups or ())
    return frozenset(depends)
