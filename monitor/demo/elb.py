"""The demo account's load balancers health-check their targets: an HTTP front for moto that passes
every request through and answers DescribeTargetHealth the way AWS would from the account's own
rules, where moto always answers `healthy`.

A target whose health-check port the account does not let through (no inbound rule on its security
groups admits it from the load balancer, or the network ACL of its subnet denies it from a load
balancer subnet) fails its health checks, and is reported `unhealthy` (`Target.Timeout`) once it has
failed UnhealthyThresholdCount of them HealthCheckIntervalSeconds apart; admitted again, it is
`healthy`. Deliberately simple and written apart from the monitor's own verdict (single rules, no
union of CIDRs), so that the demo's ELB can disagree with the monitor as a real one could.
"""

from __future__ import annotations

import http.client
import ipaddress
import threading
import time
import urllib.parse
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from xml.etree import ElementTree

import boto3

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


class DemoElb:
    """Start with start(); url is where AWS clients should send their requests."""

    def __init__(self, moto_endpoint: str, region: str, clock: Callable[[], float] = time.monotonic) -> None:
        self._upstream = urllib.parse.urlsplit(moto_endpoint)
        self._clock = clock
        self._lock = threading.Lock()
        self._failing_since: dict[tuple[str, str], float] = {}
        self._clients = {name: boto3.client(name, region_name=region, endpoint_url=moto_endpoint,
                                            aws_access_key_id="demo", aws_secret_access_key="demo")
                         for name in ("ec2", "elbv2")}
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> "DemoElb":
        threading.Thread(target=self._server.serve_forever, name="demo-elb", daemon=True).start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    # -- passing requests through -----------------------------------------------------------------
    def forward(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, list, bytes]:
        connection = http.client.HTTPConnection(self._upstream.hostname, self._upstream.port, timeout=60)
        try:
            connection.request(method, path, body=body, headers=headers)
            answer = connection.getresponse()
            return answer.status, answer.getheaders(), answer.read()
        finally:
            connection.close()

    def answer(self, body: bytes, status: int, payload: bytes) -> bytes:
        form = urllib.parse.parse_qs(body.decode("utf-8", "replace"))
        if status != 200 or form.get("Action") != ["DescribeTargetHealth"]:
            return payload
        return self.rewrite(form["TargetGroupArn"][0], payload)

    # -- the health checks ----------------------------------------------------------------------
    def rewrite(self, target_group_arn: str, payload: bytes) -> bytes:
        root = ElementTree.fromstring(payload)
        namespace = root.tag[: root.tag.index("}") + 1] if root.tag.startswith("{") else ""
        group = self._clients["elbv2"].describe_target_groups(TargetGroupArns=[target_group_arn])["TargetGroups"][0]
        for member in root.iter(f"{namespace}member"):
            target, health = member.find(f"{namespace}Target"), member.find(f"{namespace}TargetHealth")
            if target is None or health is None or health.findtext(f"{namespace}State") != "healthy":
                continue
            target_id = target.findtext(f"{namespace}Id") or ""
            port = int(target.findtext(f"{namespace}Port") or group.get("Port") or 0)
            if self._fails(group, target_id, port):
                for child in list(health):
                    health.remove(child)
                for tag, text in (("State", "unhealthy"), ("Reason", "Target.Timeout"),
                                  ("Description", "Request timed out")):
                    ElementTree.SubElement(health, f"{namespace}{tag}").text = text
        ElementTree.register_namespace("", namespace.strip("{}"))
        return ElementTree.tostring(root, xml_declaration=True, encoding="UTF-8")

    def _fails(self, group: dict[str, Any], target_id: str, port: int) -> bool:
        """Whether the ELB reports this target unhealthy now: its health checks have been failing for
        as many intervals as the unhealthy threshold."""
        key = (group["TargetGroupArn"], target_id)
        health_port = port if group.get("HealthCheckPort") in (None, "traffic-port") else int(group["HealthCheckPort"])
        passing = self._reaches(group, target_id, health_port)
        now = self._clock()
        with self._lock:
            if passing:
                self._failing_since.pop(key, None)
                return False
            since = self._failing_since.setdefault(key, now)
        needed = group.get("HealthCheckIntervalSeconds", 30) * group.get("UnhealthyThresholdCount", 2)
        return now - since >= needed

    def _reaches(self, group: dict[str, Any], target_id: str, port: int) -> bool:
        ec2, elbv2 = self._clients["ec2"], self._clients["elbv2"]
        lbs = elbv2.describe_load_balancers(LoadBalancerArns=group["LoadBalancerArns"][:1])["LoadBalancers"]
        if not lbs:
            return True
        lb = lbs[0]
        lb_groups = set(lb.get("SecurityGroups", ()))
        lb_subnets = [az["SubnetId"] for az in lb.get("AvailabilityZones", ()) if az.get("SubnetId")]
        cidrs = {s["SubnetId"]: s["CidrBlock"] for s in ec2.describe_subnets(SubnetIds=lb_subnets)["Subnets"]}
        groups, subnet = self._eni(group, target_id)
        if groups is None:
            return True  # nothing to check against: as AWS would, keep what moto says
        rules = ec2.describe_security_group_rules(
            Filters=[{"Name": "group-id", "Values": list(groups)}])["SecurityGroupRules"] if groups else []
        admitted = any(_admits(rule, port) and (rule.get("ReferencedGroupInfo", {}).get("GroupId") in lb_groups
                                                or all(_inside(c, rule.get("CidrIpv4")) for c in cidrs.values()))
                       for rule in rules if not rule.get("IsEgress"))
        return admitted and self._acl_lets_in(subnet, [c for s, c in cidrs.items() if s != subnet], port)

    def _eni(self, group: dict[str, Any], target_id: str) -> tuple[tuple[str, ...] | None, str | None]:
        ec2 = self._clients["ec2"]
        if group.get("TargetType") == "instance":
            found = [i for r in ec2.describe_instances(InstanceIds=[target_id])["Reservations"] for i in r["Instances"]]
            for eni in found[0].get("NetworkInterfaces", ()) if found else ():
                if eni.get("Attachment", {}).get("DeviceIndex") == 0:
                    return tuple(g["GroupId"] for g in eni.get("Groups", ())), eni.get("SubnetId")
            return (tuple(g["GroupId"] for g in found[0].get("SecurityGroups", ())),
                    found[0].get("SubnetId")) if found else (None, None)
        enis = ec2.describe_network_interfaces(
            Filters=[{"Name": "addresses.private-ip-address", "Values": [target_id]}])["NetworkInterfaces"]
        if not enis:
            return None, None
        return tuple(g["GroupId"] for g in enis[0].get("Groups", ())), enis[0].get("SubnetId")

    def _acl_lets_in(self, subnet: str | None, sources: list[str], port: int) -> bool:
        """The target subnet's network ACL lets the health checks in from every other load balancer
        subnet, first matching entry by rule number (traffic inside one subnet is not filtered)."""
        if subnet is None or not sources:
            return True
        acls = self._clients["ec2"].describe_network_acls(
            Filters=[{"Name": "association.subnet-id", "Values": [subnet]}])["NetworkAcls"]
        if not acls:
            return True
        entries = sorted((e for e in acls[0].get("Entries", ()) if not e.get("Egress") and e.get("CidrBlock")),
                         key=lambda e: e["RuleNumber"])
        for source in sources:
            first = next((e for e in entries if _entry_matches(e, port) and _inside(source, e["CidrBlock"])), None)
            if first is None or first.get("RuleAction") != "allow":
                return False
        return True


def _admits(rule: dict[str, Any], port: int) -> bool:
    protocol = str(rule.get("IpProtocol"))
    if protocol == "-1":
        return True
    return protocol in ("tcp", "6") and rule.get("FromPort", -1) <= port <= rule.get("ToPort", -1)


def _entry_matches(entry: dict[str, Any], port: int) -> bool:
    protocol = str(entry.get("Protocol"))
    if protocol == "-1":
        return True
    ports = entry.get("PortRange") or {}
    return protocol == "6" and ports.get("From", 0) <= port <= ports.get("To", 65535)


def _inside(cidr: str, outer: str | None) -> bool:
    if not outer:
        return False
    try:
        return ipaddress.ip_network(cidr, strict=False).subnet_of(ipaddress.ip_network(outer, strict=False))
    except (ValueError, TypeError):
        return False


def _handler(elb: DemoElb) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *_: object) -> None:
            return None

        def _handle(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
            status, answer_headers, payload = elb.forward(self.command, self.path, headers, body)
            payload = elb.answer(body, status, payload)
            self.send_response(status)
            for key, value in answer_headers:
                if key.lower() not in _HOP_BY_HOP:
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _handle

    return Handler
