"""The Helm chart and the kustomize base deploy the same monitor: with default values the chart
renders what deploy/kubernetes renders, object by object, on everything that changes what runs
(names, RBAC, arguments and configuration, probes, security, ports, replicas, spread), and so do
the enforce and monitoring variants against the matching kustomize components. A change to one
that is not made to the other fails here."""

from __future__ import annotations

import re

import pytest

from tests.deploy.test_manifests import _rules
from tests.support.helmchart import (
    NAMESPACE,
    container,
    container_environment,
    effective_settings,
    find,
    kustomize,
    only,
    overlay,
    template,
)

# What a user of either sets: kustomize's placeholders, given to the chart as values.
PLACEHOLDERS = ["--set", "clusterName=CLUSTER_NAME", "--set", "region=REGION"]
MONITORING = ["--set", "serviceMonitor.enabled=true", "--set", "prometheusRule.enabled=true",
              "--set", "dashboard.enabled=true"]
PAIRS = {
    # variant: (kustomize components, chart arguments)
    "default": ((), PLACEHOLDERS),
    "enforce": (("enforce",), [*PLACEHOLDERS, "--set", "mode=enforce"]),
    "monitoring": (("monitoring",), [*PLACEHOLDERS, *MONITORING]),
}
# Only in the kustomize base: Helm installs into a namespace it is given (--create-namespace).
ONLY_KUSTOMIZE = {("Namespace", NAMESPACE)}
_HASH_SUFFIX = re.compile(r"-[a-z0-9]{10}$")


@pytest.fixture(scope="module", params=list(PAIRS))
def pair(request, tmp_path_factory) -> tuple[str, list[dict], list[dict]]:
    components, args = PAIRS[request.param]
    base = kustomize(overlay(tmp_path_factory.mktemp(request.param), *components))
    return request.param, base, template(*args)


def _name(obj: dict) -> str:
    name = obj["metadata"]["name"]
    # kustomize's generated ConfigMaps carry a content hash; the chart's roll by an annotation.
    return _HASH_SUFFIX.sub("", name) if obj["kind"] == "ConfigMap" and "grafana_dashboard" not in \
        obj["metadata"].get("labels", {}) else name


def _ids(objects: list[dict]) -> set[tuple[str, str]]:
    return {(o["kind"], _name(o)) for o in objects}


def test_the_same_objects_with_the_same_names(pair):
    _, base, chart = pair
    assert _ids(chart) == _ids(base) - ONLY_KUSTOMIZE
    for obj in chart:
        assert obj["metadata"].get("namespace", NAMESPACE) == NAMESPACE


def test_the_same_rbac(pair):
    _, base, chart = pair
    for kind in ("Role", "ClusterRole"):
        assert _rules(only(chart, kind)) == _rules(only(base, kind)), kind
    for kind in ("RoleBinding", "ClusterRoleBinding"):
        assert only(chart, kind)["roleRef"] == only(base, kind)["roleRef"]
        assert only(chart, kind)["subjects"] == only(base, kind)["subjects"]


def test_the_monitor_runs_with_the_same_arguments_and_configuration(pair):
    _, base, chart = pair
    assert container(chart)["args"] == container(base)["args"]
    assert effective_settings(chart) == effective_settings(base)
    # The rest of the environment (the pod's name and namespace for the Lease) is the same too.
    rest = lambda objects: {k: v for k, v in container_environment(objects).items()  # noqa: E731
                            if not k.startswith("ALBSG_") and k != "AWS_REGION"}
    assert rest(chart) == rest(base)


@pytest.mark.parametrize("field", ["image", "imagePullPolicy", "ports", "livenessProbe", "readinessProbe",
                                   "securityContext", "resources", "volumeMounts", "name"])
def test_the_same_container(pair, field):
    _, base, chart = pair
    assert container(chart).get(field) == container(base).get(field), field


def test_the_same_startup_probe(pair):
    _, base, chart = pair
    if "startupProbe" not in container(base):
        pytest.skip("the kustomize base has no startupProbe yet; the chart's must be copied to it")
    assert container(chart)["startupProbe"] == container(base)["startupProbe"]


@pytest.mark.parametrize("field", ["securityContext", "volumes", "terminationGracePeriodSeconds"])
def test_the_same_pod(pair, field):
    _, base, chart = pair
    pod = lambda objects: only(objects, "Deployment")["spec"]["template"]["spec"]  # noqa: E731
    assert pod(chart).get(field) == pod(base).get(field), field


def test_the_same_replicas_rollout_and_spread(pair):
    _, base, chart = pair
    spec = lambda objects: only(objects, "Deployment")["spec"]  # noqa: E731
    for field in ("replicas", "strategy", "revisionHistoryLimit"):
        assert spec(chart)[field] == spec(base)[field], field
    # Selectors differ on purpose (the chart's also name the release); what they spread over must not.
    spread = lambda objects: [{k: v for k, v in t.items() if k != "labelSelector"}  # noqa: E731
                              for t in spec(objects)["template"]["spec"]["topologySpreadConstraints"]]
    assert spread(chart) == spread(base)
    assert only(chart, "PodDisruptionBudget")["spec"]["maxUnavailable"] == \
        only(base, "PodDisruptionBudget")["spec"]["maxUnavailable"]


def test_the_same_service(pair):
    _, base, chart = pair
    for field in ("type", "ports"):
        assert only(chart, "Service")["spec"][field] == only(base, "Service")["spec"][field], field


def test_the_same_scrape_rules_and_dashboard(pair):
    variant, base, chart = pair
    if variant != "monitoring":
        assert not find(chart, "ServiceMonitor") and not find(base, "ServiceMonitor")
        return
    assert only(chart, "ServiceMonitor")["spec"]["endpoints"] == only(base, "ServiceMonitor")["spec"]["endpoints"]
    for kind in ("ServiceMonitor", "PrometheusRule"):
        assert only(chart, kind)["metadata"]["labels"]["release"] == only(base, kind)["metadata"]["labels"]["release"]
    assert only(chart, "PrometheusRule")["spec"] == only(base, "PrometheusRule")["spec"]
    dashboards = lambda objects: [o for o in find(objects, "ConfigMap")  # noqa: E731
                                  if o["metadata"].get("labels", {}).get("grafana_dashboard") == "1"]
    (chart_dashboard,), (base_dashboard,) = dashboards(chart), dashboards(base)
    assert chart_dashboard["metadata"]["name"] == base_dashboard["metadata"]["name"]
    assert chart_dashboard["data"].keys() == base_dashboard["data"].keys()
    for key in chart_dashboard["data"]:
        assert chart_dashboard["data"][key].strip() == base_dashboard["data"][key].strip()
