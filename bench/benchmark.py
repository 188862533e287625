"""Measures what the monitor costs at 10 to 5,000 ALBs, beside the straightforward per-ALB checker.

For each size: a moto server in its own process is seeded with that many ALBs (bench.mix: v1,
adopted and v2 ALBs, instance and ip targets, some with two target groups); the per-ALB checker
(bench.naive) makes one pass; then the real daemon (`alb-sg-monitor run --kubernetes off`) runs as
a child process, talking to moto through a request-counting proxy. Figures come from the proxy
(requests, per second and per API family), from the OS (the daemon's CPU time and peak RSS in
/proc), from the daemon's /metrics and its JSON log: full discovery, steady rule cycle, time from a
revoked rule to albsg_load_balancer_reachable 0, time for a new ALB to appear in /metrics and the
requests spent meanwhile, and (a second daemon in enforce mode) time until a revoked rule is back.
The results go to bench/results.md (and stdout) with the machine and the date, and each budget of
the monitor at scale is marked held, not held or not measured. Compare within one run: the
machines are shared and noisy.
"""

from __future__ import annotations

import argparse
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import botocore.session
from botocore.parsers import create_parser

from bench import mix, naive, report
from bench.daemon import DaemonProcess, reachable_by_name
from monitor.demo import trail
from monitor.demo import world as demo_world
from tests.support.awsproxy import AwsProxy

REGION = "ap-northeast-1"
HEALTH = {"DescribeTargetHealth"}  # the health job's reads (discovery's happen before the steady cycles)
QUEUE = {"ReceiveMessage", "DeleteMessage", "DeleteMessageBatch", "GetQueueAttributes"}  # the events thread's
FAST_DISCOVERY = "100"  # --discovery-rate of the queue and enforce daemons, whose discovery is not measured
HEALTH_SWEEP = ["5m"]  # the observing daemon's --health-sweep (main() sets it from its own flag)
ROOT = Path(__file__).resolve().parents[1]


class CountingProxy(AwsProxy):
    """The test proxy, also keeping the time of every request, for windows and per-second peaks."""

    def __init__(self, upstream: str) -> None:
        super().__init__(upstream)
        self.log: list[tuple[float, str, str]] = []
        self.answered: list[tuple[float, float]] = []  # (sent, seconds moto took to answer)

    def _decide(self, service: str, action: str):
        self.log.append((time.monotonic(), service, action))
        return super()._decide(service, action)

    def _forward(self, method: str, path: str, headers: list[tuple[str, str]], body: bytes):
        began = time.monotonic()
        try:
            return super()._forward(method, path, headers, body)
        finally:
            self.answered.append((began, time.monotonic() - began))

    def moto_seconds(self, start: float, end: float) -> float:
        """How long moto took to answer the requests sent from `start` to `end`."""
        return sum(took for t, took in self.answered if start <= t <= end)

    def between(self, start: float, end: float, only: set[str] | None = None, without: set[str] = frozenset()) -> int:
        """Requests sent from `start` to `end` (of these actions only, or all but `without`)."""
        return sum(1 for t, _, action in self.log if start <= t <= end
                   and (only is None or action in only) and action not in without)

    def by_action(self, start: float, end: float) -> dict[str, int]:
        counted: dict[str, int] = {}
        for t, _, action in self.log:
            if start <= t <= end:
                counted[action] = counted.get(action, 0) + 1
        return counted

    def per_second(self, start: float, end: float) -> dict[str, list[int]]:
        """Requests in each whole second from `start` to `end`, per service (elbv2, ec2)."""
        seconds = int(end - start) + 1
        counts = {"elbv2": [0] * seconds, "ec2": [0] * seconds}
        for t, service, _ in self.log:
            if start <= t <= end and service in counts:
                counts[service][int(t - start)] += 1
        return counts


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(what: str, probe: Callable[[], Any], timeout: float, every: float = 0.05) -> tuple[Any, float]:
    """Poll until `probe` is truthy; returns it and the monotonic time it was seen."""
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found:
            return found, time.monotonic()
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(every)


