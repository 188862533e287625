"""The ELB's word beside the verdict: confirmation, dispute and unexplained failures, from reads."""

from __future__ import annotations

from monitor.core import health
from monitor.core.health import HealthMemory, HealthRead, TargetHealth

TG = "arn:aws:elasticloadbalancing:eu-west-1:111122223333:targetgroup/web/1"
A, B = (TG, "i-a"), (TG, "i-b")


def read(at: float, *entries: tuple[str, str, str]) -> HealthRead:
    return HealthRead(TG, at, tuple(TargetHealth(t, 30080, state, reason) for t, state, reason in entries))


def test_the_window_is_the_failed_checks_it_takes_plus_the_last_timeout():
    assert health.timing("HTTP", "instance", 30, 5, 2).window == 65
    # Absent values take AWS's defaults for the protocol: HTTP 6 s, TCP 10 s; 30 s apart; 2 failures.
    assert health.timing("HTTP", "ip").window == 66
    assert health.timing("TCP", "instance").window == 70
    assert health.timing("HTTPS", "ip", interval=10).window == 30


def test_a_cut_is_confirmed_only_when_every_target_it_concerns_times_out_after_it():
    unhealthy = read(100.0, ("i-a", "unhealthy", "Target.Timeout"), ("i-b", "unhealthy", "Target.FailedHealthChecks"))
    assert health.confirmation([A, B], unhealthy, exercised=True, cut_since=50.0) == health.CONFIRMED
    one = read(100.0, ("i-a", "unhealthy", "Target.Timeout"), ("i-b", "healthy", ""))
    assert health.confirmation([A, B], one, exercised=True, cut_since=50.0) == health.PENDING


def test_a_read_from_before_the_cut_says_nothing_about_it():
    before = read(40.0, ("i-a", "unhealthy", "Target.Timeout"))
    assert health.confirmation([A], before, exercised=True, cut_since=50.0) == health.PENDING
    assert not health.disputed([A], read(40.0, ("i-a", "healthy", "")), True, cut_since=50.0, window=10)


def test_reasons_that_are_not_the_network_neither_confirm_nor_dispute():
    mismatch = read(200.0, ("i-a", "unhealthy", "Target.ResponseCodeMismatch"))
    assert health.confirmation([A], mismatch, exercised=True, cut_since=50.0) == health.PENDING
    assert not health.disputed([A], mismatch, True, cut_since=50.0, window=66)


def test_what_the_health_checks_do_not_cross_is_not_exercised_and_a_failed_read_is_unknown():
    healthy = read(500.0, ("i-a", "healthy", ""))
    assert health.confirmation([A], healthy, exercised=False, cut_since=50.0) == health.NOT_EXERCISED
    assert not health.disputed([A], healthy, exercised=False, cut_since=50.0, window=66)
    assert health.confirmation([A], None, exercised=True, cut_since=50.0) == health.UNKNOWN
    assert not health.disputed([A], None, True, cut_since=50.0, window=66)


def test_healthy_past_the_window_disputes_and_within_it_does_not():
    assert not health.disputed([A], read(115.0, ("i-a", "healthy", "")), True, cut_since=50.0, window=66)
    assert health.disputed([A], read(117.0, ("i-a", "healthy", "")), True, cut_since=50.0, window=66)
    # Every target must stay healthy: one the ELB has marked unhealthy agrees with the model.
    mixed = read(200.0, ("i-a", "healthy", ""), ("i-b", "unhealthy", "Target.Timeout"))
    assert not health.disputed([A, B], mixed, True, cut_since=50.0, window=66)
    # A target the read does not list is not vouched for.
    assert not health.disputed([A, B], read(200.0, ("i-a", "healthy", "")), True, cut_since=50.0, window=66)


def test_an_instance_on_two_ports_counts_as_failing_only_when_both_fail():
    memory = HealthMemory()
    both = HealthRead(TG, 10.0, (TargetHealth("i-a", 80, "unhealthy", "Target.Timeout"),
                                 TargetHealth("i-a", 81, "healthy", "")))
    memory.saw_read(both, admitted=True)
    assert memory.failing_since == {}
    assert health.confirmation([A], both, exercised=True, cut_since=0.0) == health.PENDING


def test_cut_since_is_the_first_check_that_saw_the_cut_and_ends_with_it():
    memory = HealthMemory()
    assert memory.saw_cuts([A], now=10.0) == [A]
    assert memory.saw_cuts([A, B], now=20.0) == [B]
    assert memory.cut_since == {A: 10.0, B: 20.0}
    memory.saw_cuts([B], now=30.0)
    assert memory.cut_since == {B: 20.0}


def test_unhealthy_while_admitted_is_unexplained_only_across_more_than_the_window():
    memory = HealthMemory()
    memory.saw_read(read(100.0, ("i-a", "unhealthy", "Target.Timeout"), ("i-b", "healthy", "")), admitted=True)
    assert memory.unexplained(TG, window=66) == ()
    memory.saw_read(read(160.0, ("i-a", "unhealthy", "Target.Timeout"), ("i-b", "healthy", "")), admitted=True)
    assert memory.unexplained(TG, window=66) == ()
    memory.saw_read(read(170.0, ("i-a", "unhealthy", "Target.Timeout"), ("i-b", "healthy", "")), admitted=True)
    assert memory.unexplained(TG, window=66) == ("i-a",)
    # One healthy answer starts it over.
    memory.saw_read(read(180.0, ("i-a", "healthy", ""), ("i-b", "healthy", "")), admitted=True)
    memory.saw_read(read(190.0, ("i-a", "unhealthy", "Target.Timeout"), ("i-b", "healthy", "")), admitted=True)
    assert memory.unexplained(TG, window=66) == ()


def test_a_read_while_a_path_is_cut_explains_the_failure_and_resets_it():
    memory = HealthMemory()
    memory.saw_read(read(100.0, ("i-a", "unhealthy", "Target.Timeout")), admitted=True)
    memory.saw_read(read(150.0, ("i-a", "unhealthy", "Target.Timeout")), admitted=False)
    memory.saw_read(read(200.0, ("i-a", "unhealthy", "Target.Timeout")), admitted=True)
    assert memory.unexplained(TG, window=66) == ()
    assert memory.failing_since == {A: 200.0}


def test_a_gone_target_group_is_forgotten():
    memory = HealthMemory()
    memory.saw_cuts([A], now=1.0)
    memory.saw_read(read(100.0, ("i-a", "unhealthy", "Target.Timeout")), admitted=True)
    memory.forget([TG])
    assert memory.reads == {} and memory.failing_since == {} and memory.cut_since == {}
    assert memory.unexplained(TG, window=1) == ()


def test_states_count_targets_as_albsg_targets_shows_them():
    assert read(1.0, ("i-a", "healthy", ""), ("i-b", "healthy", ""), ("i-c", "draining", "")).states() == {
        "healthy": 2, "draining": 1}
