"""`alb-sg-monitor run` as a real process: it stops cleanly on signals (also as PID 1), and
refuses bad settings or a busy port with one line and exit status 2 before anything starts."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.support import procs
from tests.support.awsproxy import AwsProxy
from tests.support.fixtures import reset_moto, tiny_moto  # noqa: F401 (fixture)
from tests.support.tinyworld import CLUSTER, build_world, env_for, free_port

EXE = str(Path(sys.executable).with_name("alb-sg-monitor"))
STOP_WITHIN_SECONDS = 5.0


@pytest.fixture
def env(tiny_moto):  # noqa: F811
    reset_moto(tiny_moto)
    build_world(tiny_moto, ("web",))
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "ALBSG_"))}
    return clean | env_for(tiny_moto) | {"AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null"}


def start(env: dict[str, str], port: int, prefix: tuple[str, ...] = (), args: tuple[str, ...] = ()) -> subprocess.Popen:
    return subprocess.Popen([*prefix, EXE, "run", "--cluster-name", CLUSTER, "--listen", f"127.0.0.1:{port}",
                             "--interval", "1s", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def wait_ready(process: subprocess.Popen, port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError):
            pass
        time.sleep(0.1)
    process.kill()
    raise AssertionError(f"not ready within {timeout}s: {process.communicate()}")


def stop_and_time(process: subprocess.Popen, pid: int, signum: int) -> tuple[float, str]:
    began = time.monotonic()
    os.kill(pid, signum)
    try:
        out, err = process.communicate(timeout=STOP_WITHIN_SECONDS + 5)
    except subprocess.TimeoutExpired:
        process.kill()
        raise
    return time.monotonic() - began, out.decode() + err.decode()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGXCPU],
                         ids=lambda signum: signal.Signals(signum).name)
def test_a_signal_stops_the_daemon_cleanly_within_seconds(env, signum):
    port = free_port()
    process = start(env, port)
    wait_ready(process, port)
    took, output = stop_and_time(process, process.pid, signum)
    assert process.returncode == 0, output
    assert took < STOP_WITHIN_SECONDS, output
    events = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    names = [e["event"] for e in events]
    assert "check_cycle" in names and names[-1] == "daemon_stopped"
    assert {"event": "stop_requested", "signal": signal.Signals(signum).name}.items() <= next(
        e for e in events if e["event"] == "stop_requested").items()
    assert "Traceback" not in output


# Signals whose default action would end the process: ignored, each with a signal_ignored line.
IGNORED = ("SIGUSR1", "SIGUSR2", "SIGALRM", "SIGVTALRM", "SIGPROF", "SIGIO", "SIGPWR")


def test_other_signals_are_ignored_with_a_line_and_the_daemon_goes_on(env, tmp_path):
    port = free_port()
    with contextlib.ExitStack() as stack:
        daemon = procs.start(stack, "run", [EXE, "run", "--cluster-name", CLUSTER, "--listen", f"127.0.0.1:{port}",
                                            "--interval", "1s", "--log-format", "json"], tmp_path, env)
        procs.wait_ready(f"http://127.0.0.1:{port}/readyz", daemon)
        pid = daemon.process.pid
        os.kill(pid, signal.SIGPIPE)  # ignored without a word: a write to a closed socket fails instead
        for name in IGNORED:
            os.kill(pid, getattr(signal, name))

        def ignored() -> set[str]:
            return {e["signal"] for e in _events(daemon.log.read_text()) if e["event"] == "signal_ignored"}

        procs.wait_until("every ignored signal logged", lambda: ignored() == set(IGNORED), 20, (daemon,))
        cycles = daemon.log.read_text().count('"check_cycle"')
        procs.wait_until("checks going on", lambda: daemon.log.read_text().count('"check_cycle"') > cycles, 20, (daemon,))
        assert procs.http_get(f"http://127.0.0.1:{port}/readyz")[0] == 200
        daemon.process.send_signal(signal.SIGTERM)
        assert daemon.process.wait(timeout=STOP_WITHIN_SECONDS + 5) == 0
    events = _events(daemon.log.read_text())
    assert all(e["level"] == "warning" for e in events if e["event"] == "signal_ignored")
    assert len([e for e in events if e["event"] == "signal_ignored"]) == len(IGNORED)  # SIGPIPE said nothing
    assert [e["event"] for e in events][-2:] == ["stop_requested", "daemon_stopped"]
    assert next(e for e in events if e["event"] == "stop_requested")["signal"] == "SIGTERM"


def _events(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


@pytest.mark.parametrize(("args", "extra_env", "reason"), [
    (("--mode", "enforce", "--kubernetes", "off"), {}, "kubernetes_off"),
    (("--mode", "enforce"), {"KUBECONFIG": "/nonexistent/kubeconfig"}, "no_kubernetes_config"),
    (("--mode", "observe", "--kubernetes", "off"), {}, None),
])
def test_enforce_without_leader_election_warns_at_start(env, args, extra_env, reason):
    port = free_port()
    process = start(env | extra_env, port, args=args)
    wait_ready(process, port)
    _, output = stop_and_time(process, process.pid, signal.SIGTERM)
    assert process.returncode == 0, output
    warnings = [e for e in _events(output) if e["event"] == "enforce_without_leader_election"]
    if reason is None:  # observe mode writes nothing: nothing to elect a writer for
        assert warnings == []
        return
    (warning,) = warnings
    assert (warning["level"], warning["reason"]) == ("warning", reason)
    assert "two replicas would both write" in warning["detail"].lower()


def _pid_namespaces_work() -> bool:
    if not shutil.which("unshare"):
        return False
    return subprocess.run(["unshare", "--pid", "--fork", "true"], capture_output=True).returncode == 0


@pytest.mark.skipif(not _pid_namespaces_work(), reason="needs unshare --pid (root or user namespaces)")
def test_sigterm_stops_it_as_pid_1(env):
    port = free_port()
    # in a new PID namespace the daemon is PID 1: the kernel drops signals it has no handler for
    process = start(env, port, prefix=("unshare", "--pid", "--fork", "--kill-child"))
    wait_ready(process, port)
    children = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
    assert len(children) == 1
    inner = int(children[0])
    nspid = next(line for line in Path(f"/proc/{inner}/status").read_text().splitlines() if line.startswith("NSpid:"))
    assert nspid.split()[-1] == "1"  # its PID inside its namespace
    took, output = stop_and_time(process, inner, signal.SIGTERM)
    assert process.returncode == 0, output
    assert took < STOP_WITHIN_SECONDS, output


def test_a_port_in_use_is_one_line_and_exit_2(env):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run([EXE, "run", "--cluster-name", CLUSTER, "--listen", f"127.0.0.1:{port}",
                                 "--log-format", "json"], env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"alb-sg-monitor: error: --listen: 127.0.0.1:{port} is already in use; choose another address with --listen"]


@pytest.mark.parametrize(("args", "names"), [
    (["--interval", "soon"], "--interval"),
    (["--topology-interval", "0s"], "--topology-interval"),
    (["--listen", "9917"], "--listen"),
    (["--mode", "fix"], "--mode"),
])
def test_bad_flags_exit_2_before_anything_starts(env, args, names):
    port = free_port()
    result = subprocess.run([EXE, "run", "--cluster-name", CLUSTER, *args], env=env | {"ALBSG_LISTEN": f"127.0.0.1:{port}"},
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert len(result.stderr.splitlines()) == 1 and names in result.stderr
    assert result.stdout == ""  # not even the start-up event: nothing ran


def test_a_missing_cluster_name_exits_2(env):
    result = subprocess.run([EXE, "run"], env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "alb-sg-monitor: error: --cluster-name: required; give the EKS cluster name (or set ALBSG_CLUSTER_NAME)"]


def _disconnect_mid_answer(port: int) -> None:
    """A scraper that asks and resets the connection without reading the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        client.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")


