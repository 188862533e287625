"""A check's reads indexed for judging (monitor.core.evaluate): the rules by group, the groups by
id, each load balancer's target groups, the prefix lists and network ACLs. What depends on the
topology alone is kept from one check to the next (monitor.core.carry) and made again only with
another topology.

Pure: values in, values out.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from monitor.core import nacl
from monitor.core.model import Observation, Rule, SecurityGroup, TargetGroup, Topology


@dataclass(frozen=True, slots=True)
class Context:
    """What every path of a cycle is judged against."""

    cluster: str
    rules_by_group: dict[str, list[Rule]]
    read_groups: frozenset[str]
    groups: dict[str, SecurityGroup]
    prefix_lists: dict[str, tuple[str, ...]]
    acls: nacl.Acls

    def rules(self, group_ids: Iterable[str], egress: bool) -> list[Rule]:
        # Inbound and outbound rules never stand in for each other.
        return [r for g in group_ids for r in self.rules_by_group.get(g, ()) if r.egress is egress]


@dataclass(frozen=True, slots=True)
class Indexed:
    """What of a check's inputs depends on the topology (and the groups looked up beside it) alone:
    made again only when one of them changed (read them, never change them)."""

    topology: Topology
    extra_groups: tuple[SecurityGroup, ...]
    groups: dict[str, SecurityGroup]
    by_lb: dict[str, tuple[TargetGroup, ...]]


@dataclass(frozen=True, slots=True)
class Inputs:
    """One check's reads, indexed for judging: the rules by group, the load balancers' groups as
    listed now, and each load balancer's target groups."""

    context: Context
    fresh_lb_sgs: dict[str, tuple[str, ...]]
    indexed: Indexed

    @property
    def by_lb(self) -> dict[str, tuple[TargetGroup, ...]]:
        return self.indexed.by_lb


def indexed(topology: Topology, extra_groups: tuple[SecurityGroup, ...], last: Indexed | None = None) -> Indexed:
    """The groups by id and each load balancer's target groups; `last` itself when it was made of
    this very topology and the same groups."""
    if last is not None and last.topology is topology and last.extra_groups == extra_groups:
        return last
    groups = {g.group_id: g for g in (*topology.security_groups, *extra_groups)}
    by_lb: dict[str, list[TargetGroup]] = defaultdict(list)
    for tg in topology.target_groups:
        for arn in tg.load_balancer_arns:
            by_lb[arn].append(tg)
    return Indexed(topology, extra_groups, groups, {arn: tuple(tgs) for arn, tgs in by_lb.items()})


def inputs(topology: Topology, observation: Observation, last: Indexed | None = None) -> Inputs:
    """`last`: the previous check's topology indexes, used again when nothing they come from changed."""
    index = indexed(topology, observation.extra_groups, last)
    rules_by_group: dict[str, list[Rule]] = defaultdict(list)
    for rule in (*observation.rules, *observation.egress_rules):
        rules_by_group[rule.group_id].append(rule)
    context = Context(topology.cluster, dict(rules_by_group), observation.read_groups, index.groups,
                      dict(observation.prefix_lists), nacl.index(observation))
    return Inputs(context, dict(observation.lb_security_groups), index)
