"""moto's server for the benchmark's large accounts: the same answers, sooner.

moto finds the tags of each resource it returns by scanning every tag of the account, and matches
a `group-id` filter of DescribeSecurityGroupRules as a pattern against every rule. At 1,000 ALBs
one rule listing (2,600 rules) takes moto about 20 s on these machines, and at 5,000 ALBs minutes:
the benchmark would measure moto, not the monitor. Here a resource's tags are read from moto's own
tag table by its id, and a group id is compared as a plain string (moto refuses wildcards there).
moto's writing of an answer works out again, for every value, which attribute names to try, which
transformer applies to its key path, and parses every timestamp anew with dateutil: each is worked
out once here (by the object's class and the member's shape; by the key path; by the value), which
makes a page of the two listings of every check (400 load balancers, 1,000 rules) about twice as
quick. What moto answers is unchanged, byte for byte (tests/bench/test_benchmark.py), only how long
it takes. One answer is made more like AWS's: the rule listing comes a page (MaxResults) at a time,
where moto sends every rule in one answer. The client side (boto3, the monitor) is untouched; the
counting proxy still sees every request.

    python -m bench.fastmoto -H 127.0.0.1 -p 5000     (the arguments of `python -m moto.server`)
"""

from __future__ import annotations

import sys
import uuid
from collections import OrderedDict
from datetime import datetime
from typing import Any

from moto import server
from moto.core import serialize
from moto.core.responses import ActionResult
from moto.core.utils import MISSING, get_value
from moto.ec2.models.core import TaggedEC2Resource
from moto.ec2.models.security_groups import SecurityGroupRule
from moto.ec2.responses.security_groups import SecurityGroups
from moto.ec2.utils import EC2_PREFIX_TO_RESOURCE, get_prefix


def _tags(self: Any) -> list[dict[str, str]]:
    """What moto's describe_tags(resource-id=[self.id]) returns, read by id instead of by scan."""
    if not getattr(self, "id", None):
        return []
    kind = EC2_PREFIX_TO_RESOURCE.get(get_prefix(self.id), "")
    return [{"resource_id": self.id, "key": key, "value": value, "resource_type": kind}
            for key, value in self.ec2_backend.tags.get(self.id, {}).items()]


def _filter_group_id(self: Any, values: list[Any]) -> bool:
    return self.group_id in values  # moto refuses a group id with a wildcard before it filters


_LISTINGS: OrderedDict[str, list[Any]] = OrderedDict()  # a paged rule listing's rules, by its token
_KEPT_LISTINGS = 16


def _rules_paged(self: Any) -> ActionResult:
    """DescribeSecurityGroupRules a page at a time, as AWS answers it (MaxResults, up to 1,000, and
    NextToken); moto answers every rule at once, which at 5,000 ALBs is one 13,000-rule answer. The
    rules are gathered once, on the first page, and the later pages of that listing served from it."""
    self.error_on_dryrun()
    size = min(int(self._get_param("MaxResults") or 1000), 1000)
    key, _, start = str(self._get_param("NextToken") or "").partition(":")
    rules = _LISTINGS.get(key) if key else None
    if rules is None:
        key, start = uuid.uuid4().hex, "0"
        rules = self.ec2_backend.describe_security_group_rules(self._get_param("SecurityGroupRuleIds", []),
                                                               self._filters_from_querystring())
    begin = int(start or 0)
    result: dict[str, Any] = {"SecurityGroupRules": rules[begin:begin + size]}
    if begin + size < len(rules):
        result["NextToken"] = f"{key}:{begin + size}"
        _LISTINGS[key] = rules
        while len(_LISTINGS) > _KEPT_LISTINGS:
            _LISTINGS.popitem(last=False)
    else:
        _LISTINGS.pop(key, None)
    return ActionResult(result)


_KEYS: dict[tuple[Any, ...], tuple[str, ...]] = {}
_ASK_KEYS = serialize.XFormedAttributePicker.get_possible_keys


def _possible_keys(self: Any, context: Any) -> tuple[str, ...]:
    """The names moto tries, in its order, for one member of one kind of object: worked out once.
    They depend on the object's class (its name, its aliases), the member's name and its shape (its
    name, kind and serialized name, and its parent structure's), nothing of the object's values."""
    shape = context.shape
    parent = getattr(shape, "parent", None)
    key = (type(self), type(context.obj), context.key, context.service_model.service_name,
           None if shape is None else (shape.name, shape.type_name, shape.serialization.get("name")),
           None if parent is None else (parent.name, parent.type_name))
    found = _KEYS.get(key)
    if found is None:
        found = _KEYS[key] = tuple(_ASK_KEYS(self, context))
    return found


_TRANSFORMED: dict[tuple[int, int, str], str | None] = {}


def _pick(self: Any, context: Any) -> Any:
    """moto's AttributePicker.__call__, with the transformer of a key path found once (moto tries
    every transformer's path against the key path of every value it writes)."""
    obj = context.obj
    for possible_key in self.get_possible_keys(context):
        value = get_value(obj, possible_key, MISSING)
        if value is not MISSING:
            break
    else:
        value = None
    transformers = self.response_transformers
    if transformers:
        key_path = f"{context.key_path}.{context.key}"
        memo = (id(transformers), len(transformers), key_path)  # a response class may add one later
        if memo not in _TRANSFORMED:
            _TRANSFORMED[memo] = next((path for path in transformers if key_path.endswith(path)), None)
        path = _TRANSFORMED[memo]
        if path is not None:
            value = transformers[path](value)
    return value


_TIMES: dict[tuple[Any, ...], Any] = {}
_CONVERT_TIME = serialize.TimestampSerializer._convert_timestamp_to_str


def _time_text(self: Any, value: Any, timestamp_format: str) -> Any:
    """moto's timestamp writing (dateutil parses each one again, an ALB's creation time at every
    listing), once per value and format."""
    if isinstance(value, datetime):
        key: tuple[Any, ...] = (timestamp_format, "datetime", value.isoformat())
    elif isinstance(value, (str, int, float)):
        key = (timestamp_format, type(value), value)
    else:
        return _CONVERT_TIME(self, value, timestamp_format)
    found = _TIMES.get(key)
    if found is None:
        found = _TIMES[key] = _CONVERT_TIME(self, value, timestamp_format)
    return found


def install() -> None:
    serialize.XFormedAttributePicker.get_possible_keys = _possible_keys  # type: ignore[method-assign]
    serialize.AttributePicker.__call__ = _pick  # type: ignore[method-assign]
    serialize.TimestampSerializer._convert_timestamp_to_str = _time_text  # type: ignore[method-assign]
    TaggedEC2Resource.get_tags = _tags  # type: ignore[method-assign]
    SecurityGroupRule.filter_group_id = _filter_group_id  # type: ignore[method-assign]
    SecurityGroups.describe_security_group_rules = _rules_paged  # type: ignore[method-assign]


if __name__ == "__main__":
    install()
    server.main(sys.argv[1:])
