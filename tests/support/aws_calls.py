"""Which AWS operations the monitor's code calls, found by reading monitor/aws/ (no import, no run):
the list the IAM policy test holds against the shipped policies and the fault matrix fails in turn."""

from __future__ import annotations

import ast
import textwrap
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import botocore.session
from botocore import xform_name

ROOT = Path(__file__).resolve().parent.parent.parent
AWS_CODE = ROOT / "monitor" / "aws"
# The client attributes the code has today (monitor/aws/session.py SERVICES) that are botocore
# service names; any other botocore service the code builds a client for is picked up by the scanner
# as well. Service Quotas (attribute `servicequotas`, botocore `service-quotas`) is found by the
# ("service-quotas", "GetServiceQuota") labels its reads carry.
BASE_SERVICES = ("ec2", "elbv2", "iam")
# Methods of a boto3 client that are not API operations.
CLIENT_HELPERS = {"get_paginator", "can_paginate", "get_waiter", "close", "generate_presigned_url", "meta",
                  "exceptions"}


@dataclass(frozen=True)
class ApiCall:
    service: str  # botocore service name, e.g. elbv2
    operation: str  # API operation, e.g. DescribeTargetHealth
    where: str

    @property
    def action(self) -> str:
        """The IAM action, e.g. elasticloadbalancing:DescribeTargetHealth."""
        return f"{iam_prefix(self.service)}:{self.operation}"

    @property
    def is_read(self) -> bool:
        return self.operation.startswith(("Describe", "Get", "List", "Lookup"))


@cache
def _botocore():
    return botocore.session.get_session()


@cache
def operations(service: str) -> dict[str, str]:
    """snake_case method name -> API operation name, from botocore's own service model."""
    model = _botocore().get_service_model(service)
    return {xform_name(op): op for op in model.operation_names}


@cache
def all_services() -> frozenset[str]:
    return frozenset(_botocore().get_available_services())


def iam_prefix(service: str) -> str:
    metadata = _botocore().get_service_model(service).metadata
    return metadata.get("signingName") or metadata["endpointPrefix"]


class ScanError(AssertionError):
    pass


class _Scanner(ast.NodeVisitor):
    """Finds boto3 client calls however they are spelt: `clients.ec2.describe_x(...)`, an alias
    (`ec2 = clients.ec2`, `self._elbv2`, a parameter named `iam`), `boto3.client("ec2")`,
    `get_paginator("describe_x")`, a helper given a client and a method name
    (`paginate(clients.ec2, "describe_x")`), and the `("ec2", "DescribeX")` labels passed with them."""

    def __init__(self, path: str, tree: ast.AST) -> None:
        self.path = path
        self.aliases: dict[str, str] = {}
        self.found: set[ApiCall] = set()
        # Services the file builds clients for, besides the ones the session module provides.
        self.services = set(BASE_SERVICES) | {
            n.args[0].value for n in ast.walk(tree)
            if isinstance(n, ast.Call) and (self._name(n.func) or "").endswith("client") and n.args
            and isinstance(n.args[0], ast.Constant) and n.args[0].value in all_services()}
        for _ in range(2):  # twice, so an alias made from another alias resolves
            for node in ast.walk(tree):
                if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
                    service = self.service_of(node.value)
                    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                    for target in targets:
                        name = self._name(target)
                        if service and name:
                            self.aliases[name] = service

    @staticmethod
    def _name(node: ast.AST) -> str | None:
        if isinstance(node, ast.Name):
            return node.id
        if isinstance(node, ast.Attribute):
            return node.attr
        if isinstance(node, ast.arg):
            return node.arg
        return None

    def service_of(self, node: ast.AST) -> str | None:
        if isinstance(node, ast.Call) and isinstance(node.func, (ast.Attribute, ast.Name)) \
                and (self._name(node.func) or "").endswith("client") and node.args:
            first = node.args[0]
            if isinstance(first, ast.Constant) and first.value in all_services():
                return first.value
            return None
        name = self._name(node)
        if name is None:
            return None
        plain = name.lstrip("_").removesuffix("_client")  # ec2, _ec2, ec2_client, self._elbv2
        if plain in self.services:
            return plain
        return self.aliases.get(name)

    def _record(self, service: str | None, method: str, node: ast.AST) -> None:
        where = f"{self.path}:{node.lineno}"
        if service is None:
            owners = sorted(s for s in self.services if method in operations(s))
            if len(owners) > 1:
                raise ScanError(f"{where}: cannot tell which client `{method}` is called on "
                                f"(it exists in {', '.join(owners)}); name the client after its service")
            if not owners:
                return
            service = owners[0]
        operation = operations(service).get(method)
        if operation is None:
            raise ScanError(f"{where}: `{method}` is not an operation of the {service} client")
        self.found.add(ApiCall(service, operation, where))

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        args = list(node.args) + [k.value for k in node.keywords]
        strings = [a.value for a in args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
        if isinstance(func, ast.Attribute):
            receiver = self.service_of(func.value)
            if func.attr in ("get_paginator", "can_paginate"):
                if args and isinstance(args[0], ast.Constant) and isinstance(args[0].value, str):
                    self._record(receiver, args[0].value, node)
            elif receiver is not None:
                if func.attr not in CLIENT_HELPERS:
                    self._record(receiver, func.attr, node)
            elif any(func.attr in operations(s) for s in self.services):
                self._record(None, func.attr, node)
        # A helper handed a client and a method name: paginate(clients.ec2, "describe_x", ...).
        clients = {s for s in map(self.service_of, args) if s}
        if clients:
            for text in strings:
                owners = [s for s in clients if text in operations(s)]
                if owners:
                    self._record(owners[0] if len(owners) == 1 else None, text, node)
        # A (service, Operation) label pair, as passed with every read: attempt(f, "ec2", "DescribeX", ...).
        for label in (s for s in strings if s in all_services()):
            for text in strings:
                if text in operations(label).values():
                    self.found.add(ApiCall(label, text, f"{self.path}:{node.lineno}"))
        self.generic_visit(node)


def scan_source(source: str, path: str = "<code>") -> set[ApiCall]:
    tree = ast.parse(textwrap.dedent(source))
    scanner = _Scanner(path, tree)
    scanner.visit(tree)
    return scanner.found


def scan_code() -> set[ApiCall]:
    found: set[ApiCall] = set()
    for path in sorted(AWS_CODE.rglob("*.py")):
        found |= scan_source(path.read_text(), str(path.relative_to(ROOT)))
    return found


def read_operations() -> list[tuple[str, str]]:
    """Every (service, operation) the code reads, sorted: the faults the matrix injects in turn."""
    return sorted({(c.service, c.operation) for c in scan_code() if c.is_read})


def write_operations() -> list[tuple[str, str]]:
    """Every (service, operation) the code writes with."""
    return sorted({(c.service, c.operation) for c in scan_code() if not c.is_read})
