"""Turns the benchmark's figures into the markdown results: the machine, two tables, the budgets."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from bench.daemon import CYCLE_TIMEOUT

MiB = 2**20

# (heading, how to show it) for each column; the test checks every heading is in the output.
COST_COLUMNS: list[tuple[str, Callable[[dict[str, Any]], str]]] = [
    ("ALBs", lambda r: f"{r['albs']:,}"),
    ("target groups", lambda r: f"{r['target_groups']:,}"),
    ("per-ALB checker: requests", lambda r: NOT_RUN if r["naive_requests"] is None else f"{r['naive_requests']:,}"),
    ("per-ALB checker: wall", lambda r: NOT_RUN if r["naive_s"] is None else f"{r['naive_s']:.1f} s"),
    ("full discovery: requests", lambda r: f"{r['discovery_requests']:,}"),
    ("full discovery: wall", lambda r: f"{r['discovery_s']:.1f} s"),
    ("steady cycle: requests", lambda r: f"{r['cycle_requests']:.1f}"),
    ("steady cycle: wall", lambda r: f"{r['cycle_s']:.2f} s"),
    ("steady cycle: moto answering", lambda r: f"{r['cycle_moto_s']:.2f} s"),
    ("steady cycle: CPU (process)", lambda r: f"{r['cycle_cpu_s']:.2f} CPU-s"),
    ("steady cycle: the check's own CPU", lambda r: f"{r['check_cpu_s']:.2f} CPU-s"),
    ("checker ÷ cycle: requests", lambda r: times(r["naive_requests"], r["cycle_requests"])),
    ("checker ÷ cycle: wall", lambda r: times(r["naive_s"], r["cycle_s"])),
    ("daemon peak RSS", lambda r: f"{r['rss_peak_mib']:.0f} MiB"),
    ("RSS in /metrics (max)", lambda r: f"{r['rss_metrics_mib']:.0f} MiB"),
]
LATENCY_COLUMNS: list[tuple[str, Callable[[dict[str, Any]], str]]] = [
    ("ALBs", lambda r: f"{r['albs']:,}"),
    ("revoked → metric 0", lambda r: f"{r['revocation_s']:.1f} s"),
    ("enforce: revoked → rule back", lambda r: seconds(r["restore_s"])),
    ("new ALB → in /metrics", lambda r: seconds(r["new_alb_s"])),
    ("new ALB: requests meanwhile", lambda r: "—" if r["new_alb_requests"] is None else f"{r['new_alb_requests']:,}"),
    ("new ALB: its own read", lambda r: "—" if r.get("new_alb_own") is None else f"{r['new_alb_own']:,} requests"),
    ("peak requests/s ELB", lambda r: str(r["peak_rps"]["elbv2"])),
    ("peak requests/s EC2", lambda r: str(r["peak_rps"]["ec2"])),
    ("verdicts agree with the checker", lambda r: agreement(r)),
    ("seeding / whole size", lambda r: f"{r['seed_s']:.0f} s / {r.get('size_s', 0):.0f} s"),
    ("machine's pace before / after", lambda r: f"{r['pace_before']:.3f} / {r.get('pace_after', 0):.3f} CPU-s"),
]


QUEUE_COLUMNS: list[tuple[str, Callable[[dict[str, Any]], str]]] = [
    ("ALBs", lambda r: f"{r['albs']:,}"),
    ("interval", lambda r: f"{r['interval']:g} s"),
    ("steady cycle: requests", lambda r: f"{r['queue']['cycle_requests']:.1f}"),
    ("steady cycles that listed", lambda r: f"{r['queue']['cycle_listed']} of {r['cycles']}"),
    ("steady cycle: the check's own CPU", lambda r: f"{r['queue']['check_cpu_s']:.2f} CPU-s"),
    ("the same without the queue", lambda r: f"{r['check_cpu_s']:.2f} CPU-s"),
    ("steady cycle: CPU (process)", lambda r: f"{r['queue']['cycle_cpu_s']:.2f} CPU-s"),
    ("revoked → metric 0 (no event)", lambda r: f"{r['queue']['revocation_s']:.1f} s"),
    ("new ALB (CreateLoadBalancer event) → in /metrics", lambda r: seconds(r["queue"]["new_alb_s"])),
    ("new ALB: requests meanwhile",
     lambda r: "—" if r["queue"]["new_alb_requests"] is None else f"{r['queue']['new_alb_requests']:,}"),
    ("new ALB: its own read",
     lambda r: "—" if r["queue"].get("new_alb_own") is None else f"{r['queue']['new_alb_own']:,} requests"),
    ("daemon peak RSS", lambda r: f"{r['queue']['rss_peak_mib']:.0f} MiB"),
]


NOT_RUN = "not run"  # the per-ALB checker, above --checker-up-to
SWEEP_SECONDS = 300.0  # the daemon's default --health-sweep, which the benchmark runs with

READS_COLUMNS: list[tuple[str, Callable[[dict[str, Any]], str]]] = [
    ("ALBs", lambda r: f"{r['albs']:,}"),
    ("steady cycle: requests by operation", lambda r: operations(r["cycle_by_operation"])),
    ("full discovery: DescribeTargetGroupAttributes",
     lambda r: f"{r['discovery_by_operation'].get('DescribeTargetGroupAttributes', 0):,}"),
    ("target health: reads/s while steady (health job)",
     lambda r: f"{r['health_rps']:.2f} over {r['health_window_s']:.0f} s"),
    ("target health: sweep's rate (target groups ÷ 5m)", lambda r: f"{r['target_groups'] / SWEEP_SECONDS:.2f}"),
]


def operations(counts: dict[str, float]) -> str:
    return ", ".join(f"{action} {n:g}" for action, n in sorted(counts.items())) or "none"


def ratio(a: float, b: float) -> float:
    return a / b if b else float("inf")


def times(a: float | None, b: float) -> str:
    return NOT_RUN if a is None else f"{ratio(a, b):,.0f}×"


def seconds(value: float | None) -> str:
    return "not within the wait" if value is None else f"{value:.1f} s"


def agreement(row: dict[str, Any]) -> str:
    if row["agree"] is None:
        return f"checker {NOT_RUN}"
    after = "yes" if row["naive_after_revoke"] is False else "NO"
    return f"{row['agree']}/{row['compared']}; after a revocation: {after}"


def table(rows: list[dict[str, Any]], columns) -> list[str]:
    lines = ["| " + " | ".join(h for h, _ in columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(show(r) for _, show in columns) + " |" for r in rows]
    return lines


def budgets(rows: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """(budget, verdict, figure) for each budget the monitor holds itself to at scale."""
    by_size = {r["albs"]: r for r in rows}
    out = []

    def at(size: int, name: str, check: Callable[[dict[str, Any]], tuple[bool, str]]) -> None:
        row = by_size.get(size)
        if row is None:
            largest = max(by_size)
            held, figure = check(by_size[largest])
            out.append((name, "not measured", f"{size:,} ALBs not in this run (at {largest:,}: {figure})"))
            return
        held, figure = check(row)
        out.append((name, "held" if held else "not held", figure))

    def new_alb(r):
        q, interval = r["queue"], r["interval"]
        if r["new_alb_s"] is None or q["new_alb_s"] is None:
            return False, "not in /metrics within the wait"
        own = max(r.get("new_alb_own") or 0, q.get("new_alb_own") or 0)
        return (max(r["new_alb_s"], q["new_alb_s"]) <= 2 * interval and own < 20,
                f"{r['new_alb_s']:.1f} s from the listing, {q['new_alb_s']:.1f} s from its event (2 intervals: "
                f"{2 * interval:g} s); its own read {r.get('new_alb_own')} and {q.get('new_alb_own')} requests "
                f"({r['new_alb_requests']} and {q['new_alb_requests']} in all meanwhile, the checks' included)")

    def steady(r):
        cpu = max(r["check_cpu_s"], r["queue"]["check_cpu_s"])
        return cpu < 1, (f"the check's own CPU: {r['check_cpu_s']:.2f} CPU-s without the queue, "
                         f"{r['queue']['check_cpu_s']:.2f} with it (the whole process's: {r['cycle_cpu_s']:.2f} and "
                         f"{r['queue']['cycle_cpu_s']:.2f}, the health job and the events thread included)")

    def revocation(r):
        interval, worst = r["interval"], max(r["revocation_s"], r["queue"]["revocation_s"])
        return worst <= interval + 2, (f"{r['revocation_s']:.1f} s, {r['queue']['revocation_s']:.1f} s with the queue "
                                       f"(interval + 2 s: {interval + 2:g} s)")

    at(5000, "New ALB at 5,000 ALBs: monitored within 2 intervals, < 20 requests", new_alb)
    at(5000, "Steady cycle at 5,000 ALBs: < 1 CPU-second, with the events queue and without", steady)
    at(5000, "Revocation → metric at 5,000 ALBs: within interval + 2 s", revocation)
    at(1000, "Per check at 1,000 ALBs: ≥ 1,000× fewer requests and ≥ 20× less wall than the per-ALB checker",
       lambda r: (False, f"the per-ALB checker {NOT_RUN}") if r["naive_requests"] is None else (
           ratio(r["naive_requests"], r["cycle_requests"]) >= 1000 and ratio(r["naive_s"], r["cycle_s"]) >= 20,
           f"{ratio(r['naive_requests'], r['cycle_requests']):,.0f}× fewer requests, "
           f"{ratio(r['naive_s'], r['cycle_s']):,.0f}× less wall"))
    at(5000, "Daemon peak RSS at 5,000 ALBs: < 150 MiB",
       lambda r: (max(r["rss_peak_mib"], r["queue"]["rss_peak_mib"]) < 150,
                  f"{r['rss_peak_mib']:.0f} MiB, {r['queue']['rss_peak_mib']:.0f} MiB with the queue"))
    # Discovery is paced at --discovery-rate per family; the rule check is not (it would wait behind
    # a discovery), so a second may also carry one check's requests.
    over = []
    for r in rows:
        allowed = DISCOVERY_RATE + math.ceil(r["cycle_requests"])
        over += [f"{r['albs']:,} ALBs: {r['peak_rps'][f]} {f}" for f in ("elbv2", "ec2") if r["peak_rps"][f] > allowed]
    peak = max(rows, key=lambda r: r["albs"])["peak_rps"]
    out.append(("No burst above the configured request rate", "not held" if over else "held",
                (f"over: {', '.join(over)}; " if over else "")
                + f"discovery at {DISCOVERY_RATE:g}/s per family plus one check's requests; observed peak at "
                f"{max(by_size):,} ALBs: {peak['elbv2']} ELB and {peak['ec2']} EC2 requests in one second"))
    return out


DISCOVERY_RATE = 10.0  # the daemon's default --discovery-rate, which the benchmark runs with
RATE_BUCKETS = ((0, 0), (1, 5), (6, 10), (11, 20), (21, 50), (51, None))


def histogram(rows: list[dict[str, Any]]) -> list[str]:
    """How many seconds of the observing daemon's run carried how many requests, per API family."""
    names = ["0" if lo == hi == 0 else f"{lo}+" if hi is None else f"{lo}–{hi}" for lo, hi in RATE_BUCKETS]
    lines = ["| ALBs | API | " + " | ".join(f"{n} req/s" for n in names) + " |", "|" + "---|" * (len(names) + 2)]
    for row in rows:
        for service, label in (("elbv2", "ELB"), ("ec2", "EC2")):
            counts = row["per_second"][service]
            cells = [sum(1 for c in counts if lo <= c and (hi is None or c <= hi)) for lo, hi in RATE_BUCKETS]
            lines.append(f"| {row['albs']:,} | {label} | " + " | ".join(f"{c} s" for c in cells) + " |")
    return lines


