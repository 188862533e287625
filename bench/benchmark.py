"""Measures what the monitor costs and how fast it sees a revocation, on simulated clusters.

Figures, not verdicts: AWS requests per discovery and per rule check (counted by a proxy in front of
moto), their wall time, the memory a topology and a check take, and the time from a revoked rule to
the first report that shows it. Run `make bench` (or `python -m bench.benchmark --albs 50 200`).
Compare ratios within one run: these machines are shared and noisy.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import tracemalloc
import urllib.request

import structlog

from monitor import aws
from monitor.aws.discover import discover
from monitor.aws.rules import RuleReader
from monitor.daemon import Daemon
from monitor.demo import world as demo_world
from monitor.evaluate import evaluate
from monitor.metrics import Metrics
from tests.support.awsproxy import AwsProxy


def measure(endpoint: str, albs: int, cycles: int, interval: float) -> dict[str, float]:
    world = demo_world.seed(endpoint, cluster=f"bench-{albs}-{int(time.time() * 1000) % 100000}", extra_albs=albs)
    with AwsProxy(endpoint) as proxy:
        os.environ["AWS_ENDPOINT_URL"] = proxy.url
        clients = aws.connect(world.region)
        tracemalloc.start()
        started = time.perf_counter()
        topology = discover(clients, world.cluster)
        discovery_seconds = time.perf_counter() - started
        topology_bytes = tracemalloc.get_traced_memory()[0]
        discovery_requests = proxy.count()
        reader = RuleReader(clients)
        reader.read(topology)  # the first read may look up rule sources once
        proxy.reset_counts()
        tracemalloc.reset_peak()
        durations, evaluations = [], []
        for _ in range(cycles):
            started = time.perf_counter()
            observation = reader.read(topology)
            middle = time.perf_counter()
            evaluate(topology, observation)
            durations.append(time.perf_counter() - started)
            evaluations.append(time.perf_counter() - middle)
        check_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        check_requests = proxy.count() / cycles
        latency = detection_latency(clients, world, interval)
    return {
        "albs": len(topology.load_balancers),
        "discovery_requests": discovery_requests,
        "discovery_seconds": discovery_seconds,
        "check_requests": check_requests,
        "check_seconds_median": statistics.median(durations),
        "evaluate_seconds_median": statistics.median(evaluations),
        "topology_kib": topology_bytes / 1024,
        "check_peak_kib": check_peak / 1024,
        "detection_seconds": latency,
    }


def detection_latency(clients: aws.AwsClients, world: demo_world.World, interval: float) -> float:
    """Checks every `interval` seconds in a thread; revoke the shop ALB's rule; time until a report
    shows that ALB unreachable."""
    daemon = Daemon(clients, world.cluster, Metrics(), interval, 300.0)
    daemon.run_once()
    seen = threading.Event()
    shop = world.lb["shop"]

    def listener(summary) -> None:
        if summary.report and any(lb.arn == shop and lb.reachable is False for lb in summary.report.load_balancers):
            seen.set()

    daemon.on_cycle.append(listener)
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(interval):
            daemon.check()

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    time.sleep(interval * 0.37)  # revoke at an arbitrary point of the cycle
    revoked = time.perf_counter()
    demo_world.revoke(world, "shop_v1")
    seen.wait(60)
    latency = time.perf_counter() - revoked
    stop.set()
    thread.join(10)
    return latency


def _wait_for(endpoint: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(endpoint + "/moto-api/", timeout=2)
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"moto did not start at {endpoint}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--albs", type=int, nargs="+", default=[50, 200], help="extra ALBs per simulated cluster")
    parser.add_argument("--cycles", type=int, default=10, help="rule checks to time per size")
    parser.add_argument("--interval", type=float, default=1.0, help="check interval for the detection latency")
    args = parser.parse_args()
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    os.environ.setdefault("AWS_REGION", "ap-northeast-1")
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    # moto in its own process, so that time and memory measured here are the monitor's alone
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        _wait_for(endpoint)
        rows = [measure(endpoint, n, args.cycles, args.interval) for n in args.albs]
    finally:
        server.terminate()
        server.wait(10)
    columns = list(rows[0])
    print("  ".join(f"{c:>22}" for c in columns))
    for row in rows:
        print("  ".join(f"{row[c]:>22.3f}" if isinstance(row[c], float) else f"{row[c]:>22}" for c in columns))
    if len(rows) > 1:
        first, last = rows[0], rows[-1]
        print(f"\n{last['albs'] / first['albs']:.1f}x the ALBs: check requests x{last['check_requests'] / first['check_requests']:.2f}, "
              f"check time x{last['check_seconds_median'] / first['check_seconds_median']:.2f}, "
              f"discovery requests x{last['discovery_requests'] / first['discovery_requests']:.2f}")


if __name__ == "__main__":
    main()
