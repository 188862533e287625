"""Events held against the reads, on literal values: which events are believed at all, when a
revoke-then-grant pair is an outage the reads agree with, and how much work events may ask for."""

from __future__ import annotations

import threading
import time

from monitor.core.event_evidence import OutageIndex, Sightings
from monitor.core.event_match import outage_windows
from monitor.core.event_trust import CLOCK_SKEW_SECONDS, Distrust, LogLimiter, origin, vet
from monitor.core.events import ApiEvent, Principal, TouchedRule, parse_event
from monitor.core.memory import RuleTuple
from monitor.daemon.event_triggers import Coalescer, Gap, UnknownGate
from tests.core.test_events import ACCOUNT, LB_ARN, NODE_SG, message

RULE = RuleTuple(NODE_SG, "tcp", 30080, 30080, "sg", "sg-0alb")
T0 = 1_800_000_000.0


def call(name: str, at: float, *rules: TouchedRule, n: int = 0) -> ApiEvent:
    return ApiEvent(event_id=f"e-{name}-{at}-{n}", event_name=name, source="aws.ec2", event_time=at,
                    principal=Principal("arn:aws:iam::111122223333:user/x"), security_groups=(NODE_SG,), rules=rules)


def revoke(at: float, rule_id: str | None = "sgr-0old", n: int = 0) -> ApiEvent:
    return call("RevokeSecurityGroupIngress", at, TouchedRule("ingress", RULE, rule_id), n=n)


def grant(at: float, rule_id: str | None = "sgr-0new", n: int = 0) -> ApiEvent:
    return call("AuthorizeSecurityGroupIngress", at, TouchedRule("ingress", RULE, rule_id), n=n)


def with_id(rule_id: str) -> tuple[str, RuleTuple]:
    return "ingress", RuleTuple(*[getattr(RULE, f) for f in ("group_id", "protocol", "from_port", "to_port",
                                                              "peer_kind", "peer")], rule_id)


def test_the_account_and_region_are_the_watched_load_balancers_and_the_future_has_five_minutes_of_slack():
    assert origin([LB_ARN]) == (ACCOUNT, "ap-northeast-1")
    assert origin([]) == (None, None)
    event = parse_event(message("RevokeSecurityGroupIngress", {"groupId": NODE_SG}, time="2026-12-01T10:00:00Z"))
    now = event.event_time
    assert vet(event, ACCOUNT, "ap-northeast-1", now) is None
    assert vet(event, "999999999999", "ap-northeast-1", now) is Distrust.OTHER_ACCOUNT
    assert vet(event, ACCOUNT, "us-west-2", now) is Distrust.OTHER_REGION
    assert vet(event, ACCOUNT, "ap-northeast-1", now - CLOCK_SKEW_SECONDS) is None
    assert vet(event, ACCOUNT, "ap-northeast-1", now - CLOCK_SKEW_SECONDS - 1) is Distrust.FUTURE
    # without the envelope's account (an emulator), CloudTrail's own recipientAccountId is read
    bare = parse_event(message("RevokeSecurityGroupIngress", {"groupId": NODE_SG}, account=False,
                               recipientAccountId="999999999999"))
    assert vet(bare, ACCOUNT, None, now) is Distrust.OTHER_ACCOUNT
    nothing = parse_event(message("RevokeSecurityGroupIngress", {"groupId": NODE_SG}, account=False))
    assert nothing.account is None and vet(nothing, ACCOUNT, None, now) is None


def test_rejections_are_logged_once_a_minute_per_reason_with_the_count():
    limiter = LogLimiter(every=60.0)
    assert [limiter.note("future", t) for t in (0.0, 1.0, 2.0, 59.0, 61.0)] == [1, None, None, None, 4]
    assert limiter.note("other_account", 62.0) == 1


def test_a_pair_is_an_outage_only_once_a_read_shows_the_old_id_gone_and_a_new_one_in_its_place():
    seen = Sightings()
    seen.saw([with_id("sgr-0old")], [NODE_SG], T0)
    (outage,) = OutageIndex().add([grant(T0 + 14), revoke(T0 + 10)])
    assert outage.seconds == 4
    assert seen.judge(outage) is None  # no read since the grant
    seen.saw([with_id("sgr-0new")], [NODE_SG], T0 + 15)
    assert seen.judge(outage) is True


def test_a_pair_the_reads_contradict_is_refuted_once_they_settle():
    seen = Sightings()
    seen.saw([with_id("sgr-0old")], [NODE_SG], T0)
    (outage,) = OutageIndex().add([revoke(T0 + 10), grant(T0 + 14)])
    seen.saw([with_id("sgr-0old")], [NODE_SG], T0 + 15)  # nothing changed
    assert seen.judge(outage) is None  # a read a second after the grant may have begun before it
    seen.saw([with_id("sgr-0old")], [NODE_SG], T0 + 100)
    assert seen.judge(outage) is False
    # ids the reads never saw (a forged pair) are refuted even when the tuple was really replaced
    (forged,) = OutageIndex().add([revoke(T0 + 10, "sgr-0never"), grant(T0 + 14, "sgr-0made-up")])
    seen.saw([with_id("sgr-0other")], [NODE_SG], T0 + 200)
    assert seen.judge(forged) is False


def test_the_outage_index_finds_what_the_pairwise_scan_finds_in_linear_time():
    def on_port(name: str, at: float, port: int) -> ApiEvent:
        return call(name, at, TouchedRule("ingress", RuleTuple(NODE_SG, "tcp", port, port, "sg", "sg-0alb")), n=port)

    events = [e for n in range(300) for e in (on_port("RevokeSecurityGroupIngress", T0 + n, n),
                                              on_port("AuthorizeSecurityGroupIngress", T0 + n + 2, n))]
    index = OutageIndex()
    found = [o for i in range(0, len(events), 10) for o in index.add(reversed(events[i:i + 10]))]
    pairs = {(o.revoked.event_id, o.granted.event_id) for o in found}
    assert len(found) == 300 and pairs == {(o.revoked.event_id, o.granted.event_id) for o in outage_windows(events)}
    assert index.add(events[:10]) == ()  # found once
    flood = [on_port("RevokeSecurityGroupIngress" if n % 2 else "AuthorizeSecurityGroupIngress", T0 + n, n // 2)
             for n in range(5000)]
    began = time.process_time()
    index = OutageIndex()
    for i in range(0, len(flood), 10):
        index.add(flood[i:i + 10])
    assert time.process_time() - began < 10  # linear: well under a second on a quiet machine


def test_event_work_is_bounded():
    gate = UnknownGate(per_window=20, window=60.0, again=300.0)
    arns = [f"arn-{n}" for n in range(30)]
    assert len(gate.admit(arns, 0.0)) == 20
    assert gate.admit(arns, 30.0) == set()  # the minute's budget is spent
    assert len(gate.admit(arns, 61.0)) == 10  # the rest; the first 20 not again before 5 minutes
    gap = Gap(60.0)
    assert [gap.admit(t) for t in (0.0, 30.0, 61.0)] == [True, False, True]
    fired = threading.Event()
    calls: list[float] = []
    coalescer = Coalescer(lambda: (calls.append(time.monotonic()), fired.set()), gap=0.2)
    for _ in range(100):
        coalescer.ask()
    assert len(calls) == 1  # the first at once
    fired.clear()
    assert fired.wait(5)  # the rest of the burst, once, at the end of the gap
    assert coalescer.calls == 2
