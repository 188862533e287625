"""The Kubernetes adapter over real HTTP against an API emulator serving schema-validated objects."""

from __future__ import annotations

import socket
import time

import pytest

from monitor import kube
from monitor.core.errors import ConfigError
from monitor.core.migration import kubernetes_unavailable
from monitor.demo import kube_objects as k
from monitor.kube.reader import REQUIRED_ACCESS, ClusterReader
from tests.support.kubeapi import KubeApi

ROLE = "arn:aws:iam::111122223333:role/prod-eks-aws-load-balancer-controller"
TG = "arn:aws:elasticloadbalancing:ap-northeast-1:111122223333:targetgroup/k8s-shop-web-0a1b2c3d4e/0123456789abcdef"


@pytest.fixture
def api():
    server = KubeApi()
    yield server
    # every (group, resource, verb) a test made the reader send is declared, checked as each test
    # ends so it holds wherever the test runs
    sent = set(server.access_log())
    assert sent <= REQUIRED_ACCESS, sent - REQUIRED_ACCESS
    server.close()


def populate(api: KubeApi) -> None:
    api.add(k.ingress_class("alb", params="alb-params"))
    api.add(k.ingress("shop", "web", "web", annotations={
        "alb.ingress.kubernetes.io/target-type": "instance",
        "kubectl.kubernetes.io/last-applied-configuration": "{}",
    }, hostname="k8s-shop-web-0a1b2c3d4e-123456789.ap-northeast-1.elb.amazonaws.com"))
    api.add(k.ingress("shop", "admin", "admin", legacy_class=True, annotations={
        "alb.ingress.kubernetes.io/security-groups": "sg-0user000000000001, sg-0user000000000002",
        "alb.ingress.kubernetes.io/group.name": "shop",
    }))
    api.add(k.service("shop", "web", node_port=30080))
    api.add(k.service("shop", "admin", node_port=30081))
    api.add(k.binding("shop", "k8s-shop-web-0a1b2c3d4e", TG, "web", sources=["sg-0backend00000000001"],
                      ports=[30080, 31000]))
    api.add(k.binding("shop", "k8s-shop-admin-1b2c3d4e5f", TG.replace("web-0a", "admin-1b"), "admin"))
    for i in range(5):
        api.add(k.node(f"ip-10-0-1-{i}.ap-northeast-1.compute.internal", f"i-0node00000000000{i}"))
    api.add(k.v1_controller("v1.1.2"))
    api.add(k.v2_controller(extra_args=["--disable-restricted-sg-rules"]))
    api.add(k.deployment("shop", "web", "nginx:1.25", []))
    api.add(k.service_account("kube-system", "aws-load-balancer-controller", ROLE))
    api.add(k.service_account("kube-system", "alb-ingress-controller"))
    api.add(k.event("shop", "Ingress", "web", "FailedDeployModel",
                    "Failed deploy model due to AccessDenied: User: arn:aws:sts::111122223333:assumed-role/"
                    "prod-eks-aws-load-balancer-controller/1 is not authorized to perform: "
                    "elasticloadbalancing:AddTags"))
    api.add(k.event("shop", "Ingress", "web", "SuccessfullyReconciled", "Successfully reconciled"))
    api.add(k.event("shop", "TargetGroupBinding", "k8s-shop-web-0a1b2c3d4e", "FailedNetworkReconcile",
                    "expected exactly one securityGroup tagged with kubernetes.io/cluster/prod-eks",
                    api_version="elbv2.k8s.aws/v1beta1"))


