"""Command-line parsing only: flags and their ALBSG_* twins become one validated Settings value."""

from __future__ import annotations

import argparse
import difflib
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from monitor import __version__
from monitor.core.errors import ConfigError
from monitor.core.settings import Settings, format_duration, parse_duration

COMMANDS = {
    "check": "one full discovery and evaluation, printed; exit 0 ok, 1 critical, 2 usage or configuration error, "
             "3 incomplete or failed (verdict unknown)",
    "preflight": "migration readiness: what will cut traffic if the v1 -> v2 cutover goes on",
    "run": "the daemon: checks rules every --interval and serves /metrics, /healthz, /readyz on --listen",
    "demo": "the whole monitor against an embedded simulated AWS account mid-migration",
}


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error on one line (exit 2), as docs/reference.md promises."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n")


def _choice(*allowed: str) -> Callable[[str], str]:
    def convert(value: str) -> str:
        if value not in allowed:
            raise ValueError(f"{value!r} is not one of {', '.join(allowed)}")
        return value

    return convert


def _duration(value: str) -> float:
    seconds = parse_duration(value)
    if seconds <= 0:
        raise ValueError(f"{value!r} must be longer than zero")
    return seconds


def _duration_or_off(value: str) -> float:
    """A duration, or 0 (`0`, `0s`) for off."""
    if value.strip() == "0":
        return 0.0
    return parse_duration(value)


def without_negative_values(argv: Sequence[str]) -> list[str]:
    """`--interval -5s` as `--interval=-5s`: argparse takes a value that starts with '-' (and is not a
    bare number) for a flag, and would say "expected one argument" instead of what is wrong with it."""
    valued = {flag for flag, (convert, _, _) in OPTIONS.items() if convert is not _boolean}
    out: list[str] = []
    pending: str | None = None
    for arg in argv:
        if pending is not None and arg.startswith("-") and arg[1:2].isdigit():
            out[-1] = f"{pending}={arg}"
        else:
            out.append(arg)
        pending = arg if arg in valued else None
    return out


def _count(minimum: int) -> Callable[[str], int]:
    def convert(value: str) -> int:
        if not value.strip().isdigit() or int(value) < minimum:
            raise ValueError(f"{value!r} is not a whole number of at least {minimum}")
        return int(value)

    return convert


def _boolean(value: str) -> bool:
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("", "0", "false", "no", "off"):
        return False
    raise ValueError(f"{value!r} is not true or false")


def _number(low: float, high: float, what: str, example: str, unit: str = "") -> Callable[[str], float]:
    """A parser of a number between `low` and `high`, saying what it is in its messages."""
    def parse(value: str) -> float:
        try:
            number = float(value)
        except ValueError:
            raise ValueError(f"{value!r} is not {what}, e.g. {example}") from None
        if not low <= number <= high:
            raise ValueError(f"{value!r} must be between {low:g} and {high:g}{unit}")
        return number
    return parse


_speed = _number(0.1, 100, "a number", "1 or 5")
_rate = _number(0.1, 1000, "a number of requests a second", "10 or 2.5", " requests a second")


