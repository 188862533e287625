"""`alb-sg-monitor demo`: the real daemon against the embedded world, while a migration story plays.

A moto server holds a cluster halfway through the v1 -> v2 migration (monitor.demo.world). The
daemon runs exactly as `alb-sg-monitor run` does (scheduler, /metrics, /healthz, /readyz) and a
story thread changes the world on a timeline: the v2 controller revokes a v1 rule, someone puts
the v2 label on a rule v2 does not own, a network ACL change cuts two ALBs' pods in one subnet,
the first two are repaired, and last a colleague revokes another ALB's rule by hand. The live
view (monitor.demo.view) shows each detection as it happens. The story takes about 40 seconds (--demo-speed plays it
faster); then the demo exits 0, or with --demo-after serve keeps serving until Ctrl-C. With
--mode enforce the monitor puts the revoked rules back itself; the view says so, the engineer of
the story then finds nothing to do, and the summary credits the monitor. The story's calls also
arrive as CloudTrail events through EventBridge and an SQS queue (monitor.demo.trail), so the view
and the summary say who cut each path and how long the gap lasted.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace

from monitor import aws
from monitor.core.settings import Settings, format_duration
from monitor.daemon import runner
from monitor.demo import layout
from monitor.demo.account import DEMO_CLUSTER, DEMO_REGION
from monitor.surface import logs
from monitor.surface.server import parse_listen

STORY_SECONDS = 40.0


@dataclass(frozen=True)
class Beat:
    """One event of the story: at `at` seconds, `act` changes the world (and may return a line to
    show about what it found); `expect` is the finding code whose appearance (True) or
    disappearance (False) the monitor should report."""

    at: float
    text: str
    act: Callable[[object], str | None]
    expect: tuple[str, bool]


def story(world, enforce: bool = False, v2_role: str | None = None) -> tuple[Beat, ...]:
    """With `v2_role`, the story's calls also make their CloudTrail events (monitor.demo.trail): the
    v2 controller's revoke from its role; the engineer's repair and a colleague's revoke from people's SSO roles."""
    from monitor.demo import trail
    from monitor.demo import world as w

    shop = world.lb_name["shop"]
    by_hand = (lambda wd: trail.restore_by_hand(wd, "shop_v1")) if v2_role else (lambda wd: w.restore(wd, "shop_v1"))
    if enforce:
        repair = Beat(25, "An engineer comes to put the shop rule back by hand (tcp 0-65535 from the ALB's "
                          "security group).", lambda wd: _engineer_repairs(wd, "shop_v1", by_hand),
                      ("ACCESS_REVOKED", False))
    else:
        repair = Beat(25, "An engineer puts the shop rule back by hand (tcp 0-65535 from the ALB's security group).",
                      by_hand, ("ACCESS_REVOKED", False))
    cut = (lambda wd: trail.revoke(wd, "shop_v1", v2_role)) if v2_role else (lambda wd: w.revoke(wd, "shop_v1"))
    human_cut = (lambda wd: trail.revoke_by_hand(wd, "blog_v1")) if v2_role else (lambda wd: w.revoke(wd, "blog_v1"))
    return (
        Beat(5, f"The v2 controller starts without the migration IAM policy and revokes the v1 node rule "
                f"of {shop} (Ingress shop/frontend).", cut, ("ACCESS_REVOKED", True)),
        Beat(15, "Someone follows the migration guide's jq recipe and labels every tcp 0-65535 node rule "
                 "elbv2.k8s.aws/targetGroupBinding=shared, including the rule from the marketing team's own "
                 "ALB security group (v2 will revoke it at its next reconcile).",
             lambda wd: [w.label_with_shared(wd, key) for key in ("blog_v1", "marketing_user")],
             ("SHARED_LABEL_ON_FOREIGN_SOURCE", True)),
        Beat(20, "The network team puts subnet private-c behind a new network ACL whose rule 90 denies tcp "
                 "8000-8999 from the VPC (meant for a database port range): the pods of payments/api and "
                 "checkout/storefront there serve on 8443 and 8080.",
             lambda wd: f"The new ACL is {w.harden_network_acl(wd, 'private-c', 90, (8000, 8999))}; no security "
                        "group changed.",
             ("NACL_BLOCKED", True)),
        repair,
        Beat(28, f"Tidying up from the console, a platform engineer revokes the v1 node rule of "
                 f"{world.lb_name['blog']} (Ingress blog/web), sure that v2 covers that path by now.", human_cut,
             ("ACCESS_REVOKED", True)),
        Beat(32, "The marketing team takes the label off their rule's description.",
             lambda wd: w.describe_rule(wd, "marketing_user", "marketing ALB to nodes"),
             ("SHARED_LABEL_ON_FOREIGN_SOURCE", False)),
    )


def _engineer_repairs(world, rule_key: str, by_hand: Callable[[object], None] | None = None) -> str | None:
    """The engineer of an enforce-mode story: restores the rule by hand only if it is still gone."""
    from monitor.core import ownership
    from monitor.demo import world as w

    lost = world.revoked[rule_key]
    source = lost.get("ReferencedGroupInfo", {}).get("GroupId")
    rules = world.clients()["ec2"].describe_security_group_rules(
        Filters=[{"Name": "group-id", "Values": [lost["GroupId"]]}])["SecurityGroupRules"]
    back = next((r for r in rules if not r["IsEgress"] and r["IpProtocol"] == lost["IpProtocol"]
                 and (r.get("FromPort"), r.get("ToPort")) == (lost.get("FromPort"), lost.get("ToPort"))
                 and r.get("ReferencedGroupInfo", {}).get("GroupId") == source), None)
    if back is None:
        (by_hand or (lambda wd: w.restore(wd, rule_key)))(world)
        return "It is still gone: the engineer restores it by hand."
    world.revoked.pop(rule_key)
    world.rule[rule_key] = back["SecurityGroupRuleId"]
    tags = {t["Key"]: t["Value"] for t in back.get("Tags", [])}
    who = "alb-sg-monitor" if tags.get(ownership.OWNER_TAG) else "someone"
    return (f"It is already back: {who} restored it ({back['SecurityGroupRuleId']}, tagged "
            f"{ownership.OWNER_TAG}={tags.get(ownership.OWNER_TAG, '-')}); nothing to do.")


def metrics_url(listen: str, port: int) -> str:
    host, _ = parse_listen(listen)
    host = "localhost" if host in ("0.0.0.0", "::", "") else host
    return f"http://{f'[{host}]' if ':' in host else host}:{port}/metrics"


def play(world, beats: tuple[Beat, ...], view, stop: threading.Event, speed: float, after: str) -> None:
    """The story thread: waits for the first cycle, then acts on the timeline; sets `stop` at the
    end unless the demo should keep serving, and always if the story itself fails."""
    try:
        _play(world, beats, view, stop, speed, after)
    except BaseException:
        stop.set()
        raise


def _play(world, beats: tuple[Beat, ...], view, stop: threading.Event, speed: float, after: str) -> None:
    if not _wait_first_cycle(view, stop):
        return
    # The story's t+0 on the view's clock (which started at the first check): beats are timed from
    # here, and every line keeps that one clock, so no time shown goes backwards.
    origin = view.elapsed()
    view.note("The cluster as it is: two v1 ALBs, one adopted by v2, two made by v2. Every ALB reachable.")
    for beat in beats:
        if stop.wait(max(0.0, origin + beat.at / speed - view.elapsed())):
            return
        view.note(beat.text)
        try:
            found = beat.act(world)
            if isinstance(found, str):
                view.note(found)
        except Exception as exc:  # the world is a simulator: say so and go on with the story
            view.note(f"(the simulated AWS account refused: {exc})", kind="error")
    if stop.wait(max(0.0, origin + STORY_SECONDS / speed - view.elapsed())):
        return
    view.note("End of the story." + (" Still serving /metrics; Ctrl-C stops." if after == "serve" else ""))
    if after == "exit":
        view.end()
    summarize(beats, view, speed, origin)
    view.story_told.set()
    if after == "exit":
        stop.set()


def _wait_first_cycle(view, stop: threading.Event) -> bool:
    while not view.first_cycle.wait(0.2):
        if stop.is_set():
            return False
    return True


def summarize(beats: tuple[Beat, ...], view, speed: float, origin: float = 0.0) -> None:
    """`origin`: when the story started on the view's clock."""
    from monitor.demo.view import who

    seen = view.seen
    lines = ["", "What the monitor saw:"]
    records = []
    detected_at: dict[str, float] = {}  # code -> when the beat that raised it happened
    for beat in beats:
        code, appears = beat.expect
        when = origin + beat.at / speed
        word = "detected" if appears else "cleared"
        at = seen.first(word, code, when)
        record = {"at": when, "code": code, "expected": word, "after_seconds": None, "by": None}
        early = None if appears else seen.first("cleared", code, detected_at.get(code, when))
        if early is not None and early < when:
            # Cleared before this beat came: in enforce mode, by the monitor's own restore.
            by = "alb-sg-monitor" if any(detected_at.get(code, 0.0) <= r.t <= early for r in seen.restores) else None
            since = detected_at.get(code, when)
            took = (f"cleared by alb-sg-monitor's restore at t+{early:05.1f}s, {early - since:.1f}s after it happened"
                    if by else f"cleared at t+{early:05.1f}s, {early - since:.1f}s after it happened, before this step")
            record.update(after_seconds=round(early - since, 2), by=by or "someone")
        elif at is not None:
            took = f"{word} {at - when:.1f}s after it happened"
            record.update(after_seconds=round(at - when, 2))
        else:
            took = f"NOT {word}"
        if appears:
            detected_at[code] = when
        lines.append(f"  t+{when:05.1f}s  {code} {took}")
        records.append(record)
    total = sum(seen.revocations.values())
    lines.append(f"  {total} revocation(s) counted in albsg_rule_revocations_total"
                 + (f" ({', '.join(f'{lb}: {n}' for lb, n in seen.revocations.items())})" if total else ""))
    for a in seen.attributions:
        lines.append(f"  {a['code']} on {a['load_balancer']}: rule {a['rule'] or '?'} cut by {who(a['principal'])} "
                     f"({a['actor_kind'].replace('_', ' ')}), from its CloudTrail event")
    for o in seen.outages:
        lines.append(f"  {o['rule']} was out for {o['seconds']:g}s: revoked by {who(o['revoked_by'])}, "
                     f"granted again by {who(o['granted_by'])}")
    if seen.restores:
        lines.append(f"  alb-sg-monitor restored {len(seen.restores)} rule(s): " + "; ".join(
            f"{r.rule} for {', '.join(r.load_balancers)} at t+{r.t:05.1f}s, {r.after_seconds:.1f}s after the path "
            "was lost" for r in seen.restores))
    lines += ["", "On a real account: alb-sg-monitor check --cluster-name <yours>; as a daemon: "
              "alb-sg-monitor run (docs/daemon.md); alerts: docs/alerting.md; deploying: deploy/README.md."]
    view.write("\n".join(lines), final=True)
    view.emit({"type": "summary", "cycles": seen.cycles, "revocations": dict(seen.revocations), "story": records,
               "attributions": seen.attributions, "outage_windows": seen.outages,
               "restores": [{"t": round(r.t, 2), "load_balancer": ", ".join(r.load_balancers), "rule": r.rule,
                             "rule_id": r.rule_id, "after_seconds": r.after_seconds} for r in seen.restores]},
              final=True)


