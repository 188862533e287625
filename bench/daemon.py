"""The real daemon as a child process, watched from outside: its JSON log as it is written, its CPU
time and peak RSS from /proc, and its /metrics."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

_TICKS = os.sysconf("SC_CLK_TCK")
# moto, even indexed, answers a 13,000-rule listing in seconds where AWS takes a fraction of one: a
# deadline of a minute keeps the bench measuring checks that finish, not abandoned ones.
CYCLE_TIMEOUT = "1m"


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def status_bytes(pid: int, key: str) -> int:
    """A memory figure of /proc/<pid>/status (VmHWM: the peak resident set; VmRSS: the current one)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    return 0


def reachable_by_name(families: dict[str, list[tuple[dict[str, str], float]]]) -> dict[str, float]:
    return {labels["load_balancer"]: value for labels, value in families.get("albsg_load_balancer_reachable", ())}


class DaemonProcess:
    """`alb-sg-monitor run --kubernetes off` against `endpoint`; use as a context manager."""

    def __init__(self, endpoint: str, cluster: str, interval: float, log: Path, extra: list[str] | None = None) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith("ALBSG_")}
        env.update(AWS_ENDPOINT_URL=endpoint, AWS_REGION="ap-northeast-1",
                   AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench")
        argv = [sys.executable, "-m", "monitor", "run", "--cluster-name", cluster, "--kubernetes", "off",
                "--interval", f"{interval:g}s", "--topology-interval", "1h", "--cycle-timeout", CYCLE_TIMEOUT,
                "--listen", f"127.0.0.1:{self.port}", "--log-format", "json", *(extra or [])]
        self._log = log.open("w")
        self._lock = threading.Lock()
        self._events: list[dict[str, Any]] = []
        self._lines = 0  # lines logged so far
        self.max_metric_rss = 0.0
        self.process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True)
        self._reader = threading.Thread(target=self._read, name="daemon-log", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            seen = time.monotonic()
            self._log.write(line)
            self._lines += 1
            try:
                event = json.loads(line)
                event["_seen"] = seen
                event["_cpu"] = cpu_seconds(self.process.pid)
            except (ValueError, OSError):
                continue
            with self._lock:
                self._events.append(event)

    def events(self, name: str) -> list[dict[str, Any]]:
        self._alive()
        with self._lock:
            return [e for e in self._events if e.get("event") == name]

    def event(self, name: str) -> dict[str, Any] | None:
        found = self.events(name)
        return found[0] if found else None

    def scrape(self) -> dict[str, list[tuple[dict[str, str], float]]]:
        """/metrics as {sample name: [(labels, value)]}; empty while the server is not up."""
        self._alive()
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as answer:
                body = answer.read().decode()
        except OSError:
            return {}
        samples: dict[str, list[tuple[dict[str, str], float]]] = {}
        for family in text_string_to_metric_families(body):
            for sample in family.samples:
                samples.setdefault(sample.name, []).append((sample.labels, sample.value))
        for _, value in samples.get("process_resident_memory_bytes", ()):
            self.max_metric_rss = max(self.max_metric_rss, value)
        return samples

    def when_logged(self, probe: Callable[[dict[str, list[tuple[dict[str, str], float]]]], Any],
                    at_least_every: float = 1.0) -> Callable[[], Any]:
        """A probe of /metrics for a latency wait that scrapes only once the daemon has logged a
        line since the last scrape (a check publishes, then logs), or `at_least_every` seconds after
        it. Scraping every few milliseconds would load the daemon whose latency it measures: at
        5,000 ALBs a scrape renders 1.1 MB, and 20 a second made each check about 1 s longer."""
        last: dict[str, float] = {"lines": -1, "at": 0.0}

        def probe_now() -> Any:
            lines, now = self._lines, time.monotonic()
            if lines == last["lines"] and now - last["at"] < at_least_every:
                self._alive()
                return None
            last["lines"], last["at"] = lines, now
            return probe(self.scrape())
        return probe_now

    def peak_rss(self) -> int:
        return status_bytes(self.process.pid, "VmHWM")

    def _alive(self) -> None:
        if self.process.poll() is not None:
            raise RuntimeError(f"the daemon exited with {self.process.returncode}; see {self._log.name}")

    def __enter__(self) -> "DaemonProcess":
        return self

    def __exit__(self, *_: object) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self._reader.join(5)
        self._log.close()
