"""moto's server for the benchmark's large accounts: the same answers, two of its lookups indexed.

moto finds the tags of each resource it returns by scanning every tag of the account, and matches
a `group-id` filter of DescribeSecurityGroupRules as a pattern against every rule. At 1,000 ALBs
one rule listing (2,600 rules) takes moto about 20 s on these machines, and at 5,000 ALBs minutes:
the benchmark would measure moto, not the monitor. Here a resource's tags are read from moto's own
tag table by its id, and a group id is compared as a plain string (moto refuses wildcards there): what
moto answers is unchanged, only how long it takes. One answer is made more like AWS's: the rule
listing comes a page (MaxResults) at a time, where moto sends every rule in one answer. The client side (boto3, the monitor) is
untouched; the counting proxy still sees every request.

    python -m bench.fastmoto -H 127.0.0.1 -p 5000     (the arguments of `python -m moto.server`)
"""

from __future__ import annotations

import sys
import uuid
from collections import OrderedDict
from typing import Any

from moto import server
from moto.core.responses import ActionResult
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


def install() -> None:
    TaggedEC2Resource.get_tags = _tags  # type: ignore[method-assign]
    SecurityGroupRule.filter_group_id = _filter_group_id  # type: ignore[method-assign]
    SecurityGroups.describe_security_group_rules = _rules_paged  # type: ignore[method-assign]


if __name__ == "__main__":
    install()
    server.main(sys.argv[1:])