def run_demo(settings: Settings) -> int:
    # Imported here: monitor.surface.main imports this module lazily, and the demo world needs moto.
    from monitor.demo.view import LiveView
    from monitor.surface.main import assemble_daemon

    cluster = settings.cluster_name or DEMO_CLUSTER
    # The story's world is AWS only; a developer's kubeconfig must not join it.
    # The demo's account is local: nobody else's request budget to spare, so discovery is not paced.
    settings = replace(settings, cluster_name=cluster, region=DEMO_REGION, kubernetes="off", discovery_rate=None)
    # The daemon's own log events would interleave with the view: only errors, on stderr.
    logs.configure("console" if sys.stderr.isatty() else "json", stream=sys.stderr, level=logging.ERROR)
    for name in ("apscheduler", "botocore"):  # a skipped run while discovery is slow is no news here
        logging.getLogger(name).setLevel(logging.ERROR)
    mode = "json" if settings.output == "json" else "terminal" if sys.stdout.isatty() else "lines"
    if mode != "json":
        width = layout.piped_width() if mode == "lines" else layout.terminal_size()[0]
        print("\n".join(layout.wrap(f"Starting a simulated AWS account with EKS cluster {cluster!r} in the middle "
                                    "of the v1 -> v2 migration (no AWS account or cluster needed)...", width)),
              flush=True)
    from monitor.demo import account

    demo = account.start(cluster, DEMO_REGION, kubernetes=False)
    world = demo.world
    try:
        from monitor.demo import cluster as demo_cluster
        from monitor.demo import trail

        # The story's calls arrive as CloudTrail events through EventBridge and SQS, as on AWS.
        v2_role = demo_cluster.controller_role_arn(world)
        settings = replace(settings, events_queue=trail.create_queue(world), v2_controller_role_arn=v2_role)
        parts = assemble_daemon(settings, aws.connect(world.region))
        url = metrics_url(settings.listen, parts.server.port)
        stop = threading.Event()
        view = LiveView(sys.stdout, mode, url, on_closed=stop.set)
        parts.daemon.on_cycle.append(view.cycle)
        if parts.daemon.feed is not None:
            parts.daemon.feed.on_outage.append(view.outage)
        speed = settings.demo_speed
        view.write(f"The monitor's daemon checks every {format_duration(settings.interval)}; Prometheus metrics at "
                   f"{url}\nThe story takes about {STORY_SECONDS / speed:.0f}s"
                   + (", then the demo exits." if settings.demo_after == "exit" else "; the demo then keeps serving.")
                   + " Ctrl-C stops it at any time.\n")
        view.emit({"type": "start", "cluster": cluster, "region": world.region, "metrics_url": url,
                   "interval_seconds": settings.interval, "story_seconds": STORY_SECONDS / speed})
        teller = threading.Thread(target=play, name="story", daemon=True,
                                  args=(world, story(world, enforce=settings.mode == "enforce", v2_role=v2_role), view, stop, speed,
                                        settings.demo_after))
        teller.start()
        runner.run(parts.daemon, parts.server, settings.interval, settings.topology_interval, stop=stop)
        if not view.story_told.is_set():
            view.write("\nStopped before the end of the story.")
        return 0
    finally:
        demo.stop()
        sys.stdout.flush()