def test_the_log_is_one_json_stream_through_a_slow_aws_and_rude_clients(env, tmp_path):
    """Every line the process writes, stdout and stderr, is a JSON event with a snake_case name:
    the scheduler's overruns are one line per episode, a client that hangs up is one line."""
    port = free_port()
    with AwsProxy(env["AWS_ENDPOINT_URL"]) as proxy, contextlib.ExitStack() as stack:
        daemon = procs.start(stack, "run", [EXE, "run", "--cluster-name", CLUSTER, "--listen", f"127.0.0.1:{port}",
                                            "--interval", "1s", "--cycle-timeout", "2s", "--log-format", "json"],
                             tmp_path, env | {"AWS_ENDPOINT_URL": proxy.url})
        procs.wait_ready(f"http://127.0.0.1:{port}/readyz", daemon)
        proxy.delay(["DescribeSecurityGroupRules"], seconds=4.0)
        procs.wait_until("three abandoned checks", lambda: daemon.log.read_text().count('"check_abandoned"') >= 3,
                         40, (daemon,))
        for _ in range(20):
            _disconnect_mid_answer(port)
        proxy.heal()
        procs.wait_until("a complete check after the slow spell", lambda: '"cycle_overrun_ended"' in daemon.log.read_text(),
                         40, (daemon,))
        daemon.process.send_signal(signal.SIGTERM)
        assert daemon.process.wait(timeout=STOP_WITHIN_SECONDS + 5) == 0
    lines = [line for line in daemon.log.read_text().splitlines() if line.strip()]
    events = []
    for line in lines:
        assert line.startswith("{"), line
        event = json.loads(line)
        assert re.fullmatch(r"[a-z][a-z0-9_]*", event["event"]), line
        events.append(event)
    names = [e["event"] for e in events]
    overruns = [e for e in events if e["event"] == "cycle_overrun"]
    ended = [e for e in events if e["event"] == "cycle_overrun_ended"]
    assert overruns and {e["loop"] for e in overruns} == {"check"}
    assert len(ended) in (len(overruns), len(overruns) - 1)
    assert sum(e["skipped_runs"] for e in ended) > len(overruns)  # fewer lines than skipped runs
    assert "job_run_skipped" not in names
    assert names[-1] == "daemon_stopped"
