"""The page end to end, with real parts only: two `alb-sg-monitor run` replicas against the demo
world on moto, the Debian `prometheus` scraping them and evaluating the project's alert rules, and
the Debian `prometheus-alertmanager` posting to a webhook this test runs. Revoking the shop ALB's
node rule delivers one critical alert naming the ALB and its Ingress; restoring the rule resolves
it. The time from revocation to delivery is reported, not asserted tightly."""

from __future__ import annotations

import contextlib
import json
import shutil
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor.demo import world as demo_world
from tests.deploy.test_alert_rules import _with_reachability_for
from tests.support import procs
from tests.support.tinyworld import free_port

pytestmark = pytest.mark.slow

PROMETHEUS = "/usr/bin/prometheus"
ALERTMANAGER = "/usr/bin/prometheus-alertmanager"
ALERT = "AlbSgLoadBalancerUnreachable"
REPLICAS = 2
# Generous: the path is interval (1s) + scrape (1s) + `for` (3s) + evaluation (1s) + group_wait
# (1s), about 7s; a loaded CI machine gets a lot of slack before this fails.
DELIVERY_LIMIT_SECONDS = 120.0


class Webhook:
    """An Alertmanager webhook receiver on loopback: remembers every notification and when it came."""

    def __init__(self) -> None:
        self.received: list[tuple[float, dict[str, Any]]] = []
        self._changed = threading.Condition()
        webhook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with webhook._changed:
                    webhook.received.append((time.monotonic(), json.loads(body)))
                    webhook._changed.notify_all()
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/alerts"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def alerts(self, status: str, **labels: str) -> list[tuple[float, dict[str, Any]]]:
        """(arrival, alert) for every alert in `status` with these labels, over all notifications."""
        with self._changed:
            return [(at, alert) for at, note in self.received for alert in note["alerts"]
                    if alert["status"] == status and labels.items() <= alert["labels"].items()]

    def wait(self, status: str, timeout: float, services: tuple[procs.Service, ...], **labels: str):
        return procs.wait_until(f"a {status} {labels} notification", lambda: self.alerts(status, **labels),
                                timeout, services)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def alertmanager_config(webhook_url: str) -> dict[str, Any]:
    return {
        "route": {"receiver": "test", "group_by": ["alertname", "load_balancer"],
                  "group_wait": "1s", "group_interval": "1s", "repeat_interval": "1h"},
        "receivers": [{"name": "test", "webhook_configs": [{"url": webhook_url, "send_resolved": True}]}],
    }


def prometheus_config(rules: Path, monitors: list[int], alertmanager: int) -> dict[str, Any]:
    return {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "1s"},
        "rule_files": [str(rules)],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{alertmanager}"]}]}]},
        "scrape_configs": [{"job_name": "alb-sg-monitor", "static_configs": [
            {"targets": [f"127.0.0.1:{port}" for port in monitors]}]}],
    }


def reachability_evaluated(prom: str) -> bool:
    status, body = procs.http_get(f"{prom}/api/v1/rules")
    groups = json.loads(body)["data"]["groups"] if status == 200 else []
    return any(rule.get("name") == ALERT and rule.get("health") == "ok" and not
               rule.get("lastEvaluation", "").startswith("0001") for group in groups for rule in group["rules"])


@pytest.fixture
def stack():
    with contextlib.ExitStack() as stack:
        yield stack


def _binaries() -> None:
    for binary in (PROMETHEUS, ALERTMANAGER):
        if not Path(binary).exists() and not shutil.which(Path(binary).name):
            pytest.fail(f"{binary} is required (Debian packages prometheus and prometheus-alertmanager; "
                        ".ci/run installs them)")


