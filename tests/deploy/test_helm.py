"""The Helm chart: it lints, renders objects the Kubernetes API (1.29 and 1.33) and the
prometheus-operator CRDs accept, exposes every flag of `run` with the code's default, and the
commands deploy/README.md shows render what they promise. Runs the real helm binary."""

from __future__ import annotations

import json
import re
import shlex

import jsonschema
import kubernetes_validate
import pytest
import yaml

from monitor import __version__
from monitor.cli import MINIMUMS, OPTIONS, build_parser, env_name
from monitor.kube import CLUSTER_ACCESS, NAMESPACED_ACCESS
from tests.deploy.test_manifests import _grants, _rules
from tests.support.helmchart import (
    CHART,
    NAMESPACE,
    RELEASE,
    ROOT,
    container,
    container_environment,
    custom_resource_errors,
    effective_settings,
    find,
    helm,
    kustomize,
    only,
    overlay,
    template,
)

# The oldest Kubernetes minor the chart supports (its kubeVersion) and a recent one.
KUBERNETES_VERSIONS = ["1.29.0", "1.33.0"]
CUSTOM_KINDS = {"ServiceMonitor", "PrometheusRule"}
CLUSTER = ["--set", "clusterName=prod-eks"]
VARIANTS = {
    "default": CLUSTER,
    "enforce": [*CLUSTER, "--set", "mode=enforce"],
    "monitoring": [*CLUSTER, "--set", "serviceMonitor.enabled=true", "--set", "prometheusRule.enabled=true",
                   "--set", "dashboard.enabled=true", "--set", "networkPolicy.enabled=true"],
}
VALUES = yaml.safe_load((CHART / "values.yaml").read_text())

# Flags of `run` that are not chart values, and why. Every other flag must be one.
NOT_VALUES = {
    "--demo": "runs against an embedded simulated account: a local try-out, not a deployment",
}

# Values whose default is not the flag's, on purpose: the kustomize base sets the same.
DEPLOYMENT_DEFAULTS = {
    "--kubernetes": "on",  # in a pod the Lease (one writer in enforce mode) and the state need the API
}


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict]]:
    return {name: template(*args) for name, args in VARIANTS.items()}


def run_flags() -> dict[str, str]:
    """Every flag the `run` command accepts -> its argparse dest, read from the real parser."""
    parser = build_parser()
    (commands,) = [a for a in parser._actions if a.choices and "run" in a.choices]
    return {action.option_strings[0]: action.dest for action in commands.choices["run"]._actions
            if action.option_strings and action.option_strings[0].startswith("--") and action.dest != "help"}


def value_key(flag: str) -> str:
    """--topology-interval -> topologyInterval."""
    first, *rest = flag.lstrip("-").split("-")
    return first + "".join(word.capitalize() for word in rest)


# -- the chart's metadata, lint, required values ----------------------------------------------

def test_chart_is_apiversion_v2_and_its_app_version_is_the_package_version():
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2"
    assert chart["appVersion"] == __version__
    assert container(template(*CLUSTER))["image"] == f"alb-sg-monitor:{__version__}"


@pytest.mark.parametrize("variant", VARIANTS)
def test_helm_lint_passes_strictly(variant):
    done = helm("lint", "--strict", str(CHART), *VARIANTS[variant])
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 chart(s) failed" in done.stdout


def test_cluster_name_is_required_with_a_message_that_says_how():
    done = helm("template", RELEASE, str(CHART))
    assert done.returncode != 0
    assert "clusterName is required" in done.stderr and "--set clusterName=" in done.stderr


@pytest.mark.parametrize("setting, message", [
    ("mode=enforcee", "at '/mode'"),
    ("interval=15", "at '/interval'"),          # a number, no unit: the monitor would refuse it
    ("maxRestoresPerCycle=0", "at '/maxRestoresPerCycle'"),
    ("clustername=prod", "additional properties 'clustername' not allowed"),  # a typo is not ignored
])
def test_a_bad_value_fails_the_render_not_the_pod(setting, message):
    done = helm("template", RELEASE, str(CHART), *CLUSTER, "--set", setting)
    assert done.returncode != 0
    assert message in done.stderr


