"""Shared fixtures: one moto server over HTTP for the session, a fresh demo world per test."""

from __future__ import annotations

import itertools
import os

import pytest

from monitor.demo import world as demo_world

_clusters = itertools.count()


@pytest.fixture(scope="session")
def moto_endpoint():
    """A real moto server on loopback. Tests tell worlds apart by cluster name, so one server serves all."""
    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
    server, endpoint = demo_world.start_moto()
    yield endpoint
    server.stop()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture
def aws_env(moto_endpoint, monkeypatch):
    """Standard AWS environment pointing the product at moto, as a user would with AWS_ENDPOINT_URL."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("AWS_REGION", "ap-northeast-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    # --kubernetes auto must not find a developer's own cluster; tests that want one set KUBECONFIG.
    monkeypatch.setenv("KUBECONFIG", "/nonexistent/kubeconfig")
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    for name in [n for n in os.environ if n.startswith("ALBSG_")]:
        monkeypatch.delenv(name)
    return moto_endpoint


@pytest.fixture
def proxy(world, monkeypatch):
    """The request-counting, fault-injecting proxy in front of the world's moto, in AWS_ENDPOINT_URL."""
    from tests.support.awsproxy import AwsProxy

    with AwsProxy(world.endpoint) as running:
        monkeypatch.setenv("AWS_ENDPOINT_URL", running.url)
        yield running


@pytest.fixture
def world(aws_env) -> demo_world.World:
    """A fresh mid-migration cluster, with a cluster name no other test uses."""
    return demo_world.seed(aws_env, cluster=f"test-{next(_clusters)}-eks")


def pytest_terminal_summary(terminalreporter):
    """Measurements tests record with record_property (e.g. revocation-to-alert time), shown at the
    end of every run so CI logs carry them, and in --junitxml reports as properties."""
    lines = [f"{report.nodeid}: {name} = {value}"
             for kind in ("passed", "failed") for report in terminalreporter.stats.get(kind, [])
             if report.when == "call" for name, value in report.user_properties]
    if lines:
        terminalreporter.section("measurements")
        for line in lines:
            terminalreporter.write_line(line)
