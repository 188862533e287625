"""A Kubernetes API emulator for tests: kmock's KubernetesEmulator on a loopback port in its own thread.

Adds what kmock leaves out: limit/continue pagination, per-resource refusals (403) and broken answers
(an endless listing, items that are not objects), a record of every
(apiGroup, resource, verb) asked, and schema validation of every object served (kubernetes-validate
for built-in kinds; TargetGroupBinding, a CRD absent from those schemas, by `validate_tgb` below).
"""

from __future__ import annotations

import asyncio
import threading

import kmock
import kubernetes_validate

from monitor.demo.kubeapi import selected as _selected

SCHEMA_VERSION = "1.33.0"  # a Kubernetes version EKS supports; objects must validate against it


class KubeApi:
    def __init__(self) -> None:
        self.forbidden: set[str] = set()  # plurals answered with 403
        self.endless: set[str] = set()  # plurals whose lists hand out the same continue token forever
        self.garbled: set[str] = set()  # plurals whose lists answer items that are not objects
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the Kubernetes API emulator did not start")

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._serve())

    async def _serve(self) -> None:
        self.handler = kmock.KubernetesEmulator()
        self._stop = asyncio.Event()
        self.handler[kmock.action.LIST] << self._list
        self.handler[kmock.action.FETCH] << self._fetch
        async with self.handler, kmock.Server(self.handler) as server:
            self.url = str(server.url).rstrip("/")
            self._ready.set()
            await self._stop.wait()

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(5)

    # -- feeding objects ------------------------------------------------------------------------
    def add(self, obj: dict) -> dict:
        """Store one object after validating it against the real schema (or the TGB shape check)."""
        if obj["kind"] == "TargetGroupBinding":
            validate_tgb(obj)
        else:
            kubernetes_validate.validate(obj, SCHEMA_VERSION, strict=True)
        group, _, version = obj["apiVersion"].rpartition("/")
        resource = kmock.resource(group, version, _PLURALS[obj["kind"]])
        meta = obj["metadata"]
        self.handler.objects[resource, meta.get("namespace"), meta["name"]] = obj
        return obj

    # -- serving --------------------------------------------------------------------------------
    def _refuse(self, request, verb: str) -> None:
        if request.resource.plural in self.forbidden:
            raise kmock.KubernetesError(
                status=403, reason="Forbidden",
                message=(f'{request.resource.plural} is forbidden: User "system:serviceaccount:monitoring:'
                         f'alb-sg-monitor" cannot {verb} resource "{request.resource.plural}" in API group '
                         f'"{request.resource.group}" at the cluster scope'))

    def _stored(self, request) -> list[dict]:
        found = []
        for (resource, namespace, name), obj in self.handler.objects.items():
            if resource != request.resource or obj.deleted:
                continue
            if request.namespace is not None and namespace != request.namespace:
                continue
            if request.name is not None and name != request.name:
                continue
            found.append(obj.raw)
        return sorted(found, key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))

    def _list(self, request):
        self._refuse(request, "list")
        items = self._stored(request)
        selector = request.params.get("fieldSelector")
        if selector:
            items = [i for i in items if _selected(i, selector)]
        start = int(request.params.get("continue") or 0)
        limit = int(request.params.get("limit") or 0) or len(items) or 1
        meta = {"resourceVersion": "1"}
        if start + limit < len(items):
            meta["continue"] = str(start + limit)
        page = items[start:start + limit]
        if request.resource.plural in self.endless:
            meta["continue"] = "0"  # a server (or a proxy) that restarts the listing on every page
        if request.resource.plural in self.garbled:
            page = ["<html>502 Bad Gateway</html>"]
        return {"apiVersion": "v1", "kind": "List", "metadata": meta, "items": page}

    def _fetch(self, request):
        self._refuse(request, "get")
        found = self._stored(request)
        if not found:
            raise kmock.KubernetesObjectNotFoundError()
        return found[0]

    # -- what was asked -------------------------------------------------------------------------
    def access_log(self) -> list[tuple[str, str, str]]:
        """(apiGroup, resource, verb) of every Kubernetes request received, in order."""
        verbs = {kmock.action.LIST: "list", kmock.action.FETCH: "get", kmock.action.WATCH: "watch",
                 kmock.action.CREATE: "create", kmock.action.UPDATE: "patch", kmock.action.DELETE: "delete"}
        return [(r.resource.group, r.resource.plural, verbs.get(r.action, str(r.action)))
                for r in self.handler if r.resource is not None]

    def requests(self):
        return list(self.handler)


_PLURALS = {
    "Ingress": "ingresses", "IngressClass": "ingressclasses", "Service": "services", "Node": "nodes",
    "Deployment": "deployments", "ServiceAccount": "serviceaccounts", "Event": "events",
    "TargetGroupBinding": "targetgroupbindings",
}


def validate_tgb(obj: dict) -> None:
    """TargetGroupBinding (elbv2.k8s.aws/v1beta1) is a CRD, absent from kubernetes-validate's schemas:
    check the fields the monitor reads against the CRD's shape (config/crd/bases in the controller)."""
    assert obj["apiVersion"] == "elbv2.k8s.aws/v1beta1"
    assert set(obj) <= {"apiVersion", "kind", "metadata", "spec", "status"}
    meta, spec = obj["metadata"], obj["spec"]
    assert meta["name"] and meta["namespace"]
    assert set(spec) <= {"targetGroupARN", "targetGroupName", "targetType", "serviceRef", "networking",
                         "nodeSelector", "ipAddressType", "vpcID", "multiClusterTargetGroup"}
    assert spec["targetGroupARN"].startswith("arn:aws:elasticloadbalancing:")
    assert spec.get("targetType") in (None, "instance", "ip")
    ref = spec["serviceRef"]
    assert isinstance(ref["name"], str) and isinstance(ref["port"], (int, str))
    for rule in (spec.get("networking") or {}).get("ingress", []):
        assert set(rule) <= {"from", "ports"} and rule["from"]
        for peer in rule["from"]:
            assert len(peer) == 1 and set(peer) <= {"ipBlock", "securityGroup"}
            if "securityGroup" in peer:
                assert set(peer["securityGroup"]) == {"groupID"}
            else:
                assert set(peer["ipBlock"]) == {"cidr"}
        for port in rule.get("ports", []):
            assert set(port) <= {"protocol", "port"}
            assert port.get("protocol", "TCP") in ("TCP", "UDP")
            assert isinstance(port.get("port", 0), (int, str))
