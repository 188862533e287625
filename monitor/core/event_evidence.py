"""Holds events against the monitor's own reads: which rule ids the checks have seen on which group
and when, so that an event is believed only where the reads agree with it (a revoked rule id the
reads saw and no longer see; a granted rule the reads see appear), and which revoke-then-grant pairs
the events show, found in time linear in the events (indexed by rule, not compared pairwise).

Pure: rules, events and times in, values out; no logging, no clock.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from monitor.core.event_match import OpenRevokes, Outage, covers, record
from monitor.core.event_trust import CLOCK_SKEW_SECONDS
from monitor.core.events import ApiEvent, TouchedRule
from monitor.core.memory import RuleTuple
from monitor.core.model import Observation

Seen = tuple[str, RuleTuple]  # (direction, rule)
# Events kept per rule (direction, group, peer): a rule revoked and granted more often than this
# within the events' hour is flapping, and its older gaps were long seen by the polls.
EVENTS_PER_RULE = 16
# A read is timed when it ends, and may have begun before the grant it is held against: it refutes a
# window only once it ended this long after the grant (it confirms one as soon as it shows it).
SETTLE_SECONDS = 60.0


@dataclass
class _Sighting:
    seen: Seen
    first: float
    last: float


@dataclass
class Sightings:
    """The rule ids the checks read on each group, when each was first and last seen, and what the
    latest complete read of each group held. Forgets ids not seen for `keep` seconds."""

    keep: float = 3600.0
    _ids: dict[str, _Sighting] = field(default_factory=dict)
    _by_rule: dict[Seen, set[str]] = field(default_factory=dict)
    _current: dict[str, frozenset[str]] = field(default_factory=dict)  # group -> ids in its latest read
    _read_at: dict[str, float] = field(default_factory=dict)

    def saw(self, rules: Iterable[tuple[str, RuleTuple]], read_groups: Iterable[str], now: float) -> None:
        """One check's read: `rules` (direction, rule with its id) of the groups read completely."""
        groups = set(read_groups)
        current: dict[str, set[str]] = {g: set() for g in groups}
        for direction, rule in rules:
            if rule.group_id not in groups or not rule.rule_id:
                continue
            current[rule.group_id].add(rule.rule_id)
            sighting = self._ids.get(rule.rule_id)
            if sighting is None or sighting.seen != (direction, rule):
                self._ids[rule.rule_id] = _Sighting((direction, rule), now, now)
                self._by_rule.setdefault((direction, rule), set()).add(rule.rule_id)
            else:
                sighting.last = now
        for group, ids in current.items():
            self._current[group] = frozenset(ids)
            self._read_at[group] = now
        for rule_id in [i for i, s in self._ids.items() if s.last < now - self.keep]:
            seen = self._ids.pop(rule_id).seen
            self._by_rule.get(seen, set()).discard(rule_id)
            if not self._by_rule.get(seen):
                self._by_rule.pop(seen, None)

    def read_at(self, group: str) -> float | None:
        return self._read_at.get(group)

    def gone(self, direction: str, touched: TouchedRule, group: str) -> str | None:
        """The id of a rule the reads saw on `group` and no longer see, that `touched` (a rule an
        event removed) names: by id when the event gives one, else by its tuple."""
        current = self._current.get(group)
        if current is None:
            return None
        if touched.rule_id:
            candidates: Iterable[str] = (touched.rule_id,)
        elif touched.rule is not None:
            candidates = self._by_rule.get((direction, touched.rule), ())
        else:
            return None
        for rule_id in candidates:
            sighting = self._ids.get(rule_id)
            if (sighting is not None and sighting.seen[0] == direction and sighting.seen[1].group_id == group
                    and (touched.rule is None or sighting.seen[1] == touched.rule) and rule_id not in current):
                return rule_id
        return None

    def judge(self, outage: Outage) -> bool | None:
        """Whether the reads agree that this revoke-then-grant happened: a rule id of the revoked
        tuple, seen by a read before the revoke, is gone, and a rule covering it that no read saw
        before then is there now. None until a read of the group after the grant."""
        verdict = self._judge(outage)
        if verdict is False and (self._read_at.get(outage.rule.group_id) or 0.0) < (
                outage.granted.event_time + SETTLE_SECONDS):
            return None
        return verdict

    def _judge(self, outage: Outage) -> bool | None:
        group, direction = outage.rule.group_id, outage.direction
        read_at, current = self._read_at.get(group), self._current.get(group)
        if read_at is None or current is None or read_at < outage.granted.event_time:
            return None
        old = [self._ids[i] for t in outage.revoked.rules if t.rule is None or t.rule == outage.rule
               if (i := self.gone(direction, TouchedRule(direction, outage.rule, t.rule_id), group))]
        if not old or min(s.last for s in old) > outage.revoked.event_time + CLOCK_SKEW_SECONDS:
            return False  # the reads never saw it, still see it, or saw it after the claimed revoke
        last_old = min(s.last for s in old)
        named = {t.rule_id for t in outage.granted.rules if t.rule_id}
        for rule_id in current:
            sighting = self._ids.get(rule_id)
            if sighting is None or sighting.seen[0] != direction or not covers(sighting.seen[1], outage.rule):
                continue
            if named and rule_id not in named:
                continue
            if sighting.first > last_old and sighting.first >= outage.granted.event_time - CLOCK_SKEW_SECONDS:
                return True
        return False


