"""The composition root: builds clients from settings and runs a command. Nothing else wires."""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import structlog

from monitor import __version__, aws
from monitor.core.errors import ConfigError
from monitor.core.event_match import KnownRoles
from monitor.core.model import Report
from monitor.core.settings import Settings
from monitor.core.state_doc import StateStore
from monitor.daemon import heap, runner
from monitor.daemon.cycle import check_once, preflight_once
from monitor.daemon.event_feed import EventFeed, attribution_off
from monitor.daemon.loop import Daemon
from monitor.daemon.remediation import Leadership, Remediator, SoleLeader
from monitor.daemon.state import FileStateStore, InMemoryStateStore
from monitor.daemon.trail_lookups import TrailLookups
from monitor.surface import logs, render
from monitor.surface.metrics import Metrics
from monitor.surface.server import Endpoints, HttpServer


def kube_api(mode: str):
    """The Kubernetes ApiClient for --kubernetes auto|on|off; None when off or (auto) not configured."""
    if mode == "off":
        return None
    from monitor.kube import client as kube_client

    return kube_client.connect(mode)


def kube_source(mode: str):
    """The Kubernetes reader for --kubernetes auto|on|off; None when off or (auto) not configured."""
    api = kube_api(mode)
    if api is None:
        return None
    from monitor.kube.reader import ClusterReader

    return ClusterReader(api)


def progress_line():
    """Progress on stderr while discovery runs, on a terminal only (one line, redrawn)."""
    if not sys.stderr.isatty():
        return None

    def show(text: str) -> None:
        sys.stderr.write(f"\r\033[K{text}...")
        sys.stderr.flush()

    return show


def _clear_progress() -> None:
    if sys.stderr.isatty():
        sys.stderr.write("\r\033[K")
        sys.stderr.flush()


def one_shot(command: str, run_it: Callable[[Settings], int], settings: Settings) -> int:
    """`check` or `preflight`, whose unexpected error (a bug, an AWS answer shaped unlike any the code
    knows) is an unknown verdict, exit status 3: never 1 (the exit status of a critical finding) nor 0."""
    try:
        return run_it(settings)
    except (ConfigError, KeyboardInterrupt):
        raise
    except Exception as exc:  # noqa: BLE001 (reported, with its traceback, as an unknown verdict)
        _clear_progress()
        traceback.print_exc(file=sys.stderr)
        print(f"alb-sg-monitor: {command} failed with an unexpected error ({type(exc).__name__}: {exc}); "
              "nothing was judged, the verdict is unknown", file=sys.stderr)
        return 3


def check(settings: Settings) -> int:
    clients = aws.connect(settings.region)
    report = check_once(clients, settings.cluster_name, kube_source(settings.kubernetes), progress_line())
    report, attribution = with_attribution(report, settings, clients)
    _clear_progress()
    emit(render.to_json(report, attribution=attribution) if settings.output == "json"
         else render.to_table(report, attribution=attribution["detail"]))
    return report.exit_code


def preflight(settings: Settings) -> int:
    clients = aws.connect(settings.region)
    report = preflight_once(clients, settings.cluster_name, kube_source(settings.kubernetes), progress_line())
    report, attribution = with_attribution(report, settings, clients)
    _clear_progress()
    emit(render.to_json(report, attribution=attribution) if settings.output == "json"
         else render.to_table(report, title="preflight", attribution=attribution["detail"]))
    return report.exit_code


