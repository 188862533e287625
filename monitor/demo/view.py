"""The demo's live view: what each daemon cycle and each story event look like to the person watching.

Three forms from the same events: on a terminal the screen is redrawn after every cycle (a table
of the ALBs, the open findings, and the story so far); piped or redirected, plain lines are
appended (the table only when an ALB's state changes); with `--output json`, one JSON object per
line. Cycles arrive on the scheduler's thread and story events on the story's, hence the lock.
Text fits the width (monitor.demo.layout): the terminal's, redrawn to it; piped, COLUMNS or 100
columns, one event per line, cut with an ellipsis (`--output json` has every word).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

from monitor.core.health import CONFIRMED
from monitor.core.model import Finding, Report
from monitor.core.policy import CIDR_NOT_RESTORED, RESTORE
from monitor.core.transitions import revoked_load_balancers
from monitor.daemon.remediation import Outcome
from monitor.daemon.summary import CycleSummary
from monitor.demo import layout
from monitor.surface import render

_STATE = {True: "ok", False: "UNREACHABLE", None: "unknown"}
_CLEAR = "\x1b[H\x1b[2J"
# Every `type` a `--output json` line can have (README.md, "The demo", lists exactly these).
RECORD_TYPES = ("start", "story", "error", "cycle", "detected", "confirmed", "cleared", "revoked", "attributed",
                "outage_window",
                "restored", "already_present", "restore_failed", "cleanup_failed", "cleaned_up", "dry_run",
                "not_restored", "summary")
# How the ALB table narrows when the width is short, in this order, each step only as far as needed.
# The Ingress names the ALB for people, so the ALB's generated name is shortened first (start and end
# kept, as they tell ALBs apart); then the columns the story lines and /metrics also say are dropped
# (revocations, then adoption, then covered paths); then the Ingress is shortened. STATE stays whole.
_NARROWING = (("shorten", 0, 16), ("drop", 4, 0), ("drop", 2, 0), ("drop", 3, 0), ("shorten", 1, 10),
              ("shorten", 0, 8))


def who(arn: str) -> str:
    """A caller as the view names it: an assumed role without the account's ARN prefix (the JSON
    records keep the whole ARN)."""
    head, sep, rest = arn.partition(":assumed-role/")
    return f"assumed-role/{rest}" if sep and head.startswith("arn:") else arn


def _key(finding: Finding) -> tuple[str, str | None, str | None, str | None]:
    return finding.code, finding.load_balancer, finding.security_group, finding.rule


@dataclass(frozen=True)
class Restore:
    """A rule the monitor put back (enforce mode), as the view showed it."""

    t: float  # seconds since start
    load_balancers: tuple[str, ...]
    ingress: str  # "ns/name" of the first ALB's Ingress, or ""
    rule: str  # e.g. "tcp 0-65535 from sg-… on sg-…"
    rule_id: str
    after_seconds: float  # how long the path had been uncovered

    def text(self) -> str:
        return f"{self.rule} ({self.rule_id}) for {', '.join(self.load_balancers)}" + (
            f" (Ingress {self.ingress})" if self.ingress else "")


@dataclass
class Seen:
    """What the view has seen so far, for the story's closing summary."""

    cycles: int = 0
    revocations: Counter = field(default_factory=Counter)  # load balancer -> revocations counted
    # (seconds since start, "detected" | "cleared", finding code)
    changes: list[tuple[float, str, str]] = field(default_factory=list)
    restores: list[Restore] = field(default_factory=list)
    attributions: list[dict[str, Any]] = field(default_factory=list)  # who cut what, from CloudTrail events
    outages: list[dict[str, Any]] = field(default_factory=list)  # revoke-then-grant windows in the events

    def first(self, kind: str, code: str, after: float) -> float | None:
        return next((t for t, k, c in self.changes if k == kind and c == code and t >= after), None)


