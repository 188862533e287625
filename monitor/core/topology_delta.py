"""An incremental topology change: a few load balancers re-read or dropped, merged into the topology (pure)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from monitor.core.model import Observation, ReadFailure, TargetGroup, Topology


@dataclass(frozen=True)
class Delta:
    """What changed since the topology was built: `fresh` is what was read about the load
    balancers in `reread` (new ones and ones whose security groups changed); `gone` ones are
    dropped without a read. `carried_failures` are the failures of the full discovery the
    topology came from, which still hold."""

    fresh: Topology
    reread: frozenset[str] = frozenset()
    gone: frozenset[str] = frozenset()
    carried_failures: tuple[ReadFailure, ...] = ()


def changed_security_groups(topology: Topology, observation: Observation) -> frozenset[str]:
    """The known load balancers whose security group list, as listed now, is not the discovered one."""
    return with_other_groups(topology, observation.lb_security_groups)


def with_other_groups(topology: Topology, listed: Iterable[tuple[str, tuple[str, ...]]]) -> frozenset[str]:
    """The known load balancers whose security groups in `listed` (ARN, groups) are not the discovered ones."""
    now = dict(listed)
    return frozenset(lb.arn for lb in topology.load_balancers
                     if (groups := now.get(lb.arn)) is not None and groups != lb.security_groups
                     and set(groups) != set(lb.security_groups))


def merge(topology: Topology, delta: Delta) -> Topology:
    """The topology with `delta` applied. A re-read that met a failure leaves its load balancers out
    of `known_lb_arns`, so the next rule check sees them as new and asks again; meanwhile what
    depends on the failed read is unknown (the fresh part marks it), never a verdict."""
    fresh = delta.fresh
    drop = delta.gone | delta.reread
    load_balancers = tuple(lb for lb in topology.load_balancers if lb.arn not in drop) + fresh.load_balancers
    target_groups = _target_groups(topology.target_groups, fresh.target_groups, drop)
    # Groups of a dropped load balancer stay until the next full discovery: the rules that name
    # them as a source still need them (dropping them would cost a look-up in the next check).
    groups = {g.group_id: g for g in topology.security_groups}
    groups.update((g.group_id, g) for g in fresh.security_groups)
    read = fresh.known_lb_arns if not fresh.failures else frozenset()
    return replace(
        topology,
        load_balancers=load_balancers,
        target_groups=target_groups,
        security_groups=tuple(groups.values()),
        known_lb_arns=(topology.known_lb_arns - delta.gone - delta.reread) | read,
        incomplete_lbs=(topology.incomplete_lbs - drop) | fresh.incomplete_lbs,
        failures=delta.carried_failures + fresh.failures,
    )


def carry_topology(previous: Topology | None, fresh: Topology) -> Topology:
    """A full discovery's topology, keeping what one answer cannot erase. When discovery could not
    list the load balancers or read their tags, the ALBs known before stay, unknown. An ALB known
    before and absent from this listing stays too, unknown, with its target groups (a group shared
    with a listed ALB stays attached to both), and out of the ALBs known: the next check, listing it
    or not, has it read again alone or confirmed gone by a read of its ARN. Only AWS saying it does
    not exist drops it."""
    # Without the tags, which load balancers are the cluster's is unknown too.
    listing_failed = any(f.service == "elbv2" and f.operation in ("DescribeLoadBalancers", "DescribeTags")
                         for f in fresh.failures)
    if previous is None:
        return fresh
    if listing_failed:
        return replace(previous, incomplete_lbs=frozenset(lb.arn for lb in previous.load_balancers),
                       failures=fresh.failures)
    known = frozenset(lb.arn for lb in previous.load_balancers)
    missing = known - fresh.known_lb_arns
    if not missing:
        return fresh
    kept = merge(previous, Delta(fresh, reread=known - missing))
    return replace(kept, known_lb_arns=fresh.known_lb_arns, incomplete_lbs=kept.incomplete_lbs | missing)


def _target_groups(old: tuple[TargetGroup, ...], fresh: tuple[TargetGroup, ...],
                   drop: frozenset[str]) -> tuple[TargetGroup, ...]:
    """Old target groups lose the dropped load balancers (and go with the last one); a target group
    read again (shared with a load balancer kept) is the fresh one, attached to both."""
    fresh_by_arn = {tg.arn: tg for tg in fresh}
    out: list[TargetGroup] = []
    for tg in old:
        attached = tuple(a for a in tg.load_balancer_arns if a not in drop)
        again = fresh_by_arn.pop(tg.arn, None)
        if again is not None:
            out.append(replace(again, load_balancer_arns=attached + tuple(
                a for a in again.load_balancer_arns if a not in attached)))
        elif attached:
            out.append(tg if attached == tg.load_balancer_arns else replace(tg, load_balancer_arns=attached))
    out.extend(tg for tg in fresh if tg.arn in fresh_by_arn)
    return tuple(out)