def pace() -> float:
    """The machine's pace now: the median CPU time of botocore's own parser reading one fixed page of
    1,000 security group rules, of five readings. These shared machines run the same code up to half
    again slower from one hour to the next (memory-bound work most: a tight arithmetic loop does not
    see it), and every CPU and wall figure of a size scales with it: results.md shows it beside them."""
    parser = create_parser("ec2")
    shape = botocore.session.get_session().get_service_model("ec2").operation_model(
        "DescribeSecurityGroupRules").output_shape
    answer = {"body": _PACE_PAGE, "headers": {}, "status_code": 200}
    times = []
    for _ in range(5):
        start = time.process_time()
        parsed = parser.parse(answer, shape)
        times.append(time.process_time() - start)
        assert len(parsed["SecurityGroupRules"]) == 1000
    return sorted(times)[2]


_PACE_PAGE = (
    '<?xml version="1.0" encoding="UTF-8"?><DescribeSecurityGroupRulesResponse '
    'xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>pace</requestId><securityGroupRuleSet>'
    + "".join(
        f"<item><securityGroupRuleId>sgr-{i:017x}</securityGroupRuleId><groupId>sg-{i // 3:017x}</groupId>"
        f"<groupOwnerId>123456789012</groupOwnerId><isEgress>{'true' if i % 2 else 'false'}</isEgress>"
        f"<ipProtocol>tcp</ipProtocol><fromPort>443</fromPort><toPort>443</toPort>"
        f"<cidrIpv4>10.{i % 256}.0.0/16</cidrIpv4><description>rule {i}</description>"
        f"<tagSet><item><key>k</key><value>v{i}</value></item></tagSet></item>"
        for i in range(1000))
    + "</securityGroupRuleSet></DescribeSecurityGroupRulesResponse>").encode()


def start_moto(module: str = "bench.fastmoto") -> tuple[subprocess.Popen, str]:
    """moto in its own process, so that the daemon's CPU and memory are measured apart from it
    (bench.fastmoto: moto with its tag and group-id lookups indexed, the same answers sooner)."""
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", module, "-H", "127.0.0.1", "-p", str(port)], cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return True
        except OSError:
            return False
    _wait("moto to listen", up, 60, 0.2)
    return server, endpoint


def measure(albs: int, cycles: int, interval: float, grace: float, workdir: Path, checker: bool = True) -> dict[str, Any]:
    server, endpoint = start_moto()
    try:
        with CountingProxy(endpoint) as proxy:
            return _measure(endpoint, proxy, albs, cycles, interval, grace, workdir, checker)
    finally:
        stop(server)


def stop(server: subprocess.Popen) -> None:
    """moto exits on SIGTERM only once its request threads let go (the proxy keeps connections
    open): give it a few seconds, then kill it."""
    server.terminate()
    try:
        server.wait(10)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait(10)


