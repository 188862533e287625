"""Discovery's own request budget: one request at a time per API family, 1/rate apart, halved on
throttling and raised back; the rule check is never held to it."""

from __future__ import annotations

import pytest

from monitor import aws
from monitor.aws.discover import discover
from monitor.aws.pacing import Bucket, Pacer
from monitor.aws.rules import RuleReader
from monitor.surface.metrics import Metrics
from tests.support.awsproxy import AwsProxy
from tests.support.fixtures import tiny_aws_env, tiny_moto, tiny_world  # noqa: F401 (fixtures)
from tests.support.tinyworld import CLUSTER, World, add_alb


class FakeTime:
    """A clock that only moves when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_requests_are_spaced_one_over_the_rate_from_the_previous_answer():
    t = FakeTime()
    bucket = Bucket(4.0, t.clock, t.sleep)
    assert bucket.take() == 0.0  # the first goes at once
    t.now += 0.1  # the answer takes 100 ms
    bucket.answered(throttled=False)
    assert bucket.take() == pytest.approx(0.25)  # 1/4 s after the answer, not after the send
    assert t.now == pytest.approx(100.35)
    bucket.answered(throttled=False)
    t.now += 1.0  # idle for longer than the spacing: no wait, and no saved-up burst either
    assert bucket.take() == 0.0
    bucket.answered(throttled=False)
    assert bucket.take() == pytest.approx(0.25)


def test_throttling_halves_the_rate_down_to_a_floor_and_answers_raise_it_back():
    t = FakeTime()
    bucket = Bucket(10.0, t.clock, t.sleep)
    for expected in (5.0, 2.5, 1.25, 0.625, 0.5, 0.5):  # the floor: 5% of the configured rate
        bucket.take()
        bucket.answered(throttled=True)
        assert bucket.rate == pytest.approx(expected)
    assert bucket.take() == pytest.approx(2.0)  # 1/0.5 s
    rates = []
    for _ in range(40):
        bucket.answered(throttled=False)
        rates.append(bucket.rate)
        bucket.take()
    assert rates[0] == pytest.approx(1.0)  # + 5% of the configured rate per answer
    assert max(rates) == 10.0 and rates[-1] == 10.0  # back to, never above, the configured rate
    assert all(b >= a for a, b in zip(rates, rates[1:]))


def test_only_requests_inside_discovering_are_paced_and_the_waits_are_reported():
    t = FakeTime()
    metrics = Metrics()
    pacer = Pacer(2.0, t.clock, t.sleep)
    pacer.add_listener(metrics)
    for _ in range(3):  # the rule check: never waits
        pacer.before_send("ec2")
        pacer.answered("ec2", None)
    assert t.slept == []
    with pacer.discovering():
        for _ in range(3):
            pacer.before_send("ec2")
            pacer.answered("ec2", None)
        pacer.before_send("elbv2")  # another family has its own bucket
        pacer.answered("elbv2", "Throttling")
    assert t.slept == [0.5, 0.5]
    body = metrics.exposition()[0].decode()
    assert 'albsg_discovery_wait_seconds_total{family="ec2"} 1.0' in body
    assert 'albsg_discovery_wait_seconds_total{family="elbv2"} 0.0' in body
    assert 'albsg_discovery_rate_limit{family="ec2"} 2.0' in body
    assert 'albsg_discovery_rate_limit{family="elbv2"} 1.0' in body  # halved by the throttling answer


def test_an_unpaced_pacer_never_waits():
    t = FakeTime()
    pacer = Pacer(None, t.clock, t.sleep)
    with pacer.discovering():
        for _ in range(5):
            pacer.before_send("elbv2")
            pacer.answered("elbv2", "Throttling")
    assert t.slept == []


RATE = 4.0


def test_a_paced_discovery_never_sends_more_than_the_rate_in_any_second(tiny_world: World, monkeypatch):
    """Counted at the proxy, with the real clock: no one-second window holds more requests of a
    family than the rate, and the discovery took no less than its requests at that rate allow."""
    for i in range(4):
        add_alb(tiny_world, "shop", f"svc{i}")
    with AwsProxy(tiny_world.endpoint) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        clients = aws.connect(None)
        clients.pacer.configure(RATE)
        with clients.pacer.discovering():
            topology = discover(clients, CLUSTER)
        assert len(topology.load_balancers) == 6 and not topology.failures
        arrivals = list(proxy.arrivals)
        reader = RuleReader(clients)
        reader.read_quota()  # once per process, as the daemon does at its first discovery
        proxy.reset_counts()
        reader.read(topology)  # the rule check outside discovering(): not paced
        assert proxy.count() == 3  # the load balancers, the rules and the network ACLs
    for family in ("elbv2", "ec2"):
        times = sorted(at for at, service, _ in arrivals if service == family)
        assert len(times) >= 3, (family, arrivals)
        busiest = max(sum(1 for t in times if start <= t < start + 1.0) for start in times)
        assert busiest <= RATE, (family, [round(t - times[0], 3) for t in times])
        assert times[-1] - times[0] >= (len(times) - 1) / RATE