def test_revoking_a_rule_pages_with_the_alb_named_and_restoring_it_resolves(world, stack, tmp_path,
                                                                           record_property):
    _binaries()
    shop = world.lb_name["shop"]
    labels = {"alertname": ALERT, "load_balancer": shop, "ingress_namespace": "shop", "ingress": "frontend"}

    # Two replicas of the daemon, as deploy/kubernetes runs it.
    env = procs.clean_env(AWS_ENDPOINT_URL=world.endpoint, AWS_REGION=world.region,
                          AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
                          AWS_CONFIG_FILE="/dev/null", AWS_SHARED_CREDENTIALS_FILE="/dev/null",
                          KUBECONFIG="/nonexistent/kubeconfig")
    env.pop("AWS_PROFILE", None)
    monitors, daemons = [], []
    for replica in range(REPLICAS):
        port = free_port()
        daemons.append(procs.start(stack, f"monitor-{replica}", [
            procs.EXE, "run", "--cluster-name", world.cluster, "--kubernetes", "off", "--interval", "1s",
            "--listen", f"127.0.0.1:{port}", "--log-format", "json"], tmp_path, env))
        monitors.append(port)

    webhook = Webhook()
    stack.callback(webhook.close)
    am_port = free_port()
    (tmp_path / "alertmanager.yml").write_text(yaml.safe_dump(alertmanager_config(webhook.url)))
    alertmanager = procs.start(stack, "alertmanager", [
        ALERTMANAGER, f"--config.file={tmp_path / 'alertmanager.yml'}", f"--storage.path={tmp_path / 'am-data'}",
        f"--web.listen-address=127.0.0.1:{am_port}", "--cluster.listen-address="], tmp_path)

    # The project's rules, with the page's `for` shortened from 45s so the test takes seconds.
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir()
    _with_reachability_for(rules_dir, "3s")
    prom_port = free_port()
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(
        prometheus_config(rules_dir / "alerts.yaml", monitors, am_port)))
    prometheus = procs.start(stack, "prometheus", [
        PROMETHEUS, f"--config.file={tmp_path / 'prometheus.yml'}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{prom_port}"], tmp_path)
    services = (*daemons, alertmanager, prometheus)

    for port, daemon in zip(monitors, daemons):
        procs.wait_ready(f"http://127.0.0.1:{port}/readyz", daemon)
    procs.wait_ready(f"http://127.0.0.1:{am_port}/-/ready", alertmanager)
    prom = f"http://127.0.0.1:{prom_port}"
    procs.wait_ready(f"{prom}/-/ready", prometheus)
    # Both replicas scraped, the shop ALB reachable in each, and the rules loaded.
    procs.wait_until("Prometheus to see the shop ALB reachable in both replicas", lambda: len(
        procs.prometheus_query(prom, f'albsg_load_balancer_reachable{{load_balancer="{shop}"}} == 1')) == REPLICAS,
        60, services)
    procs.wait_until("Prometheus to evaluate the project's reachability rule", lambda: reachability_evaluated(prom),
                     30, services)
    assert not webhook.alerts("firing", alertname=ALERT), "paged before anything was revoked"

    revoked_at = time.monotonic()
    demo_world.revoke(world, "shop_v1")
    delivered = webhook.wait("firing", DELIVERY_LIMIT_SECONDS, services, **labels)
    seconds = delivered[0][0] - revoked_at
    record_property("revocation_to_alert_seconds", round(seconds, 1))
    print(f"\nrevocation to alert delivery: {seconds:.1f}s "
          f"(interval 1s, scrape 1s, evaluation 1s, for 3s, group_wait 1s)")
    assert seconds < DELIVERY_LIMIT_SECONDS

    alert = delivered[0][1]
    assert alert["labels"]["severity"] == "critical"
    assert "instance" not in alert["labels"], "one alert per ALB, not one per replica"
    assert shop in alert["annotations"]["summary"]
    assert "shop/frontend" in alert["annotations"]["description"]
    assert alert["annotations"]["runbook_url"].endswith("/docs/runbook.md#albsgloadbalancerunreachable")
    # Only the shop ALB lost its path: no other ALB paged.
    paged = {a["labels"]["load_balancer"] for _, a in webhook.alerts("firing", alertname=ALERT)}
    assert paged == {shop}

    restored_at = time.monotonic()
    demo_world.restore(world, "shop_v1")
    resolved = webhook.wait("resolved", DELIVERY_LIMIT_SECONDS, services, **labels)
    record_property("restore_to_resolved_seconds", round(resolved[0][0] - restored_at, 1))
    print(f"restore to resolved notification: {resolved[0][0] - restored_at:.1f}s")
    assert resolved[0][1]["endsAt"] >= alert["startsAt"]
