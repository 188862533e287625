"""The shipped Kubernetes manifests render with kustomize, validate against real API schemas, and
agree with the image and the CLI they run."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from monitor import __version__
from monitor.cli import OPTIONS, env_name
from monitor.kube import CLUSTER_ACCESS, NAMESPACED_ACCESS

ROOT = Path(__file__).resolve().parents[2]
BASE = ROOT / "deploy" / "kubernetes"
COMPONENTS = BASE / "components"
NAMESPACE = "alb-sg-monitor"

# The oldest Kubernetes minor still in EKS standard support when this was written, and the newest
# schema kubernetes-validate ships: the manifests must hold for both.
KUBERNETES_VERSIONS = ["1.31.0", kubernetes_validate.latest_version()]
# Custom resources of prometheus-operator: not in the Kubernetes OpenAPI schema. Only these kinds
# are exempt from schema validation (they are checked by hand below).
NOT_IN_SCHEMA = {"ServiceMonitor": "monitoring.coreos.com/v1", "PrometheusRule": "monitoring.coreos.com/v1"}


def kustomize(path: Path) -> list[dict]:
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl is needed to render deploy/kubernetes (scripts/test-prerequisites says how to get it)"
    done = subprocess.run([kubectl, "kustomize", str(path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"kubectl kustomize {path} failed:\n{done.stderr}"
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def overlay(tmp_path: Path, *components: str) -> Path:
    """An overlay as a user would write it: the base plus some of the shipped components."""
    # kustomize refuses absolute paths: refer to the repository relatively, as an overlay does.
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [os.path.relpath(BASE, tmp_path)],
        "components": [os.path.relpath(COMPONENTS / c, tmp_path) for c in components],
    }))
    return tmp_path


def one(objects: list[dict], kind: str, name: str = "alb-sg-monitor") -> dict:
    """The object of this kind and name, a generated ConfigMap's hash suffix allowed."""
    named = re.compile(rf"{re.escape(name)}(-[a-z0-9]{{10}})?")
    found = [o for o in objects if o["kind"] == kind and named.fullmatch(o["metadata"]["name"])]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


@pytest.fixture(scope="module")
def base() -> list[dict]:
    return kustomize(BASE)


@pytest.fixture(scope="module")
def full(tmp_path_factory) -> list[dict]:
    return kustomize(overlay(tmp_path_factory.mktemp("overlay"), "monitoring", "enforce"))


