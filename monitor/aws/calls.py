"""Small helpers shared by the AWS readers: paging, batching, and turning failures into data."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from botocore.exceptions import BotoCoreError, ClientError
from botocore.parsers import ResponseParserError

from monitor.failures import EMPTY_ANSWER
from monitor.model import ReadFailure

T = TypeVar("T")

# Filter values per EC2 Describe* filter, and ARNs per ELBv2 DescribeTags call (AWS API limits).
EC2_FILTER_VALUES = 200
ELB_TAGS_PER_CALL = 20
EC2_PAGE = 1000
ELB_PAGE = 400


def attempt(failures: list[ReadFailure], service: str, operation: str, fn: Callable[[], T], scope: str = "") -> T | None:
    """Run one read; on failure record it and return None (unknown), never raise."""
    try:
        return fn()
    except ClientError as exc:
        error = exc.response.get("Error", {})
        failures.append(ReadFailure(service, operation, str(error.get("Code", "Unknown")), str(error.get("Message", "")), scope))
    except BotoCoreError as exc:
        failures.append(ReadFailure(service, operation, type(exc).__name__, str(exc), scope))
    except ResponseParserError as exc:  # an answer cut short or garbled (not a BotoCoreError)
        failures.append(ReadFailure(service, operation, type(exc).__name__, unparsable(exc), scope))
    return None


def unparsable(exc: Exception) -> str:
    """botocore's words without the body it quotes (the body can be megabytes)."""
    return str(exc).split("\n", 1)[0].split(" Further retries", 1)[0].rstrip(":")


def contradiction(failures: list[ReadFailure], service: str, operation: str, message: str, scope: str = "") -> None:
    """Record an answer that lists nothing (or less than asked) where that cannot be so: a failed read."""
    failures.append(ReadFailure(service, operation, EMPTY_ANSWER, message, scope))


def confirm_absent(failures: list[ReadFailure], service: str, operation: str, read_by_id: Callable[[], list],
                   scope: str) -> list | None:
    """A listing filtered by ids answered nothing: ask again naming the ids, which AWS answers with
    each of them or with a NotFound error. That answer is taken ([] when NotFound); nothing again
    is a contradiction, recorded (None: unknown)."""
    tried: list[ReadFailure] = []
    answer = attempt(tried, service, operation, read_by_id, scope)
    if answer:
        return answer
    if answer is not None:
        contradiction(failures, service, operation, "none of the ids asked listed, by filter or by id", scope)
        return None
    if tried[0].code.endswith(".NotFound"):
        return []
    failures.extend(tried)
    return None


def paginate(client: Any, method: str, key: str, page_size: int, **kwargs: Any) -> list[dict]:
    paginator = client.get_paginator(method)
    items: list[dict] = []
    for page in paginator.paginate(PaginationConfig={"PageSize": page_size}, **kwargs):
        items.extend(page.get(key, ()))
    return items


def chunks(items: Iterable[T], size: int) -> Iterator[list[T]]:
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def tag_pairs(tags: Iterable[dict] | None) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((t["Key"], t.get("Value", "")) for t in tags or ()))


def scope_of(ids: list[str], limit: int = 3) -> str:
    shown = ", ".join(ids[:limit])
    return shown if len(ids) <= limit else f"{shown} and {len(ids) - limit} more"