@pytest.mark.parametrize("setting, message", [
    ("mode=enforcee", 'mode: "enforcee" is not observe or enforce'),
    ("listen=localhost", 'listen: "localhost" is not host:port'),
])
def test_the_templates_still_refuse_a_bad_mode_or_listen_without_the_schema(setting, message):
    done = helm("template", RELEASE, str(CHART), *CLUSTER, "--skip-schema-validation", "--set", setting)
    assert done.returncode != 0
    assert message in done.stderr


SAMPLES = ["auto", "on", "off", "observe", "enforce", "json", "console", "table", "500ms", "15s", "1m30s",
           "1h", "15", "0", "1", "2", "5", "-1s", "1d", "0.0.0.0:9917", "[::]:9917", "localhost", "prod-eks"]


@pytest.mark.parametrize("flag", sorted(set(run_flags()) - set(NOT_VALUES)))
def test_the_values_schema_never_refuses_what_the_monitor_accepts(flag):
    """And refuses every choice, duration or address the monitor refuses: the schema stops mistakes at
    install time (test_chart_values.py tries them through helm)."""
    schema = json.loads((CHART / "values.schema.json").read_text())
    prop = schema["properties"].get(value_key(flag))
    assert prop, f"values.schema.json has no {value_key(flag)} (the value of {flag})"
    convert = OPTIONS[flag][0]
    for sample in SAMPLES:
        value = int(sample) if prop.get("type") == "integer" and sample.isdigit() else sample
        accepted = jsonschema.Draft7Validator(prop).is_valid(value)
        try:
            converted = convert(sample)
            refused = flag in MINIMUMS["run"] and converted < MINIMUMS["run"][flag]  # `run`'s shortest interval
        except ValueError:
            refused = True
        if refused:
            if "enum" in prop or "pattern" in prop:
                assert not accepted, f"{value_key(flag)}: the schema allows {sample!r}, the monitor does not"
            continue
        assert accepted, f"{value_key(flag)}: the schema refuses {sample!r}, which the monitor accepts"


# -- every object is valid --------------------------------------------------------------------

@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("variant", VARIANTS)
def test_every_rendered_object_is_valid_for_the_kubernetes_api(rendered, variant, version):
    for obj in rendered[variant]:
        if obj["kind"] in CUSTOM_KINDS:
            continue
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{obj['kind']}/{obj['metadata']['name']} is invalid for Kubernetes {version}: {exc.message}")


def test_monitoring_values_add_the_custom_resources_the_dashboard_and_the_network_policy(rendered):
    kinds = lambda variant: sorted(o["kind"] for o in rendered[variant])  # noqa: E731
    assert kinds("default") == kinds("enforce") == sorted([
        "ServiceAccount", "ConfigMap", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding",
        "Deployment", "Service", "PodDisruptionBudget"])
    assert kinds("monitoring") == sorted(kinds("default") + [
        "ServiceMonitor", "PrometheusRule", "ConfigMap", "NetworkPolicy"])
    for obj in rendered["monitoring"]:
        assert obj["metadata"].get("namespace", NAMESPACE) == NAMESPACE


@pytest.mark.parametrize("kind", sorted(CUSTOM_KINDS))
def test_custom_resources_are_valid_for_the_prometheus_operator_crds(rendered, kind):
    assert custom_resource_errors(only(rendered["monitoring"], kind)) == []


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_the_kustomize_base_with_every_component_is_valid_too(tmp_path, version):
    objects = kustomize(overlay(tmp_path, "monitoring", "enforce"))
    assert {o["kind"] for o in objects} >= CUSTOM_KINDS
    for obj in objects:
        if obj["kind"] in CUSTOM_KINDS:
            assert custom_resource_errors(obj) == [], obj["kind"]
        else:
            kubernetes_validate.validate(obj, version, strict=True)


