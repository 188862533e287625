"""Targets and target groups one answer says are gone, believed only when the next read agrees (pure).

An empty `DescribeTargetHealth` or `DescribeTargetGroups` answer is what AWS says for a Service
scaled to zero or an ALB that only redirects, and also what a glitch looks like. Where targets (or
target groups) were seen before, by the last topology or in the paths the daemon remembers, one
such answer makes the ALBs behind it unknown instead of reachable with nothing to judge: the
discovery is incomplete, so it is retried an interval later, and that second empty answer is
believed. A scale to zero costs one interval of unknown; a glitch costs no verdict.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from monitor.core import failures as failures_words
from monitor.core.model import ReadFailure, Topology


@dataclass(frozen=True)
class SeenBefore:
    """What earlier reads showed: target groups that had targets, ALBs that had target groups."""

    target_groups: frozenset[str] = frozenset()
    load_balancers: frozenset[str] = frozenset()

    @classmethod
    def of(cls, topology: Topology | None, remembered: Iterable[tuple[str, str]] = ()) -> SeenBefore:
        """From the last topology and the remembered paths' (ALB ARN, target group ARN) pairs."""
        remembered = tuple(remembered)
        groups = {tg.arn for tg in topology.target_groups if tg.targets} if topology else set()
        lbs = {a for tg in topology.target_groups for a in tg.load_balancer_arns} if topology else set()
        return cls(frozenset(groups | {tg for _, tg in remembered}), frozenset(lbs | {lb for lb, _ in remembered}))


def doubt(topology: Topology, seen: SeenBefore, doubted: frozenset[str]) -> tuple[Topology, frozenset[str]]:
    """The topology with what one answer alone emptied marked unknown (a failed read, EmptyAnswer),
    and the ARNs emptied now: pass them back as `doubted` with the next topology, whose read of the
    same emptiness is then believed."""
    emptied: set[str] = set()
    unknown: set[str] = set()
    failures: list[ReadFailure] = []
    attached = {a for tg in topology.target_groups for a in tg.load_balancer_arns}
    for tg in topology.target_groups:
        if tg.targets == () and tg.arn in seen.target_groups:
            emptied.add(tg.arn)
            if tg.arn not in doubted:
                unknown.update(tg.load_balancer_arns)
                failures.append(ReadFailure(
                    "elbv2", "DescribeTargetHealth", failures_words.EMPTY_ANSWER,
                    f"target group {tg.name or tg.arn} listed no target where targets were seen before; "
                    "believed if the next read agrees", tg.arn))
    for lb in topology.load_balancers:
        if lb.arn not in attached and lb.arn in seen.load_balancers and lb.arn not in topology.incomplete_lbs:
            emptied.add(lb.arn)
            if lb.arn not in doubted:
                unknown.add(lb.arn)
                failures.append(ReadFailure(
                    "elbv2", "DescribeTargetGroups", failures_words.EMPTY_ANSWER,
                    f"{lb.name} listed no target group where it had some before; believed if the next read agrees",
                    lb.name))
    if not failures:
        return topology, frozenset(emptied)
    return replace(topology, incomplete_lbs=topology.incomplete_lbs | unknown,
                   failures=topology.failures + tuple(failures)), frozenset(emptied)
