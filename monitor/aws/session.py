"""Builds the boto3 clients with explicit retries and timeouts, and reports every request sent."""

from __future__ import annotations

import os
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import boto3
import botocore.config
import botocore.session

from monitor.aws.models import TrimmedLoader
from monitor.aws.pacing import Pacer
from monitor.aws.parsing import PlannedParserFactory
from monitor.core.errors import ConfigError

# botocore's standard mode retries throttling and 5xx with jittered backoff; a check cycle must not
# hang on a stalled endpoint, so timeouts are short and attempts few (EC2 throttling is shared with
# the controller and the CNI: docs/controllers.md).
RETRY_MAX_ATTEMPTS = 3
CONNECT_TIMEOUT_SECONDS = 5
READ_TIMEOUT_SECONDS = 15

# attribute and metrics label -> botocore service name
SERVICES = {"ec2": "ec2", "elbv2": "elbv2", "iam": "iam", "servicequotas": "service-quotas"}


class ApiListener(Protocol):
    def api_call(self, service: str, operation: str) -> None: ...

    def api_error(self, service: str, operation: str, code: str) -> None: ...


class Tally:
    """Requests sent by one piece of work (a check, a discovery), whatever runs beside it."""

    def __init__(self) -> None:
        self.calls = 0


@dataclass
class ApiCounter:
    """Counts requests and errors by (service, operation); also fans them out to listeners."""

    calls: Counter = field(default_factory=Counter)
    errors: Counter = field(default_factory=Counter)
    listeners: list[ApiListener] = field(default_factory=list)
    _local: threading.local = field(default_factory=threading.local, repr=False)

    def api_call(self, service: str, operation: str) -> None:
        self.calls[(service, operation)] += 1
        tally = getattr(self._local, "tally", None)
        if tally is not None:
            tally.calls += 1
        for listener in self.listeners:
            listener.api_call(service, operation)

    @contextmanager
    def scope(self) -> Iterator[Tally]:
        """Count this thread's requests while inside, apart from any enclosing scope's (a
        discovery run by a check is not counted as the check's)."""
        outer = getattr(self._local, "tally", None)
        self._local.tally = tally = Tally()
        try:
            yield tally
        finally:
            self._local.tally = outer

    def api_error(self, service: str, operation: str, code: str) -> None:
        self.errors[(service, operation, code)] += 1
        for listener in self.listeners:
            listener.api_error(service, operation, code)

    def total(self) -> int:
        return sum(self.calls.values())


@dataclass(frozen=True)
class AwsClients:
    region: str
    ec2: Any
    elbv2: Any
    iam: Any
    counter: ApiCounter
    pacer: Pacer = field(default_factory=Pacer)  # paces discovery only (inside pacer.discovering())
    servicequotas: Any = None  # read once, for the rules-per-group quota (None: assumed AWS's default)


def resolve_region(region: str | None) -> str:
    session = botocore.session.get_session()
    # botocore reads AWS_DEFAULT_REGION and the profile; AWS_REGION is what SDKs and EKS set.
    region = region or os.environ.get("AWS_REGION") or session.get_config_variable("region")
    if not region:
        raise ConfigError("--region: no AWS region configured; set --region or AWS_REGION")
    known = {
        name
        for partition in session.get_available_partitions()
        for name in session.get_available_regions("ec2", partition_name=partition)
    }
    if known and region not in known:
        raise ConfigError(f"--region: unknown AWS region {region!r}; expected one such as us-east-1")
    return region


def retries() -> dict[str, Any]:
    """Standard mode, RETRY_MAX_ATTEMPTS attempts unless the AWS configuration sets max_attempts the
    standard way (AWS_MAX_ATTEMPTS, or max_attempts in the profile)."""
    attempts = botocore.session.get_session().get_config_variable("max_attempts")
    return {"mode": "standard", "total_max_attempts": int(attempts) if attempts else RETRY_MAX_ATTEMPTS}


def connect(region: str | None, counter: ApiCounter | None = None) -> AwsClients:
    """Clients for one region. Raises ConfigError when no region or no credentials are found."""
    region = resolve_region(region)
    core = botocore.session.get_session()
    core.register_component("data_loader", TrimmedLoader())  # only the EC2 operations it sends
    core.register_component("response_parser_factory", PlannedParserFactory())  # botocore's answers, sooner
    _keep_timestamps_as_text(core)
    session = boto3.Session(botocore_session=core, region_name=region)
    if session.get_credentials() is None:
        raise ConfigError(
            "AWS credentials: none found; use IRSA/Pod Identity in a cluster, or AWS_PROFILE / "
            "AWS_ACCESS_KEY_ID locally"
        )
    config = botocore.config.Config(
        retries=retries(),
        connect_timeout=CONNECT_TIMEOUT_SECONDS,
        read_timeout=READ_TIMEOUT_SECONDS,
        user_agent_extra="alb-sg-monitor",
    )
    counter = counter or ApiCounter()
    pacer = Pacer()
    clients = {}
    for label, name in SERVICES.items():
        # AWS_ENDPOINT_URL(_<SERVICE>) is honoured by boto3 itself (used for moto in tests).
        client = session.client(name, config=config)
        instrument(client, label, counter, pacer)
        clients[label] = client
    return AwsClients(region=region, counter=counter, pacer=pacer, **clients)


def _keep_timestamps_as_text(session: botocore.session.Session) -> None:
    """Answers keep their timestamps as the text AWS sent. Nothing here reads a timestamp, and
    parsing them was half of a steady cycle's CPU at a thousand ALBs (CreatedTime of every
    DescribeLoadBalancers item, every cycle). botocore's documented parser setting, for this
    session's clients only."""
    factory = session.get_component("response_parser_factory")
    factory.set_parser_defaults(timestamp_parser=str)


def side_client(service: str, region: str | None, counter: "ApiCounter | None" = None,
                read_timeout: float = READ_TIMEOUT_SECONDS) -> Any:
    """A client outside the checks' set (the events queue, CloudTrail lookups): the same retries,
    timeouts and request counting, no discovery pacing."""
    config = botocore.config.Config(
        retries=retries(),
        connect_timeout=CONNECT_TIMEOUT_SECONDS, read_timeout=read_timeout, user_agent_extra="alb-sg-monitor")
    client = boto3.Session(region_name=resolve_region(region)).client(service, config=config)
    instrument(client, service, counter or ApiCounter())
    return client


def instrument(client: Any, service: str, counter: ApiCounter, pacer: Pacer | None = None) -> None:
    """Count every request and error of `client` in `counter`; with a `pacer`, hold discovery's
    requests to its rate (the attribution clients have none)."""
    def before_send(event_name: str, **_: Any) -> None:
        if pacer is not None:
            pacer.before_send(service)  # waits here while discovering over the family's rate
        counter.api_call(service, event_name.rsplit(".", 1)[-1])

    def needs_retry(event_name: str, response: Any = None, caught_exception: Any = None, **_: Any) -> None:
        operation = event_name.rsplit(".", 1)[-1]
        code: str | None = None
        if caught_exception is not None:
            code = type(caught_exception).__name__
            counter.api_error(service, operation, code)
        elif response is not None:
            code = (response[1] or {}).get("Error", {}).get("Code")
            if code:
                counter.api_error(service, operation, str(code))
        if pacer is not None:
            pacer.answered(service, None if code is None else str(code))
        return None

    client.meta.events.register("before-send", before_send)
    client.meta.events.register("needs-retry", needs_retry)
