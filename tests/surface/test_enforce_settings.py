"""The enforce safety-rail settings: safe defaults, ALBSG_* twins, one-line errors (exit 2)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from monitor.cli import build_parser, settings_from


def test_defaults_are_the_documented_safe_ones(monkeypatch):
    for name in ("ALBSG_MODE", "ALBSG_MAX_RESTORES_PER_CYCLE", "ALBSG_FIGHT_WINDOW"):
        monkeypatch.delenv(name, raising=False)
    settings = settings_from(build_parser().parse_args(["check", "--cluster-name", "c"]))
    assert settings.mode == "observe"
    assert (settings.max_restores_per_cycle, settings.max_restores_per_hour) == (5, 20)
    assert (settings.fight_threshold, settings.fight_window) == (3, 3600.0)
    assert (settings.restore_backoff, settings.restore_backoff_max, settings.cleanup_grace) == (60.0, 1800.0, 300.0)


def test_flags_and_env_twins(monkeypatch):
    monkeypatch.setenv("ALBSG_FIGHT_WINDOW", "30m")
    monkeypatch.setenv("ALBSG_MAX_RESTORES_PER_HOUR", "50")
    args = build_parser().parse_args(["run", "--cluster-name", "c", "--max-restores-per-hour", "7",
                                      "--fight-threshold", "4", "--cleanup-grace", "10m"])
    settings = settings_from(args)
    assert settings.fight_window == 1800.0
    assert settings.max_restores_per_hour == 7  # the flag wins over its twin
    assert settings.fight_threshold == 4 and settings.cleanup_grace == 600.0


@pytest.mark.parametrize("args, env, line", [
    (["--max-restores-per-cycle", "0"], {}, "--max-restores-per-cycle: '0' is not a whole number of at least 1"),
    (["--max-restores-per-hour", "lots"], {}, "--max-restores-per-hour: 'lots' is not a whole number of at least 1"),
    (["--fight-threshold", "1"], {}, "--fight-threshold: '1' is not a whole number of at least 2"),
    ([], {"ALBSG_FIGHT_WINDOW": "an hour"}, "--fight-window (from ALBSG_FIGHT_WINDOW): cannot parse"),
    (["--restore-backoff", "0s"], {}, "--restore-backoff: '0s' must be longer than zero"),
    (["--cleanup-grace=-5m"], {}, "--cleanup-grace: '-5m' is negative: durations must be positive"),
])
def test_bad_values_are_one_line_naming_the_setting(args, env, line):
    result = subprocess.run([sys.executable, "-m", "monitor", "run", "--cluster-name", "c", *args],
                            capture_output=True, text=True, timeout=60,
                            env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", **env})
    assert result.returncode == 2
    (only,) = result.stderr.strip().splitlines()
    assert only.startswith("alb-sg-monitor: error: " + line), only
