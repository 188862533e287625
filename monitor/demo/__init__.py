"""The demo world: a simulated AWS account (moto over HTTP) in the middle of a v1 -> v2 migration."""

from __future__ import annotations

# moto (with its server's Flask) is not a dependency of the monitor itself, only of the demo.
MISSING_EXTRA = "alb-sg-monitor: the demo needs the 'demo' extra: pip install 'alb-sg-monitor[demo]'"


def extra_installed() -> bool:
    """Whether the demo's own packages (moto's server) can be imported."""
    try:
        import moto.server  # noqa: F401
    except ImportError:
        return False
    return True
