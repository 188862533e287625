"""Joins Kubernetes names into load balancers: Ingress names where the AWS tags did not name a single
Ingress, and a Service's loadBalancerSourceRanges into its NLB."""

from __future__ import annotations

from dataclasses import replace

from monitor.core import controllers
from monitor.core.cluster_model import ClusterState, Ingress
from monitor.core.model import LoadBalancer, Topology


def join_ingresses(topology: Topology, state: ClusterState) -> Topology:
    """Fill ingress_namespace/ingress from the Ingresses whose status hostname is the ALB's DNS name,
    or whose group.name is the ALB's stack tag (an IngressGroup). Names from tags are kept as they are.

    Several Ingresses behind one ALB (an IngressGroup) are listed comma-separated, sorted: in one
    namespace as (namespace, "a,b"); across namespaces as ("", "ns1/a,ns2/b")."""
    topology = _join_services(topology, state)
    if not state.ingresses:
        return topology
    lbs = tuple(_joined(lb, state.ingresses) for lb in topology.load_balancers)
    return replace(topology, load_balancers=lbs)


def _join_services(topology: Topology, state: ClusterState) -> Topology:
    """Give each NLB of a Service (v2's stack tag names it namespace/name) the Service's
    loadBalancerSourceRanges: the clients it lets in. Unknown (None) while Services are unread."""
    services = None if state.services is None else {(s.namespace, s.name): s for s in state.services}
    lbs = []
    for lb in topology.load_balancers:
        stack = lb.tag(controllers.SERVICE_STACK_TAG) or ""
        if lb.lb_type == "network" and "/" in stack:
            service = None if services is None else services.get(tuple(stack.split("/", 1)))
            lb = replace(lb, client_ranges=None if services is None else (service.source_ranges if service else ()))
        lbs.append(lb)
    return replace(topology, load_balancers=tuple(lbs))


def _joined(lb: LoadBalancer, ingresses: tuple[Ingress, ...]) -> LoadBalancer:
    if lb.ingress:
        return lb
    matches = []
    if lb.dns_name:
        dns = lb.dns_name.lower().rstrip(".")
        matches = [i for i in ingresses if any(h.lower().rstrip(".") == dns for h in i.hostnames)]
    stack = lb.tag(controllers.V1_STACK_TAG) or ""
    if not matches and stack and "/" not in stack:
        matches = [i for i in ingresses if i.group_name == stack]
    if not matches:
        return lb
    keys = sorted({(i.namespace, i.name) for i in matches})
    namespaces = {ns for ns, _ in keys}
    if len(namespaces) == 1:
        return replace(lb, ingress_namespace=keys[0][0], ingress=",".join(name for _, name in keys))
    return replace(lb, ingress_namespace="", ingress=",".join(f"{ns}/{name}" for ns, name in keys))