def _listen(value: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{value!r} is not host:port, e.g. 0.0.0.0:9917")
    return value


# flag -> (converter, default text, help). Defaults are given as text so that flags, environment
# twins and defaults all pass through the same converter and fail with the same message.
OPTIONS: dict[str, tuple[Callable[[str], Any], str | None, str]] = {
    "--cluster-name": (str, None, "EKS cluster name, as in kubernetes.io/cluster/<name> (required)"),
    "--region": (str, None, "AWS region (default: from the AWS configuration)"),
    "--kubernetes": (_choice("auto", "on", "off"), "auto", "use the Kubernetes API: auto, on, off"),
    "--interval": (_duration, "15s", "how often rules are checked, e.g. 15s, 5m"),
    "--topology-interval": (_duration, "5m", "how often ALBs, targets and ENIs are re-discovered in full"),
    "--cycle-timeout": (_duration, None, "a rule check still running after this is abandoned: its result is "
                                         "unknown and the next one starts on time (default: three intervals, "
                                         "at least 10s)"),
    "--health-sweep": (_duration_or_off, "5m", "read every target group's health (the ELB's own word, beside the "
                                               "verdict) at least this often, paced with discovery; 0: no sweep, only "
                                               "reads a verdict change asks for"),
    "--discovery-rate": (_rate, "10", "requests a second discovery may send per API family (ELB describes, EC2 "
                                      "describes); halved on throttling, then back; the rule check is not held to it"),
    "--mode": (_choice("observe", "enforce"), "observe",
               "observe never writes to AWS; enforce restores lost rules from the ALB's own security groups "
               "(never CIDR or prefix-list rules)"),
    "--grace": (_duration, "60s", "how long a path stays uncovered before it is restored"),
    "--listen": (_listen, "0.0.0.0:9917", "address of the HTTP server (/metrics, /healthz, /readyz)"),
    "--state-file": (str, None, "where remembered rules survive restarts (without it, with Kubernetes: a ConfigMap)"),
    "--max-restores-per-cycle": (_count(1), "5", "enforce: at most this many restores (and clean-ups) a cycle"),
    "--max-restores-per-hour": (_count(1), "20", "enforce: at most this many restore writes in any hour"),
    "--fight-threshold": (_count(2), "3", "revocations of one rule within --fight-window that stop restoring it"),
    "--fight-window": (_duration, "1h", "window of the fight-loop detector"),
    "--restore-backoff": (_duration, "60s", "wait after a failed restore; doubles with each failure"),
    "--restore-backoff-max": (_duration, "30m", "longest wait between failed restores of one rule"),
    "--cleanup-grace": (_duration, "5m", "how long a rule we created stays orphaned before we revoke it"),
    "--events-queue": (str, None, "SQS queue URL fed with CloudTrail events by EventBridge: check at once on an "
                                  "event and say who cut a path (check/preflight: see that it can be read)"),
    "--v2-controller-role-arn": (str, None, "the v2 controller's IAM role, to attribute its calls when Kubernetes "
                                            "does not show it"),
    "--v1-controller-role-arn": (str, None, "the v1 controller's IAM role, likewise"),
    "--log-format": (_choice("json", "console", "auto"), "auto", "json, console, or auto (console on a terminal)"),
    "--output": (_choice("table", "json"), "table", "check/preflight/demo output: table (demo: a live view) or json (demo: JSON lines)"),
    "--demo-after": (_choice("exit", "serve"), "exit", "demo: after the story, exit, or keep serving /metrics until Ctrl-C"),
    "--demo-speed": (_speed, "1", "demo: play the story's timeline this many times faster"),
    "--demo": (_boolean, None, "check, preflight or run against the embedded demo account (simulated AWS "
                               "and Kubernetes), no AWS account needed; implies --cluster-name demo-eks"),
}

# Flags that only mean something to some commands; the others do not accept them (exit 2, naming the
# flag and the command). `run` prints no report (--output); the demo plays in its own region, AWS
# only, and logs only errors in the form its view needs (--region, --kubernetes, --log-format).
# An environment twin of such a flag is ignored by the commands it means nothing to: one environment
# (a Deployment's) serves every command run in it. Its value must still parse.
_DAEMON = {"run", "demo"}
_OBSERVE = {"check", "preflight", "run"}
ONLY: dict[str, set[str]] = {
    "--region": _OBSERVE, "--kubernetes": _OBSERVE, "--output": {"check", "preflight", "demo"},
    "--interval": _DAEMON, "--topology-interval": _DAEMON, "--discovery-rate": {"run"}, "--cycle-timeout": _DAEMON,
    "--health-sweep": _DAEMON,
    "--mode": _DAEMON, "--grace": _DAEMON, "--listen": _DAEMON, "--state-file": {"run"}, "--log-format": {"run"},
    "--max-restores-per-cycle": {"run"}, "--max-restores-per-hour": {"run"}, "--fight-threshold": {"run"},
    "--fight-window": {"run"}, "--restore-backoff": {"run"}, "--restore-backoff-max": {"run"},
    "--cleanup-grace": {"run"}, "--demo-after": {"demo"}, "--demo-speed": {"demo"},
    "--demo": _OBSERVE, "--events-queue": _OBSERVE, "--v2-controller-role-arn": {"run"},
    "--v1-controller-role-arn": {"run"},
}

# ALBSG_* variables that are not a flag's twin but are read (monitor.kube.identity: the pod's namespace).
OTHER_VARIABLES = ("ALBSG_NAMESPACE",)

# Defaults a command has of its own, given as text like OPTIONS'; a flag or its twin still wins.
# The demo checks every second so that its story (events 5-10 seconds apart) shows each detection,
# and in enforce mode restores after a few seconds, within the story's 40 s.
COMMAND_DEFAULTS: dict[str, dict[str, str]] = {
    "demo": {"--interval": "1s", "--grace": "3s"},
}


# The shortest values a command accepts. The daemon against AWS: each check costs API calls shared
# with the controllers (per account and region), and below a second cycles only overrun. A full
# discovery costs about one request per target group and, paced by --discovery-rate, takes minutes
# on a large cluster; a new or deleted ALB, or one whose security groups changed, is read at the next
# check anyway, so re-discovering everything more often than every minute spends that shared budget
# on little. The demo's account is local and its story is played faster in tests.
MINIMUMS: dict[str, dict[str, float]] = {
    "run": {"--interval": 1.0, "--topology-interval": 60.0, "--cycle-timeout": 1.0},
    "demo": {"--interval": 0.1, "--topology-interval": 1.0, "--cycle-timeout": 1.0},
}


def env_name(flag: str) -> str:
    return "ALBSG_" + flag.lstrip("-").replace("-", "_").upper()


def unknown_variables(environ: Mapping[str, str]) -> str | None:
    """One warning line naming every ALBSG_* variable the monitor does not read, with the likely
    intended name for a near miss (`ALBSG_INTERVALL`); None when there is none."""
    known = {env_name(flag) for flag in OPTIONS} | set(OTHER_VARIABLES)
    unknown = sorted(name for name in environ if name.startswith("ALBSG_") and name not in known)
    if not unknown:
        return None
    stems = {name.removeprefix("ALBSG_"): name for name in known}

    def named(name: str) -> str:
        # Matched without the shared prefix, which would make every name look close to every other.
        close = difflib.get_close_matches(name.removeprefix("ALBSG_"), stems, n=1)
        return f"{name} (did you mean {stems[close[0]]}?)" if close else name

    return (f"alb-sg-monitor: warning: unknown environment variable{'s' if len(unknown) > 1 else ''} "
            f"ignored: {', '.join(named(name) for name in unknown)}")


def parse(parser: argparse.ArgumentParser, argv: Sequence[str]) -> argparse.Namespace:
    """The parsed command line; a known flag the command does not take exits 2 saying so by name."""
    args, extra = parser.parse_known_args(without_negative_values(argv))
    for arg in extra if args.command else ():
        flag = arg.split("=", 1)[0]
        if flag in OPTIONS and args.command not in ONLY.get(flag, {args.command}):
            takes = sorted(ONLY[flag], key=list(COMMANDS).index)
            parser.exit(2, f"alb-sg-monitor {args.command}: error: {flag} does not apply to {args.command} "
                           f"(only to {', '.join(takes[:-1])}{' and ' if len(takes) > 1 else ''}{takes[-1]})\n")
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="alb-sg-monitor", description=(
        "Watches that every ALB of an EKS cluster can still reach its targets through the node and "
        "pod security groups. Every flag has an environment twin ALBSG_<FLAG>, e.g. ALBSG_CLUSTER_NAME."))
    parser.add_argument("--version", action="version", version=f"alb-sg-monitor {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, help_text in COMMANDS.items():
        command = sub.add_parser(name, help=help_text, description=help_text)
        for flag, (convert, default, help_text) in OPTIONS.items():
            if name not in ONLY.get(flag, {name}):
                continue
            default = COMMAND_DEFAULTS.get(name, {}).get(flag, default)
            least = MINIMUMS.get(name, {}).get(flag)
            shown = (f" [env {env_name(flag)}" + (f", default {default}" if default else "")
                     + (f", at least {format_duration(least)}" if least is not None else "") + "]")
            if convert is _boolean:
                command.add_argument(flag, action="store_const", const="true", default=None, help=help_text + shown)
            else:
                command.add_argument(flag, default=None, help=help_text + shown)
    return parser


def settings_from(args: argparse.Namespace, require_cluster: bool = True,
                  defaults: dict[str, str] | None = None, minimums: dict[str, float] | None = None) -> Settings:
    """Flags, then their ALBSG_* twins, then `defaults` (a command's own), then OPTIONS' defaults;
    a duration below its command's minimum (`minimums`, by flag) is refused."""
    values: dict[str, Any] = {}
    for flag, (convert, default, _) in OPTIONS.items():
        default = (defaults or {}).get(flag, default)
        dest = flag.lstrip("-").replace("-", "_")
        raw = getattr(args, dest, None)
        source = flag
        if raw is None and env_name(flag) in os.environ:
            raw, source = os.environ[env_name(flag)], f"{flag} (from {env_name(flag)})"
        if raw is None:
            raw = default
        if raw is None:
            values[dest] = None
            continue
        try:
            values[dest] = convert(raw)
        except ValueError as exc:
            raise ConfigError(f"{source}: {exc}") from None
        least = (minimums or {}).get(flag)
        if least is not None and values[dest] < least:
            command = getattr(args, "command", None) or "this command"
            raise ConfigError(f"{source}: {raw.strip()!r} is too short for {command}: at least {format_duration(least)}")
    if values.get("demo") and not values["cluster_name"]:
        values["cluster_name"] = "demo-eks"
    if not values["cluster_name"]:
        if require_cluster:
            raise ConfigError(f"--cluster-name: required; give the EKS cluster name (or set {env_name('--cluster-name')})")
        values["cluster_name"] = ""
    return Settings(**values)


def run_command(command: str, settings: Settings) -> int:
    """Hands a parsed command on: the demo to its story, the rest to the composition root. Imported
    here, not at the top, so `--help` and a flag error never load the SDKs."""
    if command == "demo" or settings.demo:
        from monitor import demo

        if not demo.extra_installed():
            print(demo.MISSING_EXTRA, file=sys.stderr)
            return 2
    if settings.demo and command != "demo":
        from monitor.demo import account

        account.start(settings.cluster_name)
    from monitor.surface import main as root

    if command in ("check", "preflight"):
        return root.one_shot(command, root.check if command == "check" else root.preflight, settings)
    if command == "run":
        return root.run(settings)
    if command == "demo":
        from monitor.demo.story import run_demo

        return run_demo(settings)
    raise AssertionError(f"unknown command {command}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parse(parser, sys.argv[1:] if argv is None else argv)
    if not args.command:
        parser.print_help(sys.stderr)
        return 2
    warning = unknown_variables(os.environ)
    if warning:
        print(warning, file=sys.stderr)
    try:
        settings = settings_from(args, require_cluster=args.command != "demo",
                                 defaults=COMMAND_DEFAULTS.get(args.command), minimums=MINIMUMS.get(args.command))
        return run_command(args.command, settings)
    except ConfigError as exc:
        print(f"alb-sg-monitor: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


__all__ = ["main", "build_parser", "settings_from"]