def test_the_crd_check_rejects_what_the_api_server_would():
    """A misspelt field, a bad duration and a missing required field are each caught."""
    monitor = only(template(*VARIANTS["monitoring"]), "ServiceMonitor")
    endpoint = monitor["spec"]["endpoints"][0]
    endpoint["scrapeInterval"] = endpoint.pop("interval")
    endpoint["scrapeTimeout"] = "10 seconds"
    errors = custom_resource_errors(monitor)
    assert any("scrapeInterval: unknown field" in e for e in errors)
    assert any("scrapeTimeout" in e and "does not match" in e for e in errors)
    rule = only(template(*VARIANTS["monitoring"]), "PrometheusRule")
    del rule["spec"]["groups"][0]["rules"][0]["expr"]
    assert any("'expr' is a required property" in e for e in custom_resource_errors(rule))


# -- what the objects say -----------------------------------------------------------------------

def test_rbac_grants_exactly_what_the_code_declares(rendered):
    objects = rendered["default"]
    assert _rules(only(objects, "Role")) == _grants(NAMESPACED_ACCESS)
    assert _rules(only(objects, "ClusterRole")) == _grants(CLUSTER_ACCESS)
    account = only(objects, "ServiceAccount")["metadata"]["name"]
    assert only(objects, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"] == account
    for kind, role_kind in (("RoleBinding", "Role"), ("ClusterRoleBinding", "ClusterRole")):
        binding = only(objects, kind)
        assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind,
                                      "name": only(objects, role_kind)["metadata"]["name"]}
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account, "namespace": NAMESPACE}]


