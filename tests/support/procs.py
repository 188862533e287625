"""Real processes for end-to-end tests: started with their output in a file, waited for over HTTP,
and always stopped (terminate, then kill) when the test's ExitStack closes."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

EXE = str(Path(sys.executable).with_name("alb-sg-monitor"))


class Service:
    """One child process; `log` holds its stdout and stderr."""

    def __init__(self, name: str, argv: list[str], log_dir: Path, env: dict[str, str] | None = None,
                 merge_stderr: bool = True) -> None:
        self.name = name
        self.log = log_dir / f"{name}.log"
        self.errors = self.log if merge_stderr else log_dir / f"{name}.stderr"
        self._out = self.log.open("wb")
        self._err = self._out if merge_stderr else self.errors.open("wb")
        self.process = subprocess.Popen(argv, stdout=self._out, stderr=self._err, env=env, start_new_session=True)

    def tail(self, lines: int = 30) -> str:
        self._out.flush()
        text = self.log.read_text(errors="replace").splitlines()
        return f"--- {self.name} (exit {self.process.poll()}), last {lines} lines:\n" + "\n".join(text[-lines:])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self._out.close()
        self._err.close()


def start(stack: contextlib.ExitStack, name: str, argv: list[str], log_dir: Path,
          env: dict[str, str] | None = None, merge_stderr: bool = True) -> Service:
    service = Service(name, argv, log_dir, env, merge_stderr)
    stack.callback(service.stop)
    return service


def http_get(url: str, timeout: float = 2.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def wait_until(what: str, probe: Callable[[], Any], timeout: float, services: tuple[Service, ...] = (),
               every: float = 0.2) -> Any:
    """Call `probe` until it returns something truthy; fail naming `what`, with the services' logs,
    when `timeout` passes or one of the services exits."""
    deadline = time.monotonic() + timeout
    while True:
        for service in services:
            if service.process.poll() is not None:
                raise AssertionError(f"{service.name} exited while waiting for {what}\n{service.tail()}")
        try:
            found = probe()
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            found = None
        if found:
            return found
        if time.monotonic() > deadline:
            logs = "\n".join(s.tail() for s in services)
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}\n{logs}")
        time.sleep(every)


def wait_ready(url: str, service: Service, timeout: float = 30.0) -> None:
    wait_until(f"{url} to answer 200", lambda: http_get(url)[0] == 200, timeout, (service,))


def prometheus_query(base: str, query: str) -> list[dict[str, Any]]:
    """The instant vector a PromQL query returns from a running Prometheus."""
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": query})
    status, body = http_get(url)
    assert status == 200, body
    return json.loads(body)["data"]["result"]


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without ALBSG_* settings, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALBSG_")}
    return env | extra

