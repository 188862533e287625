"""Bad input gets one clear line and exit 2; settings come from flags or their ALBSG_* twins."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from monitor import __version__
from monitor.cli import build_parser, main, settings_from
from tests.support.helpers import run_check


def run(*args, env=None):
    base = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent"}
    return subprocess.run([sys.executable, "-m", "monitor", *args], capture_output=True, text=True,
                          env={**base, **(env or {})}, timeout=60)


@pytest.mark.parametrize("args, env, names", [
    (["check"], {}, "--cluster-name"),
    (["check", "--cluster-name", "c", "--output", "yaml"], {}, "--output"),
    (["run", "--cluster-name", "c", "--interval", "5 minutes"], {}, "--interval"),
    (["run", "--cluster-name", "c", "--mode", "repair"], {}, "--mode"),
    (["run", "--cluster-name", "c", "--listen", "nonsense"], {}, "--listen"),
    (["check", "--cluster-name", "c", "--mode", "enforce"], {}, "--mode"),  # check never writes: no such flag
    (["check", "--cluster-name", "c", "--frobnicate"], {}, "--frobnicate"),
    (["check", "--cluster-name", "c"], {"ALBSG_GRACE": "soon"}, "ALBSG_GRACE"),
    (["check"], {"ALBSG_CLUSTER_NAME": ""}, "--cluster-name"),
])
def test_bad_input_is_one_line_exit_2(args, env, names):
    result = run(*args, env=env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert names in lines[0]
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("args, env, says", [
    (["run", "--cluster-name", "c", "--interval", "1ms"], {}, "--interval: '1ms' is too short for run: at least 1s"),
    (["run", "--cluster-name", "c"], {"ALBSG_INTERVAL": "10ms"},
     "--interval (from ALBSG_INTERVAL): '10ms' is too short for run: at least 1s"),
    (["run", "--cluster-name", "c", "--cycle-timeout", "100ms"], {}, "--cycle-timeout: '100ms' is too short"),
    (["run", "--cluster-name", "c", "--interval", "-5s"], {}, "--interval: '-5s' is negative: durations must be positive"),
    (["run", "--cluster-name", "c", "--interval=-5s"], {}, "--interval: '-5s' is negative: durations must be positive"),
    (["run", "--cluster-name", "c", "--grace", "-1m"], {}, "--grace: '-1m' is negative: durations must be positive"),
    (["run", "--cluster-name", "c"], {"ALBSG_TOPOLOGY_INTERVAL": "-5m"},
     "--topology-interval (from ALBSG_TOPOLOGY_INTERVAL): '-5m' is negative: durations must be positive"),
    # a full re-discovery every second would spend the API budget the controllers share, for nothing
    (["run", "--cluster-name", "c", "--topology-interval", "1s"], {},
     "--topology-interval: '1s' is too short for run: at least 1m"),
    (["run", "--cluster-name", "c"], {"ALBSG_TOPOLOGY_INTERVAL": "30s"},
     "--topology-interval (from ALBSG_TOPOLOGY_INTERVAL): '30s' is too short for run: at least 1m"),
    (["demo", "--topology-interval", "100ms"], {}, "--topology-interval: '100ms' is too short for demo: at least 1s"),
])
def test_durations_out_of_bounds_are_refused_on_one_line(args, env, says):
    result = run(*args, env=env)
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"alb-sg-monitor: error: {says}"), line


def test_a_negative_duration_is_not_taken_for_a_flag():
    """`--interval -5s` reaches the duration parser: it never becomes `--interval` with no value."""
    result = run("run", "--cluster-name", "c", "--interval", "-5s")
    assert "expected one argument" not in result.stderr


def test_unknown_region_is_one_clear_line():
    result = run("check", "--cluster-name", "c", "--region", "mars-north-1",
                 env={"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "b"})
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "alb-sg-monitor: error: --region: unknown AWS region 'mars-north-1'; expected one such as us-east-1"]


def test_no_credentials_is_one_clear_line():
    result = run("check", "--cluster-name", "c", env={"AWS_REGION": "eu-west-1",
                                                     "AWS_CONFIG_FILE": "/nonexistent",
                                                     "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
                                                     "AWS_EC2_METADATA_DISABLED": "true"})
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert "AWS credentials" in line


def test_no_region_is_one_clear_line():
    result = run("check", "--cluster-name", "c", env={"AWS_CONFIG_FILE": "/nonexistent"})
    assert result.returncode == 2
    assert "--region" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_version():
    result = run("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"alb-sg-monitor {__version__}"


def test_help_lists_the_env_twins():
    result = run("run", "--help")
    assert result.returncode == 0
    assert "ALBSG_CLUSTER_NAME" in result.stdout and "--topology-interval" in result.stdout
    check = run("check", "--help").stdout
    assert "--output" in check and "--grace" not in check  # only the flags that mean something to it


def test_env_twins_and_flag_precedence(monkeypatch):
    monkeypatch.setenv("ALBSG_CLUSTER_NAME", "from-env")
    monkeypatch.setenv("ALBSG_INTERVAL", "500ms")
    monkeypatch.setenv("ALBSG_TOPOLOGY_INTERVAL", "1h")
    args = build_parser().parse_args(["run", "--interval", "2m"])
    settings = settings_from(args)
    assert settings.cluster_name == "from-env"
    assert settings.interval == 120.0  # the flag wins over its twin
    assert settings.topology_interval == 3600.0
    assert settings.mode == "observe" and settings.grace == 60.0 and settings.listen == "0.0.0.0:9917"


def test_no_command_prints_help_and_exits_2(capsys):
    assert main([]) == 2
    assert "COMMAND" in capsys.readouterr().err


def test_help_says_each_commands_shortest_interval_and_every_exit_status():
    run_help = " ".join(run("run", "--help").stdout.split())
    options = run_help.split("options:", 1)[1]
    interval = options.split("--interval INTERVAL", 1)[1].split("--topology-interval", 1)[0]
    assert "at least 1s" in interval and "500ms" not in interval  # run refuses 500ms
    check_help = " ".join(run("check", "--help").stdout.split())
    assert "exit 0 ok, 1 critical, 2 usage or configuration error, 3 incomplete" in check_help


@pytest.mark.parametrize("args, says", [
    (["run", "--cluster-name", "c", "--output", "json"],
     "alb-sg-monitor run: error: --output does not apply to run (only to check, preflight and demo)"),
    (["run", "--cluster-name", "c", "--output=json"],
     "alb-sg-monitor run: error: --output does not apply to run (only to check, preflight and demo)"),
    (["demo", "--region", "eu-west-1"],  # the demo's account lives in its own region
     "alb-sg-monitor demo: error: --region does not apply to demo (only to check, preflight and run)"),
    (["demo", "--kubernetes", "on"],  # the demo's world is AWS only
     "alb-sg-monitor demo: error: --kubernetes does not apply to demo (only to check, preflight and run)"),
    (["demo", "--log-format", "json"],  # the demo logs only errors, in the form its view needs
     "alb-sg-monitor demo: error: --log-format does not apply to demo (only to run)"),
    (["check", "--cluster-name", "c", "--grace", "1m"],
     "alb-sg-monitor check: error: --grace does not apply to check (only to run and demo)"),
])
def test_a_flag_that_means_nothing_to_the_command_is_refused_by_name(args, says):
    result = run(*args)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [says]
    assert result.stdout == ""


def test_an_env_twin_that_means_nothing_to_the_command_is_ignored():
    """One environment serves every command run in it (a pod's): `check` in the daemon's pod is not
    refused for the daemon's ALBSG_MODE or ALBSG_LOG_FORMAT. It gets on to what it needs (a region)."""
    result = run("check", "--cluster-name", "c", env={"ALBSG_MODE": "enforce", "ALBSG_LOG_FORMAT": "json",
                                                      "ALBSG_NAMESPACE": "monitoring",
                                                      "AWS_CONFIG_FILE": "/nonexistent"})
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()  # no warning: these are all variables the monitor reads
    assert line.startswith("alb-sg-monitor: error: --region")


def test_help_says_the_shortest_topology_interval():
    options = " ".join(run("run", "--help").stdout.split()).split("options:", 1)[1]
    topology = options.split("--topology-interval TOPOLOGY_INTERVAL", 1)[1].split("--cycle-timeout", 1)[0]
    assert "at least 1m" in topology


def test_unknown_albsg_variables_are_named_in_one_warning_and_change_nothing(world, capsys, monkeypatch):
    """A typo'd ALBSG_INTERVALL would otherwise leave the interval at its default without a word."""
    code, report = run_check(capsys, world.cluster)
    monkeypatch.setenv("ALBSG_INTERVALL", "5s")
    monkeypatch.setenv("ALBSG_VERBOSE", "1")
    assert main(["check", "--cluster-name", world.cluster, "--output", "json"]) == code == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["load_balancers"] == report["load_balancers"]
    assert captured.err.splitlines() == [
        "alb-sg-monitor: warning: unknown environment variables ignored: "
        "ALBSG_INTERVALL (did you mean ALBSG_INTERVAL?), ALBSG_VERBOSE"]


def test_the_unknown_variable_warning_comes_before_the_error_it_may_explain():
    result = run("check", env={"ALBSG_CLUSTERNAME": "prod-eks"})
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "alb-sg-monitor: warning: unknown environment variable ignored: ALBSG_CLUSTERNAME "
        "(did you mean ALBSG_CLUSTER_NAME?)",
        "alb-sg-monitor: error: --cluster-name: required; give the EKS cluster name (or set ALBSG_CLUSTER_NAME)"]