def emit(text: str) -> None:
    """Print the report; a reader that stopped early (`| head`) is no error: the verdict stands, and
    the exit status is still the report's."""
    try:
        print(text, flush=True)
    except BrokenPipeError:
        # Python would complain again when it flushes stdout at exit: point stdout at nothing.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def with_attribution(report: Report, settings: Settings,
                     clients: aws.AwsClients) -> tuple[Report, dict[str, str | None]]:
    """Whether the daemon could say who cuts a path: the events queue, read without taking a message
    from it; an unreadable one adds ATTRIBUTION_OFF. Returns the report and the setup as the JSON
    report's `attribution` (state `on`, `off` or `not_configured`; `detail` is the table's line)."""
    queue = settings.events_queue
    if not queue:
        return report, {"state": "not_configured", "events_queue": None,
                        "detail": "off (no --events-queue: the daemon names a lost rule, not who removed it)"}
    from monitor.aws.events_queue import connect_queue, probe

    failure = probe(connect_queue(clients.region, clients.counter), queue)
    if failure is None:
        return report, {"state": "on", "events_queue": queue, "detail": f"events queue {queue}"}
    return replace(report, findings=report.findings + (attribution_off(queue, failure.code),)), \
        {"state": "off", "events_queue": queue, "detail": f"OFF: events queue {queue} cannot be read ({failure.code})"}


@dataclass(frozen=True)
class DaemonParts:
    """The daemon's parts, wired and not yet started (the demo starts them its own way)."""

    clients: aws.AwsClients
    metrics: Metrics
    daemon: Daemon
    server: HttpServer
    remediator: Remediator | None = None
    leadership: Leadership = field(default_factory=SoleLeader)  # start() before running, stop() after
    store: StateStore | None = None


_FROM_SETTINGS: Any = object()


def assemble_daemon(settings: Settings, clients: aws.AwsClients | None = None, *, kube: Any = _FROM_SETTINGS,
                    identity: str | None = None, namespace: str | None = None, store: StateStore | None = None,
                    wall: Callable[[], float] | None = None, monotonic: Callable[[], float] | None = None
                    ) -> DaemonParts:
    """Clients, metrics, daemon (with Kubernetes, state and leadership wired) and a bound HTTP server.
    Raises ConfigError (exit 2) on a bad region, missing credentials, an unusable state (corrupt,
    foreign, unreadable) or a --listen address in use, before anything runs.

    `kube` is a Kubernetes ApiClient, None for AWS-only, or (default) what --kubernetes resolves to.
    `identity`/`namespace` default to the pod's (POD_NAME/hostname, POD_NAMESPACE/service account);
    `store` overrides the state store; `wall`/`monotonic` are clocks for tests."""
    clients = clients or aws.connect(settings.region)
    api = kube_api(settings.kubernetes) if kube is _FROM_SETTINGS else kube
    metrics = Metrics()
    clients.counter.listeners.append(metrics)
    clients.pacer.configure(settings.discovery_rate)
    clients.pacer.add_listener(metrics)
    clocks: dict[str, Callable[[], float]] = {k: v for k, v in (("wall", wall), ("monotonic", monotonic)) if v}
    source, leadership, events, shared = None, SoleLeader(), None, False
    if api is not None:
        from monitor.kube import ClusterReader, lease, state_store
        from monitor.kube import events as kube_events
        from monitor.kube import identity as pod

        namespace = namespace or pod.pod_namespace()
        identity = identity or pod.pod_name()
        source = ClusterReader(api)
        leadership = lease.LeaseElector(api, namespace, identity, **clocks)
        events = kube_events.EventRecorder(api, identity)
        if store is None and not settings.state_file:
            store, shared = state_store.ConfigMapStateStore(api, namespace, settings.cluster_name), True
    if store is None:
        store = FileStateStore(settings.state_file, settings.cluster_name) if settings.state_file else InMemoryStateStore()
    remediator = Remediator(clients, settings, metrics, store, leadership=leadership, events=events,
                            shared_store=shared)
    remediator.load()
    remediator.check_store(describe_store(store))
    feed = events_feed(settings, clients, metrics, events, leadership, wall)
    lookups = None if feed is not None else trail_lookups(clients, metrics, wall)
    daemon = Daemon(clients, settings.cluster_name, metrics, settings.interval, settings.topology_interval,
                    **clocks, kube=source, remediator=remediator, cycle_timeout=settings.check_deadline, feed=feed,
                    lookups=lookups, roles=known_roles(settings), health_sweep=settings.health_sweep)
    server = HttpServer(settings.listen, Endpoints(metrics=metrics.exposition, health=daemon.health,
                                                   ready=daemon.ready))
    return DaemonParts(clients=clients, metrics=metrics, daemon=daemon, server=server, remediator=remediator,
                       leadership=leadership, store=store)