def _keys(event: ApiEvent) -> set[tuple[str, str, str, str]]:
    return {(t.direction, t.rule.group_id, t.rule.peer_kind, t.rule.peer) for t in event.rules if t.rule is not None}


@dataclass
class OutageIndex:
    """The revoke and grant events of each rule (direction, group, peer), to find the outage windows
    a batch of new events opens or closes by looking only at the rules they touch."""

    per_rule: int = EVENTS_PER_RULE
    _events: dict[tuple[str, str, str, str], list[ApiEvent]] = field(default_factory=dict)
    _found: set[tuple[str, str, str]] = field(default_factory=set)

    def add(self, events: Iterable[ApiEvent]) -> tuple[Outage, ...]:
        """Feed new events (any order, duplicates ignored); the outage windows not found before."""
        touched: set[tuple[str, str, str, str]] = set()
        for event in events:
            for key in _keys(event):
                kept = self._events.setdefault(key, [])
                if any(e.event_id == event.event_id for e in kept):
                    continue
                kept.append(event)
                kept.sort(key=lambda e: (e.event_time, e.event_id))
                del kept[:-self.per_rule]
                touched.add(key)
        found = []
        for key in touched:
            state = OpenRevokes()
            for event in self._events[key]:
                state, closed = record(state, event)
                for outage in closed:
                    if (outage.direction, outage.rule.group_id, outage.rule.peer_kind, outage.rule.peer) != key:
                        continue
                    seen = (outage.revoked.event_id, outage.granted.event_id, outage.rule.text())
                    if seen not in self._found:
                        self._found.add(seen)
                        found.append(outage)
        return tuple(found)

    def forget_before(self, when: float) -> None:
        """Drop events older than `when` (and the windows found from them)."""
        for key in list(self._events):
            kept = [e for e in self._events[key] if e.event_time >= when]
            if kept:
                self._events[key] = kept
            else:
                del self._events[key]
        live = {e.event_id for kept in self._events.values() for e in kept}
        self._found = {f for f in self._found if f[0] in live and f[1] in live}


def read_rules(observation: Observation) -> list[tuple[str, RuleTuple]]:
    """A check's rules as (direction, rule): the targets' inbound and the load balancers' outbound."""
    return ([("ingress", RuleTuple.of(r)) for r in observation.rules]
            + [("egress", RuleTuple.of(r)) for r in observation.egress_rules])
