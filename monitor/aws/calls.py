"""Small helpers shared by the AWS readers: paging, batching, and turning failures into data."""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from botocore.exceptions import BotoCoreError, ClientError
from botocore.parsers import ResponseParserError

from monitor.core import cancellation
from monitor.core.failures import EMPTY_ANSWER, PAGE_LIMIT, PAGINATION_LOOP
from monitor.core.model import ReadFailure

T = TypeVar("T")

# Filter values per EC2 Describe* filter, and ARNs per ELBv2 DescribeTags call (AWS API limits).
EC2_FILTER_VALUES = 200
ELB_TAGS_PER_CALL = 20
EC2_PAGE = 1000
ELB_PAGE = 400


# Pages one listing may take before it is a failed read. The largest listing of a realistic account
# is its whole DescribeSecurityGroupRules listing: a region at the default quota of 2,500 security
# groups with 40 rules each is 100,000 rules, 100 pages of 1,000; ten times that is 1,000. Every
# other listing takes far fewer pages (5,000 load balancers are 13 pages of 400, 20,000 network
# interfaces 20 pages of 1,000). A listing that never ends stops here instead of growing forever.
MAX_PAGES = 1000
# The output token of each listing the monitor pages: EC2's NextToken, ELBv2's NextMarker, IAM's
# Marker (meaningful only while IsTruncated).
_TOKEN_KEYS = ("NextToken", "NextMarker", "Marker")


class ListingFailed(Exception):
    """A listing that would never end (a token seen before, or more than MAX_PAGES pages): a
    failed read, so what depends on it is unknown."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def attempt(failures: list[ReadFailure], service: str, operation: str, fn: Callable[[], T], scope: str = "") -> T | None:
    """Run one read; on failure record it and return None (unknown), never raise. A cancelled read
    (monitor.core.cancellation) is no failure: its Cancelled goes through, to stop the abandoned check."""
    try:
        return fn()
    except ClientError as exc:
        error = exc.response.get("Error", {})
        failures.append(ReadFailure(service, operation, str(error.get("Code", "Unknown")), str(error.get("Message", "")), scope))
    except BotoCoreError as exc:
        failures.append(ReadFailure(service, operation, type(exc).__name__, str(exc), scope))
    except ListingFailed as exc:
        failures.append(ReadFailure(service, operation, exc.code, exc.message, scope))
    except ResponseParserError as exc:  # an answer cut short or garbled (not a BotoCoreError)
        failures.append(ReadFailure(service, operation, type(exc).__name__, unparsable(exc), scope))
    return None


def unparsable(exc: Exception) -> str:
    """botocore's words without the body it quotes (the body can be megabytes)."""
    return str(exc).split("\n", 1)[0].split(" Further retries", 1)[0].rstrip(":")


def one_line(message: str, limit: int = 200) -> str:
    """An error message as one short line for a log: its first line that says something once markup
    is taken out, at most `limit` characters. An answer that is not AWS's (an HTML error page of a
    proxy or load balancer) reaches botocore's message whole; its title is what tells the reader."""
    for line in message.splitlines():
        text = " ".join(re.sub(r"<[^>]*>", " ", line).split())
        if text:
            return text if len(text) <= limit else text[: limit - 1] + "…"
    return ""


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


def pages(client: Any, method: str, page_size: int | None = None, **kwargs: Any) -> Iterator[dict]:
    """Every page of one listing, requested one at a time. Each listing of the monitor goes through
    here, for three guards botocore's paginator lacks (it only stops a token repeated at once):
    before each request, a read whose check was abandoned stops (Cancelled); a token seen before in
    this listing (A, B, A, ...) and a page past MAX_PAGES end it as a failed read (ListingFailed)."""
    operation = client.meta.method_to_api_mapping.get(method, method)
    config = {"PageSize": page_size} if page_size else {}
    answers = iter(client.get_paginator(method).paginate(PaginationConfig=config, **kwargs))
    seen: set[str] = set()
    for number in itertools.count(1):
        cancellation.stop_if_unwanted(operation)
        page = next(answers, None)  # the request (none once botocore has seen the last page)
        if page is None:
            return
        if number > MAX_PAGES:
            raise ListingFailed(PAGE_LIMIT, f"{operation} had more than {MAX_PAGES} pages, ten times the "
                                            "largest listing of a realistic account")
        token = _next_token(page)
        if token is not None:
            if token in seen:
                raise ListingFailed(PAGINATION_LOOP, f"page {number} of {operation} repeated a next token given "
                                                     "earlier in the same listing")
            seen.add(token)
        yield page


def paginate(client: Any, method: str, key: str, page_size: int | None, *, each: Callable[[dict], dict] | None = None,
             **kwargs: Any) -> list[dict]:
    """Every item of one listing (`key` of each page), through pages(); `each` keeps of every item
    only what it returns, page by page (a large listing's answers are not all held at once)."""
    items: list[dict] = []
    for page in pages(client, method, page_size, **kwargs):
        found = page.get(key, ())
        items.extend(found if each is None else map(each, found))
    return items


def _next_token(page: dict) -> str | None:
    if page.get("IsTruncated") is False:
        return None
    return next((str(page[k]) for k in _TOKEN_KEYS if page.get(k)), None)


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