def test_pod_meets_the_restricted_pod_security_standard_as_the_image_user(rendered):
    uid = int(re.search(r"^ARG UID=(\d+)$", (ROOT / "Dockerfile").read_text(), re.M).group(1))
    pod = only(rendered["default"], "Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == uid
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert not {"hostNetwork", "hostPID", "hostIPC"} & pod.keys()
    assert all("hostPath" not in volume for volume in pod["volumes"])
    ctx = container(rendered["default"])["securityContext"]
    assert ctx["allowPrivilegeEscalation"] is False
    assert ctx["readOnlyRootFilesystem"] is True
    assert ctx["capabilities"] == {"drop": ["ALL"]}
    assert "privileged" not in ctx


def test_two_replicas_spread_over_zones_with_probes_on_the_metrics_port(rendered):
    deployment = only(rendered["default"], "Deployment")
    assert deployment["spec"]["replicas"] == 2
    pod = deployment["spec"]["template"]["spec"]
    assert [t["topologyKey"] for t in pod["topologySpreadConstraints"]] == \
        ["topology.kubernetes.io/zone", "kubernetes.io/hostname"]
    c = container(rendered["default"])
    assert c["ports"] == [{"name": "metrics", "containerPort": 9917, "protocol": "TCP"}]
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert c["startupProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    startup = c["startupProbe"]["periodSeconds"] * c["startupProbe"]["failureThreshold"]
    assert startup >= 600, "a first discovery of a large account must not be killed"
    assert {"cpu", "memory"} <= c["resources"]["requests"].keys() and "memory" in c["resources"]["limits"]


def test_every_selector_selects_the_pods(rendered):
    objects = rendered["monitoring"]
    deployment = only(objects, "Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"].items()
    selectors = [deployment["spec"]["selector"]["matchLabels"], only(objects, "Service")["spec"]["selector"],
                 only(objects, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"],
                 only(objects, "NetworkPolicy")["spec"]["podSelector"]["matchLabels"]]
    selectors += [t["labelSelector"]["matchLabels"] for t in deployment["spec"]["template"]["spec"]["topologySpreadConstraints"]]
    for selector in selectors:
        assert selector and selector.items() <= pod_labels
    service = only(objects, "Service")
    assert only(objects, "ServiceMonitor")["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert [e["port"] for e in only(objects, "ServiceMonitor")["spec"]["endpoints"]] == \
        [p["name"] for p in service["spec"]["ports"]] == ["metrics"]


def test_mode_is_an_argument_observe_by_default_and_enforce_changes_nothing_else(rendered):
    assert container(rendered["default"])["args"] == ["run", "--mode=observe"]
    assert container(rendered["enforce"])["args"] == ["run", "--mode=enforce"]
    assert {k: v for k, v in container(rendered["enforce"]).items() if k != "args"} == \
        {k: v for k, v in container(rendered["default"]).items() if k != "args"}
    assert "ALBSG_MODE" not in container_environment(rendered["default"])


def test_kube_prometheus_stack_picks_up_the_monitor_its_rules_and_its_dashboard(rendered):
    objects = rendered["monitoring"]
    assert only(objects, "ServiceMonitor")["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert only(objects, "PrometheusRule")["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    (dashboard,) = [o for o in find(objects, "ConfigMap") if "grafana_dashboard" in o["metadata"]["labels"]]
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    labels = template(*VARIANTS["monitoring"], "--set", "serviceMonitor.labels.release=prom",
                      "--set", "prometheusRule.labels.release=prom")
    assert only(labels, "ServiceMonitor")["metadata"]["labels"]["release"] == "prom"
    assert only(labels, "PrometheusRule")["metadata"]["labels"]["release"] == "prom"


def test_the_prometheusrule_carries_exactly_the_projects_alert_rules(rendered):
    rule = only(rendered["monitoring"], "PrometheusRule")
    assert rule["spec"] == yaml.safe_load((ROOT / "deploy" / "prometheus" / "alerts.yaml").read_text())


def test_the_dashboard_configmap_carries_exactly_the_projects_dashboard(rendered):
    (dashboard,) = [o for o in find(rendered["monitoring"], "ConfigMap") if "grafana_dashboard" in o["metadata"]["labels"]]
    assert dashboard["data"] == {"alb-sg-monitor.json": (ROOT / "grafana" / "dashboard.json").read_text().rstrip("\n")}


@pytest.mark.parametrize("copy, source", [
    ("deploy/helm/alb-sg-monitor/files/alerts.yaml", "deploy/prometheus/alerts.yaml"),
    ("deploy/helm/alb-sg-monitor/files/dashboard.json", "grafana/dashboard.json"),
    ("deploy/kubernetes/components/monitoring/dashboard.json", "grafana/dashboard.json"),
])
def test_copies_the_chart_and_the_component_read_equal_their_source(copy, source):
    assert (ROOT / copy).read_bytes() == (ROOT / source).read_bytes(), \
        f"{copy} differs from {source}: run python3 scripts/render_prometheusrule.py"


def test_network_policy_admits_scrapes_and_lets_out_only_dns_https_and_the_pod_identity_agent(rendered):
    policy = only(rendered["monitoring"], "NetworkPolicy")["spec"]
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    (ingress,) = policy["ingress"]
    assert ingress["ports"] == [{"port": "metrics", "protocol": "TCP"}] and ingress["from"]
    ports = sorted((p["protocol"], p["port"]) for rule in policy["egress"] for p in rule["ports"])
    assert ports == [("TCP", 53), ("TCP", 80), ("TCP", 443), ("UDP", 53)]
    (agent,) = [r for r in policy["egress"] if r["ports"] == [{"port": 80, "protocol": "TCP"}]]
    assert {peer["ipBlock"]["cidr"] for peer in agent["to"]} == {"169.254.170.23/32", "fd00:ec2::23/128"}


# -- every flag is a value ----------------------------------------------------------------------

def test_every_run_flag_is_a_chart_value_with_the_codes_default():
    flags = run_flags()
    assert set(NOT_VALUES) <= set(flags), "an exemption names a flag `run` no longer has"
    missing = []
    for flag in flags:
        if flag in NOT_VALUES:
            continue
        key = value_key(flag)
        if key not in VALUES:
            missing.append(key)
            continue
        convert, default, _ = OPTIONS[flag]
        value = VALUES[key]
        if flag in DEPLOYMENT_DEFAULTS:
            assert value == DEPLOYMENT_DEFAULTS[flag] != default
        elif default is None:
            assert value in ("", None), f"{key}: {value!r}, but --{flag} has no default"
        else:
            assert convert(str(value)) == convert(default), f"{key}: {value!r}, but {flag} defaults to {default}"
    assert not missing, f"flags of `run` with no chart value: {missing}"
    assert VALUES["mode"] == "observe"


def _a_non_default(flag: str) -> str:
    """A valid value of the flag for `run` (its converter and run's minimum), different from its default."""
    convert, default, _ = OPTIONS[flag]
    default = DEPLOYMENT_DEFAULTS.get(flag, default)
    least = MINIMUMS["run"].get(flag)
    for candidate in ("7s", "7m", "17", "enforce", "auto", "console", "0.0.0.0:9999",
                      "/var/lib/alb-sg-monitor/state.json"):
        try:
            parsed = convert(candidate)
        except ValueError:
            continue
        if least is not None and parsed < least:
            continue
        if default is None or parsed != convert(default):
            return candidate
    raise AssertionError(f"no test value for {flag}")


@pytest.mark.parametrize("flag", sorted(set(run_flags()) - set(NOT_VALUES)))
def test_each_value_reaches_the_monitor(flag):
    """Set through the chart, each value is what the monitor in the pod runs with."""
    value = _a_non_default(flag)
    objects = template(*CLUSTER, "--set", f"{value_key(flag)}={value}")
    dest = run_flags()[flag]
    assert getattr(effective_settings(objects), dest) == OPTIONS[flag][0](value)
    if flag != "--mode":
        assert env_name(flag) in container_environment(objects)


def test_the_listen_port_is_the_container_and_service_port():
    objects = template(*CLUSTER, "--set", "listen=[::]:9100")
    assert container(objects)["ports"][0]["containerPort"] == 9100
    assert only(objects, "Service")["spec"]["ports"][0]["port"] == 9100


# -- the commands deploy/README.md shows ----------------------------------------------------------

def readme_helm_commands() -> list[list[str]]:
    text = (ROOT / "deploy" / "README.md").read_text()
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            if line.startswith("helm "):
                commands.append(shlex.split(line))
    return commands


def test_deploy_readme_installs_with_helm_then_switches_to_enforce():
    commands = readme_helm_commands()
    installs = [c for c in commands if c[1] == "install"]
    upgrades = [c for c in commands if c[1] == "upgrade"]
    assert len(installs) == 1 and upgrades, "deploy/README.md lost its helm install / upgrade commands"
    install = installs[0]
    assert install[2:4] == [RELEASE, "deploy/helm/alb-sg-monitor"]
    # The same arguments, rendered instead of installed (no cluster here).
    args = [a for a in install[4:] if a not in ("--create-namespace", "--wait")]
    objects = template(*args)
    settings = effective_settings(objects)
    assert settings.mode == "observe" and settings.cluster_name and settings.region
    annotations = only(objects, "ServiceAccount")["metadata"].get("annotations", {})
    assert annotations.get("eks.amazonaws.com/role-arn", "").startswith("arn:aws:iam::")
    assert only(objects, "ServiceMonitor")["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert [o for o in find(objects, "ConfigMap") if o["metadata"]["labels"].get("grafana_dashboard") == "1"]
    assert only(objects, "PrometheusRule")
    for upgrade in upgrades:
        assert upgrade[2:4] == [RELEASE, "deploy/helm/alb-sg-monitor"] and "--reuse-values" in upgrade
        extra = [a for a in upgrade[4:] if a != "--reuse-values"]
        assert effective_settings(template(*args, *extra)).mode == "enforce"


def test_install_notes_say_the_next_step():
    install = ["install", RELEASE, str(CHART), "--namespace", NAMESPACE, "--dry-run=client", *CLUSTER]
    observe = helm(*install)
    assert observe.returncode == 0, observe.stderr
    notes = observe.stdout.split("NOTES:", 1)[1]
    assert f"kubectl -n {NAMESPACE} logs deploy/{RELEASE}" in notes
    assert f"port-forward svc/{RELEASE} 9917" in notes
    assert "--set mode=enforce" in notes and "remediation.json" in notes
    enforce = helm(*install, "--set", "mode=enforce")
    assert enforce.returncode == 0, enforce.stderr
    enforce_notes = enforce.stdout.split("NOTES:", 1)[1]
    assert "--set mode=enforce" not in enforce_notes
    assert "remediation.json" in enforce_notes and "involvedObject.kind=Ingress" in enforce_notes


def test_helm_install_names_everything_after_the_release():
    objects = template(*CLUSTER, release="monitor-a", namespace="ops")
    assert {o["metadata"]["name"] for o in objects} == {"monitor-a-alb-sg-monitor"}
    assert {o["metadata"].get("namespace", "ops") for o in objects} == {"ops"}


