"""The topology held compactly: one copy of each string, tuple and small value, however many load
balancers, target groups and targets repeat it.

A discovery builds its values from botocore's answers, where every ARN, id, tag and CIDR is a
string of its own: at 5,000 ALBs three quarters of the topology's strings are repeats (a VPC id on
every target, a load balancer's ARN on each of its target groups, the same tags on every group).
`compact` rebuilds the values with strings interned (shared with every other topology, the
checks' rules included) and equal tuples and frozen values shared. Pure; the values are equal to
what went in.
"""

from __future__ import annotations

import functools
import sys
from dataclasses import fields, is_dataclass, replace
from typing import Any

from monitor.core.model import Topology


def compact(topology: Topology) -> Topology:
    pool: dict[Any, Any] = {}
    return _value(topology, pool)


_SCALARS = (str, int, float, bool, type(None))


def _value(value: Any, pool: dict[Any, Any]) -> Any:
    """`value` with its strings interned, and itself shared when it is made of scalars only (a tag
    list, a tuple of group ids, a subnet): those are cheap to hash and often repeated."""
    if isinstance(value, str):
        return sys.intern(value)
    if isinstance(value, tuple):
        items = tuple(_value(v, pool) for v in value)
        return pool.setdefault(items, items) if _leafy(items) else items
    if isinstance(value, frozenset):
        return frozenset(_value(v, pool) for v in value)
    if is_dataclass(value) and not isinstance(value, type):
        changes = {}
        leafy = True
        for name in _names(type(value)):
            old = getattr(value, name)
            new = _value(old, pool)
            leafy = leafy and (isinstance(new, _SCALARS) or (isinstance(new, tuple) and _leafy(new)))
            if new is not old:
                changes[name] = new
        rebuilt = replace(value, **changes) if changes else value
        return pool.setdefault(rebuilt, rebuilt) if leafy else rebuilt
    return value


@functools.cache
def _names(kind: type) -> tuple[str, ...]:
    return tuple(f.name for f in fields(kind))


def _leafy(items: tuple) -> bool:
    return all(isinstance(v, _SCALARS) or (isinstance(v, tuple) and _leafy(v)) for v in items)
