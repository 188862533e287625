"""The service models the monitor's clients load: botocore's own, keeping of EC2 only the operations
the monitor sends (and every shape they reach), and of a load balancer only what it reads.

botocore holds a client's whole model for the process's life; EC2's has some 830 operations, for
the handful the monitor calls, and is the largest single part of the process's idle memory.
Registered as the data loader of the monitor's botocore session (botocore's own component for it),
so the other sessions of the process are untouched; requests and answers use the same shapes.
"""

from __future__ import annotations

from typing import Any

import botocore.loaders

# Every EC2 call the monitor's clients make (discovery, the rule check, enforce's writes).
# tests/aws/test_models.py holds this list to the calls found in the code.
EC2_OPERATIONS = frozenset({
    "AuthorizeSecurityGroupIngress",
    "DescribeInstances",
    "DescribeNetworkAcls",
    "DescribeNetworkInterfaces",
    "DescribeSecurityGroupRules",
    "DescribeSecurityGroups",
    "DescribeSubnets",
    "DescribeVpcs",
    "GetManagedPrefixListEntries",
    "RevokeSecurityGroupIngress",
})
# And every IAM call (preflight's read of the v2 controller's role).
IAM_OPERATIONS = frozenset({"GetPolicy", "GetPolicyVersion", "GetRolePolicy", "ListAttachedRolePolicies",
                            "ListRolePolicies"})
KEPT = {"ec2": EC2_OPERATIONS, "iam": IAM_OPERATIONS}
# Of a load balancer, what the monitor reads (monitor.aws.discover.listed_item): the rule check lists
# every load balancer of the region each check, and botocore's parsing is most of that check's CPU.
MEMBERS = {"elbv2": {"LoadBalancer": ("LoadBalancerArn", "LoadBalancerName", "Type", "VpcId", "SecurityGroups",
                                      "DNSName", "Scheme", "IpAddressType", "AvailabilityZones"),
                     "AvailabilityZone": ("SubnetId",)}}


class TrimmedLoader(botocore.loaders.Loader):
    """botocore's loader, answering a service model with only the operations in KEPT for it."""

    def load_service_model(self, service_name: str, type_name: str, api_version: str | None = None) -> Any:
        model = super().load_service_model(service_name, type_name, api_version)
        keep, members = KEPT.get(service_name), MEMBERS.get(service_name)
        if type_name != "service-2" or (keep is None and members is None) or model.get("_trimmed"):
            return model
        trimmed = trim(model, keep) if keep is not None else dict(model)
        if members is not None:
            trimmed["shapes"] = {**trimmed["shapes"], **{
                name: {**trimmed["shapes"][name], "members": {m: trimmed["shapes"][name]["members"][m] for m in kept}}
                for name, kept in members.items()}}
        trimmed["_trimmed"] = True
        # The loader caches both the file and the model it made from it: keep only the trimmed one.
        self._cache[("load_service_model", service_name, type_name, api_version)] = trimmed
        for key in [k for k in self._cache if k[0] == "load_data_with_path" and str(k[1]).startswith(service_name + "/")
                    and str(k[1]).endswith("/service-2")]:
            del self._cache[key]
        return trimmed


def trim(model: dict[str, Any], keep: frozenset[str]) -> dict[str, Any]:
    operations = {name: op for name, op in model["operations"].items() if name in keep}
    shapes = model["shapes"]
    wanted = [ref["shape"] for op in operations.values()
              for ref in (op.get("input"), op.get("output"), *op.get("errors", ())) if ref]
    reached: set[str] = set()
    while wanted:
        name = wanted.pop()
        if name in reached:
            continue
        reached.add(name)
        shape = shapes[name]
        wanted.extend(member["shape"] for member in shape.get("members", {}).values())
        wanted.extend(shape[part]["shape"] for part in ("member", "key", "value") if part in shape)
    return {**model, "operations": operations, "shapes": {name: shapes[name] for name in reached}}