def _intervals(rows: list[dict[str, Any]], interval: float) -> str:
    """The --interval the daemons ran with: one, or each with the sizes it applied to."""
    used = sorted({r.get("interval", interval) for r in rows})
    if len(used) <= 1:
        return f"{used[0] if used else interval:g}s"
    return ", ".join(f"{i:g}s at " + " and ".join(f"{r['albs']:,}" for r in rows if r.get("interval") == i) + " ALBs"
                     for i in used)


def render(rows: list[dict[str, Any]], host: dict[str, str], interval: float, grace: float, cycles: int,
           failed: list[tuple[int, str]] = (), health_sweep: str = "5m") -> str:
    lines = [
        "# Benchmark results",
        "",
        f"Machine: {host['cpus']} CPUs, {host['model']}; load average at the start {host['load']}; "
        f"Python {host['python']}; {host['date']}. moto in its own process, the daemon "
        f"(`alb-sg-monitor run --kubernetes off --interval {_intervals(rows, interval)} --cycle-timeout {CYCLE_TIMEOUT} "
        f"--topology-interval 1h "
        f"--health-sweep {health_sweep}`) in "
        f"another, requests counted by a proxy in front of moto (bench.fastmoto: moto with its tag and "
        f"group-id lookups indexed and its writing of answers quicker; the same answers, the rule listing paged "
        f"as AWS pages it). Steady cycle: the "
        f"median of {cycles} cycles; its process CPU is the daemon process's user + system time over those cycles, "
        f"divided by their number (the health job's and the events thread's included), the check's own CPU is "
        f"its thread's (`cpu_seconds` of `check_cycle`); “moto answering” is the "
        f"time moto took to answer that cycle's requests, a share of its wall that AWS answers far sooner. Enforce: "
        f"`--grace {grace:g}s`.",
        "",
        "## Cost",
        "",
        *table(rows, COST_COLUMNS),
        "",
        "## Latency, bursts, agreement",
        "",
        "The machine's pace is the CPU time botocore's own parser takes to read one fixed page of 1,000",
        "security group rules (the median of five), taken before a size is seeded and after it is measured:",
        "on a shared machine the same code runs up to half again slower from one hour to the next, and every",
        "CPU and wall figure of that size moves with it.",
        "",
        "A latency ends at the first scrape of /metrics that shows the change. The bench scrapes when the",
        "daemon has logged a line since its last scrape (a check publishes, then logs `check_cycle`; the log",
        "is watched every 50 ms) and at least once a second: scraping every 50 ms would load what it measures",
        "(at 5,000 ALBs a scrape renders about 1 MB, and checks took about 1 s longer under it).",
        "",
        *table(rows, LATENCY_COLUMNS),
        "",
        "## What the reads are",
        "",
        "The rule check's requests by operation; what discovery's target-group attribute reads add (network",
        "target groups only); the health job's target-health reads, beside the checks and paced with discovery",
        "(`--health-sweep 5m`: every target group once in five minutes, spread), which the steady cycle's",
        "requests above leave out.",
        "",
        *table(rows, READS_COLUMNS),
        "",
        "## With the events queue",
        "",
        "A second observing daemon reads an events queue (moto's EventBridge rule with the shipped pattern,",
        "into SQS; its first discovery at `--discovery-rate 100`, not measured): its steady checks list the",
        "load balancers only when an event or `--topology-interval` says to; a revocation no event tells of;",
        "a new ALB whose CreateLoadBalancer event arrives as CloudTrail sends it. The queue's own requests",
        "(three long polls a minute) are left out of the steady cycle's.",
        "",
        *table(rows, QUEUE_COLUMNS),
        "",
        "## Requests per second at the proxy (the observing daemon's whole run, discovery included)",
        "",
        *histogram(rows),
        "",
        "## Budgets",
        "",
        "| budget | verdict | figure |",
        "|---|---|---|",
        *[f"| {name} | {verdict} | {figure} |" for name, verdict, figure in budgets(rows)],
        "",
    ]
    if failed:
        lines += ["## Sizes that could not be measured", "",
                  *[f"- {albs:,} ALBs: {error}" for albs, error in failed], ""]
    return "\n".join(lines)