class LiveView:
    def __init__(self, out: TextIO, mode: str, metrics_url: str, clock: Callable[[], float] = time.monotonic,
                 on_closed: Callable[[], None] = lambda: None, columns: int | None = None) -> None:
        """`mode` is "terminal", "lines" or "json"; `on_closed` is called once if the reader goes
        away (`demo | head`), so the demo stops instead of playing to no one. `columns` fixes the
        width; without it the terminal's (asked at each redraw) or layout.piped_width()."""
        self._out = out
        self._on_closed = on_closed
        self._closed = False
        self._ended = False  # end(): only the closing summary is written from now on
        self._mode = mode
        self._url = metrics_url
        self._clock = clock
        # t+0 is the first timestamped line (the first check, before the story starts), so no
        # later line can show an earlier time: one clock for the view and the story.
        self._started: float | None = None
        self._columns = columns or (layout.piped_width() if mode == "lines" else None)
        self._mark = layout.mark_for(getattr(out, "encoding", None))
        self._lock = threading.Lock()
        self._findings: dict[tuple, Finding] = {}
        self._states: tuple[tuple[str, bool | None], ...] = ()
        self._report: Report | None = None
        self._story: list[str] = []
        self.seen = Seen()
        self.first_cycle = threading.Event()
        self.story_told = threading.Event()

    def elapsed(self) -> float:
        return 0.0 if self._started is None else self._clock() - self._started

    def _start_clock(self) -> None:
        if self._started is None:
            self._started = self._clock()

    def width(self) -> int:
        return self._columns or layout.terminal_size()[0]

    # -- inputs -------------------------------------------------------------------------------
    def note(self, text: str, kind: str = "story") -> None:
        """A story event, or another line the watcher should read, as it happens."""
        with self._lock:
            self._line(kind.upper(), text, {"type": kind, "text": text})
            if self._mode == "terminal":
                self._redraw()

    def cycle(self, summary: CycleSummary) -> None:
        """Daemon.on_cycle listener: diff this cycle against the last and show what changed."""
        if summary.report is None:
            with self._lock:
                self._start_clock()
                self._line("ERROR", f"check cycle failed: {summary.error}", {"type": "error", "error": summary.error})
            return
        report = summary.report
        with self._lock:
            self._start_clock()
            self.seen.cycles += 1
            self._report = report
            self._diff_findings(report)
            self._attributions(report)
            for name in revoked_load_balancers(summary.revocations):
                self.seen.revocations[name] += 1
            for outcome in summary.remediations:
                self._remediation(outcome)
            for revocation in summary.revocations:
                ports = revocation.missing_ports
                self._line("REVOKED", f"{revocation.load_balancer}: path to {revocation.target} lost "
                           f"port{'s' if len(ports) > 1 else ''} {', '.join(map(str, ports))}",
                           {"type": "revoked", "load_balancer": revocation.load_balancer,
                            "target": revocation.target, "missing_ports": list(revocation.missing_ports)})
            # albsg_rule_revocations_total counts an ALB once per check however many of its paths
            # were lost: said once per ALB, not on each path's line.
            for name in revoked_load_balancers(summary.revocations):
                paths = sum(1 for r in summary.revocations if r.load_balancer == name)
                self._line("COUNTED", f"{name}: once in albsg_rule_revocations_total "
                           f"({paths} path{'s' if paths > 1 else ''})", None)
            states = tuple((lb.name, lb.reachable) for lb in report.load_balancers)
            changed, self._states = states != self._states, states
            if self._mode == "json":
                self._emit({"type": "cycle", "t": round(self.elapsed(), 2), "cycle": self.seen.cycles,
                            "duration_seconds": round(summary.duration_seconds, 3), "report": render.to_dict(report)})
            elif self._mode == "terminal":
                self._redraw()
            else:
                width = self.width()
                if changed:
                    self._write("\n".join(_table(report, self.seen.revocations, width, self._mark)
                                          + [layout.clip(r, width, self._mark) for r in self._restored()]))
                self._write(layout.clip(f"t+{self.elapsed():05.1f}s  cycle {self.seen.cycles:<3} "
                                        f"{_one_line(report)}", width, self._mark))
        self.first_cycle.set()

    def outage(self, outage: Any) -> None:
        """EventFeed.on_outage listener: a revoke and a later grant of one rule, seen in the events."""
        with self._lock:
            record = {"type": "outage_window", "rule": outage.rule.text(), "seconds": outage.seconds,
                      "revoked_by": outage.revoked.principal.arn, "granted_by": outage.granted.principal.arn}
            self.seen.outages.append(record)
            self._line("OUTAGE", f"{outage.rule.text()} was cut for {outage.seconds:g}s, from the events: revoked by "
                       f"{who(outage.revoked.principal.arn)}, granted again by {who(outage.granted.principal.arn)}",
                       record)
            if self._mode == "terminal":
                self._redraw()

    def _attributions(self, report: Report) -> None:
        """Say who cut a path, once per event, when a CloudTrail event named the caller."""
        known = {a["event_id"] for a in self.seen.attributions}
        for finding in report.findings:
            a = finding.attribution
            if a is None or a.event_id in known:
                continue
            known.add(a.event_id)
            record = {"type": "attributed", "code": finding.code, "load_balancer": finding.load_balancer,
                      "rule": finding.rule, "principal": a.principal, "actor_kind": a.actor_kind,
                      "event_name": a.event_name, "event_id": a.event_id}
            self.seen.attributions.append(record)
            self._line("CUT BY", f"{finding.load_balancer}: rule {finding.rule or '?'} was removed by {who(a.principal)} "
                       f"({a.actor_kind.replace('_', ' ')}, {a.event_name})", record)

    def _remediation(self, outcome: Outcome) -> None:
        """Say what enforce mode wrote (or, in observe mode, would have written)."""
        d = outcome.decision
        lbs = ", ".join(d.load_balancers) or "its load balancer"
        ingress = next((f"{ns}/{name}" for ns, name in d.ingresses), "")
        took = max(0.0, outcome.at - d.since) if d.since is not None else 0.0
        if outcome.label == "restored" and outcome.result is not None:
            restore = Restore(self.elapsed(), d.load_balancers, ingress, d.rule.text(), outcome.result.rule_id or "?",
                              round(took, 1))
            self.seen.restores.append(restore)
            self._line("RESTORED", f"alb-sg-monitor restored {restore.text()}, {took:.1f}s after the path was lost",
                       {"type": "restored", "load_balancer": lbs, "ingress": ingress, "rule": restore.rule,
                        "rule_id": restore.rule_id, "after_seconds": round(took, 2)})
        elif outcome.label == "already_present":  # not a restore of ours: not in the summary's restores
            self._line("PRESENT", f"alb-sg-monitor went to restore {d.rule.text()} for {lbs} and found it already "
                       "there: another writer put it back first", {"type": "already_present", "load_balancer": lbs,
                                                                    "rule": d.rule.text()})
        elif outcome.label == "failed":
            code = outcome.result.code if outcome.result else ""
            what = "restore" if d.kind == RESTORE else "remove its own rule"
            self._line("FAILED", f"alb-sg-monitor could not {what} {d.rule.text()} for {lbs}: {code}",
                       {"type": f"{d.kind}_failed", "load_balancer": lbs, "rule": d.rule.text(), "code": code})
        elif outcome.label == "cleaned_up":
            self._line("REMOVED", f"alb-sg-monitor removed its own rule {d.rule_id} ({d.rule.text()}): no live ALB "
                       "uses its source any more", {"type": "cleaned_up", "rule": d.rule.text(), "rule_id": d.rule_id})
        elif outcome.label == "dry_run" and outcome.announced and d.kind == RESTORE:
            self._line("DRY RUN", f"observe mode: alb-sg-monitor would restore {d.rule.text()} for {lbs}",
                       {"type": "dry_run", "load_balancer": lbs, "rule": d.rule.text()})
        elif d.reason == CIDR_NOT_RESTORED and outcome.announced:
            self._line("HELD", f"alb-sg-monitor does not restore {d.rule.text()} for {lbs}: its source is an "
                       "address range; a human decides", {"type": "not_restored", "load_balancer": lbs,
                                                          "rule": d.rule.text(), "reason": d.reason})

    def _restored(self) -> list[str]:
        return [f"  restored by alb-sg-monitor: {r.text()} at t+{r.t:05.1f}s" for r in self.seen.restores]

    # -- rendering ----------------------------------------------------------------------------
    def _diff_findings(self, report: Report) -> None:
        now = {_key(f): f for f in report.findings}
        for key, finding in now.items():
            if key not in self._findings:
                self.seen.changes.append((self.elapsed(), "detected", finding.code))
                self._line("DETECTED", f"{finding.severity.value} {finding.code}: {finding.message}",
                           {"type": "detected", "code": finding.code, "severity": finding.severity.value,
                            "load_balancer": finding.load_balancer, "message": finding.message},
                           quiet=self.seen.cycles == 1)
            elif finding.confirmation == CONFIRMED and self._findings[key].confirmation != CONFIRMED:
                self._line("ELB SAYS", *_confirmed(finding))
        for key, finding in self._findings.items():
            if key not in now:
                self.seen.changes.append((self.elapsed(), "cleared", finding.code))
                self._line("CLEARED", f"{finding.code}" + (f" on {finding.load_balancer}" if finding.load_balancer else ""),
                           {"type": "cleared", "code": finding.code, "load_balancer": finding.load_balancer})
        self._findings = now

    def _line(self, label: str, text: str, record: dict[str, Any] | None, quiet: bool = False) -> None:
        """One event; `record` is its JSON line (None: said in text only)."""
        # Findings already there at the first cycle are the starting picture, not detections.
        if quiet:
            return
        self._start_clock()
        line = f"t+{self.elapsed():05.1f}s  {label:<8}  {text}"
        if self._mode == "json":
            if record is not None:
                self._emit({"t": round(self.elapsed(), 2), **record})
        elif self._mode == "lines":
            self._write(layout.clip(line, self.width(), self._mark))
        self._story.append(line)

    def _emit(self, record: dict[str, Any]) -> None:
        self._write(json.dumps(record))

    def _write(self, text: str, final: bool = False) -> None:
        if self._closed or (self._ended and not final):
            return
        try:
            self._out.write(text + "\n")
            self._out.flush()
        except (BrokenPipeError, ValueError):
            self._closed = True
            try:  # later writes, and the interpreter's flush at exit, go nowhere instead of failing
                os.dup2(os.open(os.devnull, os.O_WRONLY), self._out.fileno())
            except (OSError, ValueError, AttributeError):
                pass
            self._on_closed()

    def _redraw(self) -> None:
        """The whole screen, fitted to the terminal as it is now: the header and the ALB table first
        (every ALB's STATE is always on screen), then the findings and restores, then as much of
        the story as the rows left hold, each event wrapped at word boundaries under its text."""
        if self._columns:
            width, rows = self._columns, layout.terminal_size()[1]
        else:
            width, rows = layout.terminal_size()
        top = layout.wrap(f"alb-sg-monitor demo  t+{self.elapsed():.0f}s  cycle {self.seen.cycles}  "
                          f"metrics: {self._url}  (Ctrl-C stops)", width) + [""]
        middle: list[str] = []
        if self._report is not None:
            top += _table(self._report, self.seen.revocations, width, self._mark)
            middle += ["", "FINDINGS" if self._report.findings else "no findings"]
            counts = Counter((f.severity.value, f.code, _subject(f, self._report)) for f in self._report.findings)
            middle += [layout.clip(f"  {sev.upper():8} {code}" + (f" on {subject}" if subject else "")
                                   + (f" x{n}" if n > 1 else ""), width, self._mark)
                       for (sev, code, subject), n in counts.items()]
            if self.seen.restores:
                middle += ["", "RESTORED BY alb-sg-monitor (enforce mode)"] + [
                    line for r in self._restored() for line in layout.wrap(r, width, indent=4)]
        # One row stays free: the newline after the last line must not scroll the header away.
        room = rows - 1 - len(top)
        middle = middle[:max(0, room)]
        room -= len(middle) + 2
        tail = ["", "STORY"] + _story_tail(self._story, width, room, self._mark) if room > 0 else []
        self._write(_CLEAR + "\n".join(top + middle + tail))

    def write(self, text: str, final: bool = False) -> None:
        """Text outside the live part (the introduction, the closing summary: `final`), wrapped at
        word boundaries to the width."""
        with self._lock:
            if self._mode != "json":
                width = self.width()
                self._write("\n".join(out for line in text.split("\n") for out in layout.wrap(line, width)), final)

    def emit(self, record: dict[str, Any], final: bool = False) -> None:
        """A JSON-lines record (only in json mode); `final` for the closing summary."""
        if self._mode == "json":
            with self._lock:
                self._write(json.dumps(record), final)

    def end(self) -> None:
        """The demo is about to exit: a check still finishing must not print after the summary."""
        with self._lock:
            self._ended = True


