"""A chart value the monitor would refuse fails `helm lint` (and so `helm install`), not the pod: each
value that becomes a flag of `run` is tried through the real helm with values the monitor's own
validation accepts and refuses, and the two must agree."""

from __future__ import annotations

import pytest

from monitor.cli import MINIMUMS, build_parser, settings_from
from monitor.core.errors import ConfigError
from tests.deploy.test_helm import CLUSTER, NOT_VALUES, run_flags, value_key
from tests.support.helmchart import CHART, RELEASE, effective_settings, helm, template

DURATIONS = ["0s", "0", "0ms", "0.0s", "0m0s", "00s", "-5s", "-1m", "15", "1d", "5 minutes", "1.5.5s", "1m5",
             "s", "", ".5s", "1e3ms", "15S", "1 s", "500ms", "999ms", "0.5s", "0.0166m", "0.00027h", "1s",
             "1000ms", "0.0167m", "0.00028h", "15s", "1m30s", "1h", "2h0m", "0s1s", "0.5m", " 15s"]
SHORT_DURATIONS = ["0s", "-1m", "1d", "", "500ms", "5m", "1m30s"]
COUNTS = ["0", "1", "2", "3", "17", "-1", "1.5", "x", ""]
CANDIDATES: dict[str, list[str]] = {
    "--interval": DURATIONS,
    "--cycle-timeout": DURATIONS,
    "--grace": DURATIONS,
    "--topology-interval": SHORT_DURATIONS,
    "--fight-window": SHORT_DURATIONS,
    "--restore-backoff": SHORT_DURATIONS,
    "--restore-backoff-max": SHORT_DURATIONS,
    "--cleanup-grace": SHORT_DURATIONS,
    "--health-sweep": ["0", "0s", "00", "0.0", "500ms", "5m", "1m30s", "-1m", "1d", "", "abc", " 5m"],
    "--discovery-rate": ["0", "0.05", "0.09", "0.1", "0.5", ".5", "5.", "10", "2.5", "999.9", "1000", "1000.0",
                         "01000", "1000.5", "1001", "-1", "abc", "nan", "inf", ""],
    "--max-restores-per-cycle": COUNTS,
    "--max-restores-per-hour": COUNTS,
    "--fight-threshold": COUNTS,
    "--kubernetes": ["auto", "on", "off", "yes", "ON", ""],
    "--mode": ["observe", "enforce", "repair", "Observe", ""],
    "--log-format": ["json", "console", "auto", "text", ""],
    "--listen": ["0.0.0.0:9917", "[::]:9917", ":9917", "localhost:8080", "host:1", "0.0.0.0:65535", "localhost",
                 "0.0.0.0:65536", "0.0.0.0:-1", "0.0.0.0:abc", "0.0.0.0:", "0.0.0.0:99 17", ""],
    # An empty clusterName is refused at install by the template's `required`, which helm lint only
    # warns about (test_helm.py's test_cluster_name_is_required_with_a_message_that_says_how).
    "--cluster-name": ["prod-eks", "my.cluster_2"],
    "--region": ["eu-west-1", ""],
    "--state-file": ["/var/lib/alb-sg-monitor/state.json", ""],
    "--events-queue": ["https://sqs.eu-west-1.amazonaws.com/123456789012/albsg-events", ""],
    "--v2-controller-role-arn": ["arn:aws:iam::123456789012:role/v2", ""],
    "--v1-controller-role-arn": ["arn:aws:iam::123456789012:role/v1", ""],
}
# Values the chart leaves out of the pod's environment when empty (`with` in _helpers.tpl): the
# monitor then takes its own default.
OMITTED_WHEN_EMPTY = {"--region", "--cycle-timeout", "--state-file", "--events-queue", "--v2-controller-role-arn",
                      "--v1-controller-role-arn"}
# What the chart refuses though the monitor would run with it, and why (values.schema.json's $comment).
STRICTER = {
    ("--interval", "500ms500ms"): "at least 1s only as a sum: no pattern adds parts up",
    ("--cycle-timeout", "0.5s0.5s"): "likewise",
    ("--discovery-rate", "1e2"): "an exponent",
    ("--discovery-rate", "1_0"): "underscores",
    ("--listen", "0.0.0.0:0"): "port 0 is no container port",
    ("--listen", "0.0.0.0:09917"): "a leading zero in the container port",
}


def monitor_accepts(flag: str, value: str) -> bool:
    """What `alb-sg-monitor run` does with this value in its environment: start, or refuse it."""
    argv = ["run", "--cluster-name=prod-eks"]
    if not (value == "" and flag in OMITTED_WHEN_EMPTY):
        argv.append(f"{flag}={value}")
    try:
        settings_from(build_parser().parse_args(argv), minimums=MINIMUMS["run"])
    except ConfigError:
        return False
    return True


def lint(*settings: str):
    return helm("lint", str(CHART), *CLUSTER, *[arg for s in settings for arg in ("--set", s)])


def test_every_value_of_run_has_candidates():
    assert set(CANDIDATES) == set(run_flags()) - set(NOT_VALUES)
    for flag, values in CANDIDATES.items():
        outcomes = {monitor_accepts(flag, v) for v in values}
        if flag not in OMITTED_WHEN_EMPTY | {"--cluster-name"} or flag == "--cycle-timeout":
            assert outcomes == {True, False}, f"{flag}: the candidates must include good and bad values"


@pytest.mark.parametrize("flag, value", [(f, v) for f, values in CANDIDATES.items() for v in values])
def test_helm_lint_refuses_exactly_what_the_monitor_refuses(flag, value):
    done = lint(f"{value_key(flag)}={value}")
    if monitor_accepts(flag, value):
        assert done.returncode == 0, f"{value_key(flag)}={value!r}: the monitor accepts it, helm lint does not:\n" \
                                     f"{done.stdout}{done.stderr}"
    else:
        assert done.returncode != 0, f"{value_key(flag)}={value!r}: the monitor refuses it, helm lint passes it"
        assert f"at '/{value_key(flag)}'" in done.stdout + done.stderr


@pytest.mark.parametrize("flag, value", list(STRICTER))
def test_what_the_chart_refuses_beyond_the_monitor_is_named(flag, value):
    assert monitor_accepts(flag, value), f"{flag}={value!r}: the monitor refuses it too; drop it from STRICTER"
    assert lint(f"{value_key(flag)}={value}").returncode != 0


@pytest.mark.parametrize("setting, seconds", [("interval=0.5s500ms", 1.0), ("interval=0.25m", 15.0),
                                              ("cycleTimeout=500ms500ms", 1.0)])
def test_without_the_schema_the_templates_add_the_parts_up(setting, seconds):
    """--skip-schema-validation: a sum of parts is still held to the minimum, exactly."""
    objects = template(*CLUSTER, "--skip-schema-validation", "--set", setting)
    settings = effective_settings(objects)
    assert getattr(settings, "interval" if setting.startswith("interval") else "cycle_timeout") == seconds


@pytest.mark.parametrize("setting", ["interval=0.5s499ms", "interval=0.01m", "cycleTimeout=999ms"])
def test_without_the_schema_the_templates_still_refuse_a_duration_under_the_minimum(setting):
    done = helm("template", RELEASE, str(CHART), *CLUSTER, "--skip-schema-validation", "--set", setting)
    assert done.returncode != 0
    assert "is too short for run: at least 1s" in done.stderr
