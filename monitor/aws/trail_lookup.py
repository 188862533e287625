"""CloudTrail LookupEvents on one security group: the management events that touched it in a time
window, read into the same `ApiEvent`s the events queue gives. Used without an events queue, to say
later who cut a path (CloudTrail makes an event searchable minutes after the call)."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime, timezone
from typing import Any

from monitor.aws.calls import attempt, one_line
from monitor.aws.session import ApiCounter, side_client
from monitor.core.events import DETAIL_TYPE, EC2, ApiEvent, parse_event
from monitor.core.model import ReadFailure

MAX_RESULTS = 50  # LookupEvents returns at most 50 events a page; one page is enough for one group


def connect_cloudtrail(region: str | None, counter: ApiCounter | None = None) -> Any:
    return side_client("cloudtrail", region, counter)


def lookup_group(client: Any, group_id: str, start: float, end: float) -> tuple[tuple[ApiEvent, ...], ReadFailure | None]:
    """The EC2 events of the window that name `group_id` as a resource, newest first; a failed read
    is returned as data, its message cut to one line of at most 200 characters."""
    failures: list[ReadFailure] = []
    answer = attempt(failures, "cloudtrail", "LookupEvents", lambda: client.lookup_events(
        LookupAttributes=[{"AttributeKey": "ResourceName", "AttributeValue": group_id}],
        StartTime=datetime.fromtimestamp(start, timezone.utc), EndTime=datetime.fromtimestamp(end, timezone.utc),
        MaxResults=MAX_RESULTS), group_id)
    if answer is None:  # its message goes to a log line: one short line, never a whole error page
        return (), dataclasses.replace(failures[0], message=one_line(failures[0].message))
    events = []
    for item in answer.get("Events", ()):
        try:
            record = json.loads(item.get("CloudTrailEvent") or "")
        except (TypeError, ValueError):
            continue
        source = record.get("eventSource", "") if isinstance(record, dict) else ""
        # LookupEvents gives the CloudTrail record itself: wrap it as EventBridge would.
        parsed = parse_event({"detail-type": DETAIL_TYPE, "source": "aws." + source.split(".", 1)[0] if source else EC2,
                              "detail": record})
        if isinstance(parsed, ApiEvent):
            events.append(parsed)
    return tuple(events), None