def _table(report: Report, revocations: Counter, width: int, mark: str) -> list[str]:
    # STATE as wide as its widest word always: the table does not jump when an ALB is cut off.
    rows = [("LOAD BALANCER", "INGRESS", "ADOPTION", "PATHS", "REVOCATIONS", "STATE".ljust(len(_STATE[False])))]
    for lb in report.load_balancers:
        ingress = f"{lb.ingress_namespace}/{lb.ingress}" if lb.ingress else "-"
        rows.append((lb.name, ingress, lb.adoption, render.paths_cell(lb), str(revocations.get(lb.name, 0)),
                     render.state_cell(lb)))
    return layout.fit_columns(rows, width, _NARROWING, mark)


def _confirmed(finding: Finding) -> tuple[str, dict[str, Any]]:
    """The line and record when the ELB's own health checks start failing on what a finding says is cut."""
    return (f"{finding.code} on {finding.load_balancer} confirmed: the ELB reports those targets failing their "
            "health checks", {"type": "confirmed", "code": finding.code, "load_balancer": finding.load_balancer,
                              "security_group": finding.security_group})


def _subject(finding: Finding, report: Report) -> str:
    """What a finding is about, as the findings panel names it: the Ingress of its ALB, else the ALB,
    else its security group."""
    lb = next((lb for lb in report.load_balancers if lb.name == finding.load_balancer), None)
    if lb is not None and lb.ingress:
        return f"Ingress {lb.ingress_namespace}/{lb.ingress}"
    if finding.load_balancer:
        return f"ALB {finding.load_balancer}"
    return finding.security_group or ""


def _one_line(report: Report) -> str:
    ok = sum(1 for lb in report.load_balancers if lb.reachable)
    bad = [lb.ingress and f"{lb.ingress_namespace}/{lb.ingress}" or lb.name
           for lb in report.load_balancers if lb.reachable is False]
    critical = sorted({f.code for f in report.findings if f.severity.value == "critical"})
    return (f"{ok}/{len(report.load_balancers)} ALBs reachable"
            + (f", UNREACHABLE: {', '.join(bad)}" if bad else "")
            + (f"; critical: {', '.join(critical)}" if critical else "; no critical finding"))


def _story_tail(story: list[str], width: int, room: int, mark: str) -> list[str]:
    """The latest story events that fit whole in `room` lines (the newest one cut if it alone is
    longer), each wrapped under its text."""
    lines: list[str] = []
    for event in reversed(story):
        wrapped = layout.wrap(event, width, indent=20)
        if len(lines) + len(wrapped) > room:
            if not lines:
                lines = wrapped[:room - 1] + [layout.clip(wrapped[room - 1] + " " + mark, width, mark)]
            break
        lines = wrapped + lines
    return lines
