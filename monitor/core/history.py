"""What the monitor has done and decided so far: restore attempts, quarantined rules and the clocks
of our own orphaned rules. The safety rails (caps, backoff, fight-loop quarantine) read it.

Pure values; persisted with the memory so a restart neither forgets a quarantine nor resets a cap.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from monitor.core.errors import StateError
from monitor.core.memory import RuleTuple

SCHEMA = "alb-sg-monitor/history"
VERSION = 1

CREATED = "restored"  # AuthorizeSecurityGroupIngress created the rule
DUPLICATE = "duplicate"  # the tuple was already there (InvalidPermission.Duplicate): success
FAILED = "failed"
_OUTCOMES = (CREATED, DUPLICATE, FAILED)


@dataclass(frozen=True)
class Attempt:
    """One AuthorizeSecurityGroupIngress the monitor sent."""

    rule: RuleTuple
    at: float
    outcome: str  # CREATED, DUPLICATE or FAILED
    code: str = ""  # the AWS error code of a failure


@dataclass(frozen=True)
class Quarantine:
    """A rule the monitor stopped restoring because something keeps revoking it."""

    rule: RuleTuple
    since: float
    revocations: int


@dataclass(frozen=True)
class History:
    attempts: tuple[Attempt, ...] = ()  # oldest first
    quarantined: tuple[Quarantine, ...] = ()
    orphaned: tuple[tuple[str, float], ...] = ()  # our rule id -> first seen with its source detached

    def writes_since(self, t: float) -> int:
        return sum(1 for a in self.attempts if a.at >= t)

    def created_since(self, rule: RuleTuple, t: float) -> int:
        """Restores of this rule that created it (each later loss of it was a re-revocation)."""
        return sum(1 for a in self.attempts if a.rule == rule and a.outcome == CREATED and a.at >= t)

    def last_success(self, rule: RuleTuple) -> float | None:
        times = [a.at for a in self.attempts if a.rule == rule and a.outcome != FAILED]
        return max(times) if times else None

    def failure_streak(self, rule: RuleTuple) -> tuple[Attempt, ...]:
        """The failed attempts for this rule since its last success, oldest first."""
        streak: list[Attempt] = []
        for attempt in self.attempts:
            if attempt.rule != rule:
                continue
            streak = streak + [attempt] if attempt.outcome == FAILED else []
        return tuple(streak)

    def quarantine_of(self, rule: RuleTuple) -> Quarantine | None:
        return next((q for q in self.quarantined if q.rule == rule), None)

    def orphaned_since(self, rule_id: str) -> float | None:
        return dict(self.orphaned).get(rule_id)

    def pruned(self, before: float) -> History:
        """Drops attempts older than `before`; the policy keeps at least the longest of the hour
        cap, the fight window and the longest backoff, so no rail loses what it counts."""
        return replace(self, attempts=tuple(a for a in self.attempts if a.at >= before))


def to_json(history: History) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "version": VERSION,
        "attempts": [{"rule": a.rule.to_json(), "at": a.at, "outcome": a.outcome, "code": a.code}
                     for a in history.attempts],
        "quarantined": [{"rule": q.rule.to_json(), "since": q.since, "revocations": q.revocations}
                        for q in history.quarantined],
        "orphaned": [{"rule_id": rule_id, "since": since} for rule_id, since in history.orphaned],
    }


def from_json(raw: Any) -> History:
    """Raises StateError for anything that is not a history document this version can read."""
    _expect(isinstance(raw, dict) and raw.get("schema") == SCHEMA, f"not an {SCHEMA} document")
    _expect(raw.get("version") == VERSION,
            f"{SCHEMA} version {raw.get('version')!r} is not supported (this build reads version {VERSION})")
    try:
        attempts = tuple(
            Attempt(RuleTuple.from_json(a["rule"]), _number(a["at"]), _outcome(a["outcome"]), str(a.get("code", "")))
            for a in raw["attempts"])
        quarantined = tuple(Quarantine(RuleTuple.from_json(q["rule"]), _number(q["since"]), int(q["revocations"]))
                            for q in raw["quarantined"])
        orphaned = tuple((str(o["rule_id"]), _number(o["since"])) for o in raw["orphaned"])
    except (KeyError, TypeError, ValueError) as exc:
        raise StateError(f"malformed {SCHEMA} document ({type(exc).__name__}: {exc})") from None
    return History(attempts=tuple(sorted(attempts, key=lambda a: a.at)), quarantined=quarantined, orphaned=orphaned)


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{value!r} is not a number")
    return float(value)


def _outcome(value: Any) -> str:
    if value not in _OUTCOMES:
        raise ValueError(f"unknown outcome {value!r}")
    return value


def _expect(condition: bool, problem: str) -> None:
    if not condition:
        raise StateError(problem)