def known_roles(settings: Settings) -> KnownRoles:
    """The roles given by flags, and this monitor's own (IRSA puts it in AWS_ROLE_ARN)."""
    def one(arn: str | None) -> frozenset[str]:
        return frozenset({arn}) if arn else frozenset()

    return KnownRoles(v2_controller=one(settings.v2_controller_role_arn),
                      v1_controller=one(settings.v1_controller_role_arn), monitor=one(os.environ.get("AWS_ROLE_ARN")))


def events_feed(settings: Settings, clients: aws.AwsClients, metrics: Metrics, events: Any, leadership: Leadership,
                wall: Callable[[], float] | None = None, wait_seconds: int | None = None) -> EventFeed | None:
    """The events-queue consumer when --events-queue is set (not started)."""
    if not settings.events_queue:
        return None
    from monitor.aws.events_queue import WAIT_SECONDS, EventsQueue, connect_queue
    from monitor.aws.session import ApiCounter

    # A counter of its own: the receives run in their own thread and are no part of a cycle's cost.
    counter = ApiCounter()
    counter.listeners.append(metrics)
    sqs = connect_queue(clients.region, counter)
    queue = EventsQueue(sqs, settings.events_queue, wait_seconds=WAIT_SECONDS if wait_seconds is None else wait_seconds,
                        **({"wall": wall} if wall else {}))
    metrics.enable_events()
    feed = EventFeed(queue, metrics, queue_url=settings.events_queue, events=events,
                     **({"wall": wall} if wall else {}))
    feed.may_post = leadership.is_leader
    return feed


def trail_lookups(clients: aws.AwsClients, metrics: Metrics, wall: Callable[[], float] | None = None) -> TrailLookups:
    """CloudTrail lookups of revoked groups, when there is no events queue (not started). Their calls
    have a counter of their own: they run in their own thread and are no part of a cycle's cost."""
    from monitor.aws.session import ApiCounter
    from monitor.aws.trail_lookup import connect_cloudtrail

    counter = ApiCounter()
    counter.listeners.append(metrics)
    return TrailLookups(connect_cloudtrail(clients.region, counter), **({"wall": wall} if wall else {}))


def run(settings: Settings) -> int:
    heap.limit_arenas()  # before any thread of the daemon allocates
    """The daemon, until a stop signal (SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGXCPU: monitor.daemon.runner)."""
    logs.configure(settings.log_format)
    parts = assemble_daemon(settings)
    log = structlog.get_logger("monitor.main")
    log.info("daemon_starting", cluster=settings.cluster_name, region=parts.clients.region, mode=settings.mode,
             listen=settings.listen, version=__version__)
    if isinstance(parts.store, InMemoryStateStore) and settings.mode == "enforce":
        log.warning("state_not_persisted", detail="no --state-file and no Kubernetes: remembered rules are "
                    "lost on restart, so a restart during an outage cannot restore them")
    log.info("remediation_configured", mode=settings.mode, state=describe_store(parts.store),
             leader_election=not isinstance(parts.leadership, SoleLeader))
    if settings.mode == "enforce" and isinstance(parts.leadership, SoleLeader):
        log.warning("enforce_without_leader_election", reason=_why_no_election(settings),
                    detail="no Kubernetes Lease elects a single writer: run exactly one replica. Two replicas "
                    "would both write; the second's restores then count as already_present")
    parts.leadership.start()
    try:
        return runner.run(parts.daemon, parts.server, settings.interval, settings.topology_interval)
    finally:
        parts.leadership.stop()


def _why_no_election(settings: Settings) -> str:
    """The reason field of enforce_without_leader_election: Lease election needs the Kubernetes API."""
    return "kubernetes_off" if settings.kubernetes == "off" else "no_kubernetes_config"


def describe_store(store: StateStore | None) -> str:
    return "memory" if store is None else str(getattr(store, "where", type(store).__name__))
