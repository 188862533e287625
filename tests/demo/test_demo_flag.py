"""`--demo`: check and preflight against the embedded account, as a new user first tries them."""

from __future__ import annotations

import json
import subprocess
import sys


def run(*args):
    env = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent"}
    return subprocess.run([sys.executable, "-m", "monitor", *args], capture_output=True, text=True, env=env, timeout=180)


def test_check_demo_needs_no_account_and_finds_every_alb():
    result = run("check", "--demo", "--output", "json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["cluster"] == "demo-eks" and len(report["load_balancers"]) == 5
    assert all(lb["reachable"] is True for lb in report["load_balancers"])
    # Ingress names come from the demo's Kubernetes API too (the ALB tags name them as well)
    assert {lb["ingress"] for lb in report["load_balancers"]} >= {"shop/frontend", "marketing/landing"}


def test_preflight_demo_shows_pitfall_1_first():
    result = run("preflight", "--demo")
    assert result.returncode == 1, result.stderr
    findings = result.stdout[result.stdout.index("FINDINGS"):].splitlines()
    assert findings[1].split()[:2] == ["CRITICAL", "MIGRATION_POLICY_MISSING:"]