def _measure(endpoint: str, proxy: CountingProxy, albs: int, cycles: int, interval: float, grace: float,
             workdir: Path, checker: bool) -> dict[str, Any]:
    row: dict[str, Any] = {"albs": albs, "cycles": cycles, "pace_before": pace()}
    started = time.monotonic()
    world = mix.seed(endpoint, f"bench-{albs}", albs, REGION)
    row["seed_s"] = time.monotonic() - started
    _say(albs, f"seeded in {row['seed_s']:.0f} s")
    direct = world.clients()  # straight to moto: the bench's own writes and checks are not counted
    counted = demo_world.aws_clients(proxy.url, REGION)

    # The per-ALB checker, one pass, through the proxy (not at the sizes above --checker-up-to).
    verdicts = None
    row["naive_s"] = row["naive_requests"] = None
    if checker:
        mark = time.monotonic()
        verdicts = naive.check_all(counted["ec2"], counted["elbv2"], world.cluster)
        row["naive_s"] = time.monotonic() - mark
        row["naive_requests"] = proxy.between(mark, time.monotonic())
        _say(albs, f"per-ALB checker: {row['naive_requests']:,} requests in {row['naive_s']:.0f} s")
    row["target_groups"] = len(world.tg)

    # The daemon in observe mode.
    mark = time.monotonic()
    with DaemonProcess(proxy.url, world.cluster, interval, workdir / f"observe-{albs}.log",
                       ["--health-sweep", HEALTH_SWEEP[0]]) as daemon:
        refreshed, _ = _wait("the first discovery", lambda: daemon.event("topology_refreshed"), 600 + albs)
        row["discovery_s"] = refreshed["duration_seconds"]
        row["discovery_requests"] = proxy.between(mark, refreshed["_seen"])
        _say(albs, f"daemon: first discovery, {row['discovery_requests']:,} requests in {row['discovery_s']:.0f} s")
        _wait("the first check", lambda: daemon.events("check_cycle"), 300 + albs / 10)
        row.update(_steady(daemon, proxy, cycles, interval, skip=0))
        row["discovery_by_operation"] = proxy.by_action(mark, refreshed["_seen"])
        _say(albs, f"steady cycles: {row['cycle_requests']:.1f} requests, {row['cycle_cpu_s']:.2f} CPU-s each")

        # Does the monitor agree with the per-ALB checker?
        metrics = daemon.scrape()
        monitor = reachable_by_name(metrics)
        row["agree"] = None if verdicts is None else sum(
            1 for v in verdicts if monitor.get(v.name) == (1.0 if v.reachable else 0.0))
        row["compared"] = None if verdicts is None else len(verdicts)

        # Revocation -> metric.
        shop = world.lb_name["shop"]
        revoked_at = time.monotonic()
        first_check = daemon.events("check_cycle")[0]["_seen"]
        row["health_rps"] = proxy.between(first_check, revoked_at, only=HEALTH) / max(revoked_at - first_check, 1e-9)
        row["health_window_s"] = revoked_at - first_check
        demo_world.revoke(world, "shop_v1")
        _, seen = _wait("the revocation in /metrics", daemon.when_logged(lambda m: reachable_by_name(m).get(shop) == 0.0),
                        60 + 3 * row["cycle_s"] + 3 * interval)
        row["revocation_s"] = seen - revoked_at
        row["naive_after_revoke"] = (naive.check_arn(direct["ec2"], direct["elbv2"], world.lb["shop"]).reachable
                                     if checker else None)
        demo_world.restore(world, "shop_v1")
        _wait("the repair in /metrics", daemon.when_logged(lambda m: reachable_by_name(m).get(shop) == 1.0), 120)

        # A new ALB while the daemon runs.
        created = time.monotonic()
        key = mix.add_alb(world, direct["ec2"], direct["elbv2"], albs + 1000, "instance")
        row["new_alb_create_s"] = time.monotonic() - created
        name = world.lb_name[key]
        try:
            _, seen = _wait("the new ALB in /metrics", daemon.when_logged(lambda m: name in reachable_by_name(m)),
                            max(120, 20 * interval + 3 * row["discovery_s"]))
            row["new_alb_s"] = seen - created
            row["new_alb_requests"] = proxy.between(created, seen)
            row["new_alb_own"] = _own_requests(daemon, created, seen)
        except TimeoutError:
            row["new_alb_s"] = row["new_alb_requests"] = row["new_alb_own"] = None
        end = time.monotonic()
        row["per_second"] = proxy.per_second(mark, end)
        row["peak_rps"] = {service: max(counts) for service, counts in row["per_second"].items()}
        row["rss_peak_mib"] = daemon.peak_rss() / 2**20
        row["rss_metrics_mib"] = daemon.max_metric_rss / 2**20
        _say(albs, "observe daemon done; now one reading the events queue")

    row["queue"] = _with_queue(world, direct, proxy, albs, cycles, interval, workdir)
    _say(albs, "queue daemon done; now the enforce daemon")

    # A third daemon in enforce mode: revoke, then watch the rule come back (read straight from moto).
    with DaemonProcess(proxy.url, world.cluster, interval, workdir / f"enforce-{albs}.log",
                       ["--mode", "enforce", "--grace", f"{grace:g}s", "--state-file",
                        str(workdir / f"state-{albs}.json"), "--discovery-rate", FAST_DISCOVERY]) as daemon:
        _wait("two enforce cycles", lambda: len(daemon.events("check_cycle")) >= 2, 600 + albs)
        node_sg, alb_sg = world.sg["cluster"], world.sg["shop_alb"]
        revoked_at = time.monotonic()
        demo_world.revoke(world, "shop_v1")
        try:
            _, seen = _wait("the restored rule", lambda: _has_rule(direct["ec2"], node_sg, alb_sg),
                            60 + grace + 6 * interval + 3 * row["cycle_s"], 0.2)
            row["restore_s"] = seen - revoked_at
        except TimeoutError:
            row["restore_s"] = None
    return row