def container(objects: list[dict]) -> dict:
    (c,) = one(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    return c


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("variant", ["base", "full"])
def test_every_rendered_object_is_valid_for_the_kubernetes_api(request, variant, version):
    objects = request.getfixturevalue(variant)
    kinds = set()
    for obj in objects:
        kinds.add(obj["kind"])
        if obj["kind"] in NOT_IN_SCHEMA:
            assert obj["apiVersion"] == NOT_IN_SCHEMA[obj["kind"]]
            assert obj["metadata"]["namespace"] == NAMESPACE
            continue
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{obj['kind']}/{obj['metadata']['name']} is invalid for Kubernetes {version}: {exc.message}")
    assert {"Namespace", "ServiceAccount", "Deployment", "Service", "ConfigMap", "Role", "RoleBinding",
            "ClusterRole", "ClusterRoleBinding"} <= kinds
    assert ("ServiceMonitor" in kinds) == (variant == "full")
    assert ("PrometheusRule" in kinds) == (variant == "full")


def test_everything_namespaced_lands_in_the_monitor_namespace(base):
    cluster_scoped = {"Namespace", "ClusterRole", "ClusterRoleBinding"}
    for obj in base:
        if obj["kind"] not in cluster_scoped:
            assert obj["metadata"].get("namespace") == NAMESPACE, obj["kind"]


def test_pod_runs_locked_down_as_the_image_user(base):
    dockerfile = (ROOT / "Dockerfile").read_text()
    uid = int(re.search(r"^ARG UID=(\d+)$", dockerfile, re.M).group(1))
    assert re.search(r"^USER \$\{UID\}:\$\{UID\}$", dockerfile, re.M), "the image must run as a numeric UID"
    pod = one(base, "Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == uid
    ctx = container(base)["securityContext"]
    assert ctx["readOnlyRootFilesystem"] is True
    assert ctx["allowPrivilegeEscalation"] is False
    assert ctx["capabilities"] == {"drop": ["ALL"]}
    assert "requests" in container(base)["resources"] and "memory" in container(base)["resources"]["limits"]


def test_two_replicas_probe_health_and_readiness_on_the_metrics_port(base):
    deployment = one(base, "Deployment")
    assert deployment["spec"]["replicas"] == 2
    c = container(base)
    (port,) = c["ports"]
    listen_port = int(OPTIONS["--listen"][1].rsplit(":", 1)[1])
    assert (port["name"], port["containerPort"]) == ("metrics", listen_port)
    assert re.search(rf"^EXPOSE {listen_port}$", (ROOT / "Dockerfile").read_text(), re.M)
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    # A first discovery of minutes is not cut short: liveness waits for a first report, 10 minutes at most.
    startup = c["startupProbe"]
    assert startup["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 600
    (service_port,) = one(base, "Service")["spec"]["ports"]
    assert (service_port["name"], service_port["port"], service_port["targetPort"]) == ("metrics", 9917, "metrics")
    selector = one(base, "Service")["spec"]["selector"]
    assert selector.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()


def test_configuration_uses_only_real_flags_with_valid_values(base):
    """A misspelt ALBSG_* variable or flag would be silently ignored by the pod: none may be."""
    c = container(base)
    assert c["args"][0] == "run"
    flags = {}
    for arg in c["args"][1:]:
        flag, _, value = arg.partition("=")
        flags[flag] = value
    config = one(base, "ConfigMap")
    assert {"configMapRef": {"name": config["metadata"]["name"]}} in c["envFrom"]
    by_env = {env_name(flag): flag for flag in OPTIONS}
    for key, value in config["data"].items():
        if key.startswith("ALBSG_"):
            assert key in by_env, f"{key} is not the twin of any flag"
            flags[by_env[key]] = value
        else:
            assert key in {"AWS_REGION"}, f"unexpected variable {key}"
    for flag, value in flags.items():
        assert flag in OPTIONS, f"{flag} is not a flag"
        OPTIONS[flag][0](value)  # raises ValueError on a value the CLI would reject
    assert flags["--mode"] == "observe"
    assert "--cluster-name" in flags


def test_image_tag_is_the_package_version(base):
    assert container(base)["image"].endswith(f":{__version__}")


def test_enforce_component_switches_only_the_mode(base, full):
    assert container(full)["args"] == ["run", "--mode=enforce"]
    assert {k: v for k, v in container(full).items() if k != "args"} == \
        {k: v for k, v in container(base).items() if k != "args"}


def test_servicemonitor_scrapes_the_metrics_service(full):
    monitor = one(full, "ServiceMonitor")
    service = one(full, "Service")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert [e["port"] for e in monitor["spec"]["endpoints"]] == ["metrics"]


def test_monitoring_component_ships_the_projects_alert_rules(full):
    """The rules Prometheus loads in-cluster are exactly the ones promtool tests."""
    rule = one(full, "PrometheusRule")
    assert rule["metadata"]["namespace"] == NAMESPACE
    assert rule["spec"] == yaml.safe_load((ROOT / "deploy" / "prometheus" / "alerts.yaml").read_text())


def _rules(obj: dict) -> dict[tuple[str, str], set[str]]:
    out: dict[tuple[str, str], set[str]] = {}
    for rule in obj["rules"]:
        assert not rule.get("resourceNames"), "grants are kept per resource type"
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                out.setdefault((group, resource), set()).update(rule["verbs"])
    return out


def _grants(access) -> dict[tuple[str, str], set[str]]:
    wanted: dict[tuple[str, str], set[str]] = {}
    for group, resource, verb in access:
        wanted.setdefault((group, resource), set()).add(verb)
    return wanted


def test_rbac_grants_exactly_what_the_monitor_needs(base):
    # The Role: the leader Lease and the state ConfigMap in the monitor's own namespace. The
    # ClusterRole: what the Kubernetes reader sends (its REQUIRED_ACCESS, itself held against every
    # request in tests/kube/test_kube_reader.py) plus creating the audit Events on Ingresses.
    # tests/kube/test_kube_writes.py holds every request the writers send against these same lists.
    assert _rules(one(base, "Role")) == _grants(NAMESPACED_ACCESS) == {
        ("coordination.k8s.io", "leases"): {"get", "create", "update"},
        ("", "configmaps"): {"get", "create", "update"},
    }
    assert _rules(one(base, "ClusterRole")) == _grants(CLUSTER_ACCESS)
    service_account = one(base, "ServiceAccount")
    assert service_account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"].startswith("arn:aws:iam::")
    for kind, role_kind in (("RoleBinding", "Role"), ("ClusterRoleBinding", "ClusterRole")):
        binding = one(base, kind)
        assert binding["roleRef"]["kind"] == role_kind
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "alb-sg-monitor", "namespace": NAMESPACE}]
    assert one(base, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"] == "alb-sg-monitor"


def test_the_overlay_in_deploy_readme_renders_what_it_promises(tmp_path):
    """The example a user copies from deploy/README.md, placed where its paths say."""
    readme = (ROOT / "deploy" / "README.md").read_text()
    example = re.search(r"```yaml\n(# overlays/prod/kustomization\.yaml\n.*?)```", readme, re.S)
    assert example, "deploy/README.md lost its overlay example"
    (tmp_path / "deploy").symlink_to(ROOT / "deploy")
    prod = tmp_path / "overlays" / "prod"
    prod.mkdir(parents=True)
    (prod / "kustomization.yaml").write_text(example.group(1))
    objects = kustomize(prod)
    assert one(objects, "ConfigMap")["data"]["ALBSG_CLUSTER_NAME"] == "prod-eks"
    assert container(objects)["image"] == f"REGISTRY/alb-sg-monitor:{__version__}"
    assert one(objects, "ServiceAccount")["metadata"]["annotations"]["eks.amazonaws.com/role-arn"] == \
        "arn:aws:iam::123456789012:role/alb-sg-monitor"
    assert container(objects)["args"] == ["run", "--mode=observe"]