def test_reads_a_cluster_mid_migration(api):
    populate(api)
    state = ClusterReader(kube.for_host(api.url), page_size=2).read()

    assert state.failures == ()
    web, admin = sorted(state.ingresses, key=lambda i: i.name, reverse=True)
    assert (web.namespace, web.name, web.ingress_class, web.target_type) == ("shop", "web", "alb", "instance")
    assert web.hostnames == ("k8s-shop-web-0a1b2c3d4e-123456789.ap-northeast-1.elb.amazonaws.com",)
    assert "kubectl.kubernetes.io/last-applied-configuration" not in dict(web.annotations)
    assert admin.ingress_class == "alb"  # from the legacy annotation
    assert admin.security_groups == ("sg-0user000000000001", "sg-0user000000000002")
    assert admin.group_name == "shop"
    assert state.ingress_classes[0].is_alb and state.ingress_classes[0].parameters == "IngressClassParams/alb-params"
    assert {s.name: s.node_ports for s in state.services} == {"web": (30080,), "admin": (30081,)}

    by_name = {b.name: b for b in state.bindings}
    web_tgb = by_name["k8s-shop-web-0a1b2c3d4e"]
    assert web_tgb.target_group_arn == TG and web_tgb.target_type == "instance"
    assert [p.security_group for p in web_tgb.networking[0].peers] == ["sg-0backend00000000001"]
    assert [p.port for p in web_tgb.networking[0].ports] == [30080, 31000]
    assert by_name["k8s-shop-admin-1b2c3d4e5f"].networking is None

    assert len(state.nodes) == 5  # three pages of two
    assert state.nodes[0].instance_id == "i-0node000000000000"

    v1, = state.controllers_of("v1")
    v2, = state.controllers_of("v2")
    assert (v1.version, v1.version_tuple, v1.cluster_name, v1.role_arn) == ("v1.1.2", (1, 1, 2), "prod-eks", None)
    assert (v2.version, v2.running, v2.role_arn, v2.restricted_sg_rules) == ("v2.7.1", True, ROLE, False)
    assert v2.container == "controller"
    assert len(state.controllers) == 2  # the nginx Deployment is not a controller

    reasons = sorted((e.kind, e.reason) for e in state.events)
    assert reasons == [("Ingress", "FailedDeployModel"), ("TargetGroupBinding", "FailedNetworkReconcile")]
    assert "AccessDenied" in next(e.message for e in state.events if e.reason == "FailedDeployModel")


def test_lists_are_paginated_with_limit_and_continue(api):
    populate(api)
    ClusterReader(kube.for_host(api.url), page_size=2).read()
    node_lists = [r for r in api.requests() if r.resource is not None and r.resource.plural == "nodes"]
    assert [r.params.get("limit") for r in node_lists] == ["2", "2", "2"]
    assert [r.params.get("continue") for r in node_lists] == [None, "2", "4"]
    assert all(r.namespace is None for r in api.requests() if r.resource and r.resource.plural != "serviceaccounts")


def test_forbidden_resource_is_unknown_and_named_in_a_finding(api):
    populate(api)
    api.forbidden = {"targetgroupbindings", "events"}
    state = ClusterReader(kube.for_host(api.url)).read()

    assert state.bindings is None and state.events is None  # unknown, not "none"
    assert state.ingresses is not None and len(state.nodes) == 5  # the rest still read
    assert {(f.operation, f.code) for f in state.failures} == {
        ("list targetgroupbindings.elbv2.k8s.aws", "Forbidden"), ("list events", "Forbidden")}
    finding, = kubernetes_unavailable(state)
    assert finding.code == "KUBERNETES_UNAVAILABLE" and finding.severity.value == "warning"
    assert "list targetgroupbindings.elbv2.k8s.aws" in finding.message and "ClusterRole" in finding.message