def _steady(daemon: DaemonProcess, proxy: CountingProxy, cycles: int, interval: float, skip: int) -> dict[str, Any]:
    """The figures of `cycles` steady checks, after the first `skip` ones: requests (the health job's
    and the events queue's apart: they run beside the checks), wall, CPU, moto's share, listings."""
    _wait(f"{cycles} steady cycles", lambda: len(daemon.events("check_cycle")) > skip + cycles,
          120 + (skip + cycles) * (10 * interval + 60))
    window = daemon.events("check_cycle")[skip: skip + cycles + 1]
    begin, end = window[0]["_seen"], window[-1]["_seen"]
    beside = HEALTH | QUEUE
    return {
        "cycle_requests": proxy.between(begin, end, without=beside) / cycles,
        "cycle_by_operation": {action: n / cycles for action, n in proxy.by_action(begin, end).items()
                               if action not in beside},
        "cycle_s": sorted(c["duration_seconds"] for c in window[1:])[cycles // 2],
        "cycle_cpu_s": (window[-1]["_cpu"] - window[0]["_cpu"]) / cycles,
        # The check's own thread (check_cycle's cpu_seconds): the process's figure above also has
        # the health job's and the events thread's CPU of that time.
        "check_cpu_s": sum(c.get("cpu_seconds", 0.0) for c in window[1:]) / cycles,
        "cycle_moto_s": proxy.moto_seconds(begin, end) / cycles,
        "cycle_listed": sum(1 for c in window[1:] if c.get("listed", True)),
    }


def _with_queue(world: Any, direct: dict[str, Any], proxy: CountingProxy, albs: int, cycles: int, interval: float,
                workdir: Path) -> dict[str, Any]:
    """A daemon reading an events queue (moto's EventBridge rule with the shipped pattern, into SQS):
    its steady checks, a revocation no event tells of, and a new ALB whose CreateLoadBalancer event
    arrives as CloudTrail would send it. Its first discovery runs at --discovery-rate FAST_DISCOVERY
    (the observing daemon above measures the default)."""
    got: dict[str, Any] = {}
    url = trail.create_queue(world)
    with DaemonProcess(proxy.url, world.cluster, interval, workdir / f"queue-{albs}.log",
                       ["--events-queue", url, "--discovery-rate", FAST_DISCOVERY,
                        "--health-sweep", HEALTH_SWEEP[0]]) as daemon:
        _wait("the first discovery", lambda: daemon.event("topology_refreshed"), 600 + albs)
        _wait("the first check", lambda: daemon.events("check_cycle"), 300 + albs / 10)
        # The queue is healthy once read: the checks from then on list only when told to.
        _wait("a check without the listing", lambda: any(not c.get("listed", True)
                                                        for c in daemon.events("check_cycle")), 120 + 10 * interval)
        skip = next(i for i, c in enumerate(daemon.events("check_cycle")) if not c.get("listed", True))
        got.update(_steady(daemon, proxy, cycles, interval, skip=skip))
        _say(albs, f"with the queue: {got['cycle_requests']:.1f} requests, {got['cycle_cpu_s']:.2f} CPU-s a check, "
                   f"{got['cycle_listed']} of {cycles} listed")
        shop = world.lb_name["shop"]
        revoked_at = time.monotonic()
        demo_world.revoke(world, "shop_v1")  # no event: the poll alone must see it
        _, seen = _wait("the revocation in /metrics", daemon.when_logged(lambda m: reachable_by_name(m).get(shop) == 0.0),
                        60 + 3 * got["cycle_s"] + 3 * interval)
        got["revocation_s"] = seen - revoked_at
        demo_world.restore(world, "shop_v1")
        _wait("the repair in /metrics", daemon.when_logged(lambda m: reachable_by_name(m).get(shop) == 1.0), 120)
        created = time.monotonic()
        key = mix.add_alb(world, direct["ec2"], direct["elbv2"], albs + 2000, "instance")
        trail.put_created(world, world.lb[key])
        name = world.lb_name[key]
        try:
            _, seen = _wait("the new ALB in /metrics", daemon.when_logged(lambda m: name in reachable_by_name(m)),
                            max(120, 20 * interval))
            got["new_alb_s"] = seen - created
            got["new_alb_requests"] = proxy.between(created, seen, without=QUEUE)
            got["new_alb_own"] = _own_requests(daemon, created, seen)
        except TimeoutError:
            got["new_alb_s"] = got["new_alb_requests"] = got["new_alb_own"] = None
        got["rss_peak_mib"] = daemon.peak_rss() / 2**20
    return got


def _own_requests(daemon: DaemonProcess, start: float, end: float) -> int:
    """The requests of the updates that read the new ALB (`topology_updated`'s api_calls); the rest
    of the requests meanwhile are the checks', which run whatever comes."""
    return sum(e.get("api_calls", 0) for e in daemon.events("topology_updated") if start <= e["_seen"] <= end + 1)


def _say(albs: int, what: str) -> None:
    print(f"{albs} ALBs: {what}", file=sys.stderr, flush=True)


def _has_rule(ec2: Any, group: str, source: str) -> bool:
    rules = ec2.describe_security_group_rules(Filters=[{"Name": "group-id", "Values": [group]}])["SecurityGroupRules"]
    return any(not r.get("IsEgress") and r.get("ReferencedGroupInfo", {}).get("GroupId") == source
               and r.get("IpProtocol") == "tcp" and r.get("FromPort") == 0 and r.get("ToPort") == 65535 for r in rules)


def machine() -> dict[str, str]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    return {"cpus": str(os.cpu_count()), "model": model, "python": platform.python_version(),
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "load": load}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--albs", type=int, nargs="+", default=[10, 100, 1000],
                        help="cluster sizes (ALBs of the cluster) to measure; `make bench-5000` adds 5000")
    parser.add_argument("--cycles", type=int, default=5, help="steady rule cycles measured per size")
    parser.add_argument("--interval", type=float, default=2.0,
                        help="the daemons' --interval, seconds (at least 1), below 5,000 ALBs")
    parser.add_argument("--large-interval", type=float, default=5.0,
                        help="the daemons' --interval at 5,000 ALBs and more, where the budgets are set at 5 s")
    parser.add_argument("--grace", type=float, default=1.0, help="the enforce daemon's --grace, seconds")
    parser.add_argument("--checker-up-to", type=int, default=1000,
                        help="run the per-ALB checker at sizes up to this many ALBs (at 5,000 it alone takes "
                             "over half an hour, and no budget compares with it there)")
    parser.add_argument("--health-sweep", default="5m",
                        help="the observing daemon's --health-sweep (0: no sweep, to measure the check alone)")
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results.md", help="where the table goes")
    args = parser.parse_args(argv)
    HEALTH_SWEEP[0] = args.health_sweep
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    host = machine()
    rows, failed = [], []
    # The daemons' logs stay for a look afterwards (a size that failed, a figure that surprises).
    tmp = tempfile.mkdtemp(prefix="albsg-bench-")
    print(f"daemon logs: {tmp}", file=sys.stderr, flush=True)
    for albs in args.albs:
        started = time.monotonic()
        try:
            interval = args.interval if albs < 5000 else args.large_interval
            row = measure(albs, args.cycles, interval, args.grace, Path(tmp), albs <= args.checker_up_to)
            row["interval"] = interval
        except Exception as exc:  # one size failing (e.g. a wait running out) keeps the others' figures
            failed.append((albs, f"{type(exc).__name__}: {exc}"))
            print(f"{albs} ALBs failed after {time.monotonic() - started:.0f} s: {exc}", file=sys.stderr, flush=True)
            continue
        row["size_s"] = time.monotonic() - started
        row["pace_after"] = pace()
        print(f"{albs} ALBs measured in {row['size_s']:.0f} s", file=sys.stderr, flush=True)
        rows.append(row)
    if not rows:
        print("no size could be measured", file=sys.stderr)
        return 1
    text = report.render(rows, host, args.interval, args.grace, args.cycles, failed, args.health_sweep)
    args.output.write_text(text)
    print(text)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