def test_an_endless_or_garbled_listing_is_unknown_and_the_rest_is_still_read(api):
    populate(api)
    api.endless, api.garbled = {"nodes"}, {"ingresses"}
    state = ClusterReader(kube.for_host(api.url), page_size=2).read()

    assert state.nodes is None and state.ingresses is None  # unknown, not "none", and no crash
    assert state.services is not None and state.bindings is not None  # the rest still read
    assert {(f.operation, f.code) for f in state.failures} == {
        ("list nodes", "PaginationLoop"), ("list ingresses.networking.k8s.io", "ResponseParserError")}
    node_pages = [r for r in api.requests() if r.resource is not None and r.resource.plural == "nodes"]
    assert len(node_pages) == 2  # stopped at the first token seen again, not paged forever
    finding, = kubernetes_unavailable(state)
    assert "list nodes (PaginationLoop)" in finding.message


def test_missing_tgb_crd_means_no_bindings_not_unknown(api):
    api.add(k.node("n1", "i-0aaa"))
    state = ClusterReader(kube.for_host(api.url)).read()
    assert state.bindings == () and state.failures == ()


def test_api_server_down_degrades_quickly():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    started = time.monotonic()
    state = ClusterReader(kube.for_host(f"http://127.0.0.1:{port}")).read()
    assert time.monotonic() - started < 10
    assert state.ingresses is None and state.bindings is None and state.controllers is None
    failure, = state.failures  # the first refusal stops the rest
    assert failure.code == "Unreachable"
    finding, = kubernetes_unavailable(state)
    assert "did not answer" in finding.message and "--kubernetes off" in finding.message


def test_mode_off_and_auto_without_config(tmp_path, monkeypatch):
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    assert kube.connect("off") is None
    assert kube.connect("auto") is None
    with pytest.raises(ConfigError, match="--kubernetes on: no Kubernetes configuration found"):
        kube.connect("on")
    with pytest.raises(ConfigError, match="expected auto, on or off"):
        kube.connect("maybe")


def test_kubeconfig_is_used_in_auto_mode(api, tmp_path, monkeypatch):
    api.add(k.node("n1", "i-0aaa"))
    config = tmp_path / "config"
    config.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: test\n"
        f"clusters: [{{name: emu, cluster: {{server: '{api.url}'}}}}]\n"
        "users: [{name: me, user: {token: abc}}]\n"
        "contexts: [{name: test, context: {cluster: emu, user: me}}]\n")
    monkeypatch.setenv("KUBECONFIG", str(config))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    client = kube.connect("auto")
    state = ClusterReader(client).read()
    assert state.failures == ()
    assert [n.instance_id for n in state.nodes] == ["i-0aaa"]
    assert any(r.headers.get("Authorization") == "Bearer abc" for r in api.requests())


def test_a_full_read_asks_for_exactly_the_declared_access(api):
    """One full read sends every (group, resource, verb) declared, and nothing else."""
    populate(api)
    ClusterReader(kube.for_host(api.url)).read()
    sent = set(api.access_log())
    assert sent == REQUIRED_ACCESS, sent ^ REQUIRED_ACCESS


def test_a_service_source_ranges_come_from_the_field_else_the_annotation(api):
    """What an NLB of the Service lets in: spec.loadBalancerSourceRanges wins over the annotation."""
    ports = [{"port": 443, "protocol": "TCP", "targetPort": 8443, "nodePort": 31443}]
    api.add({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "field", "namespace": "game"},
             "spec": {"type": "LoadBalancer", "ports": ports, "loadBalancerSourceRanges": ["203.0.113.0/24"]},
             })
    api.add({"apiVersion": "v1", "kind": "Service", "metadata": {
        "name": "annotated", "namespace": "game",
        "annotations": {"service.beta.kubernetes.io/load-balancer-source-ranges": "198.51.100.0/24, 192.0.2.0/25"}},
        "spec": {"type": "LoadBalancer", "ports": ports}})
    api.add({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "open", "namespace": "game"},
             "spec": {"type": "LoadBalancer", "ports": ports}})
    state = ClusterReader(kube.for_host(api.url)).read()
    assert {s.name: s.source_ranges for s in state.services} == {
        "field": ("203.0.113.0/24",), "annotated": ("198.51.100.0/24", "192.0.2.0/25"), "open": ()}
