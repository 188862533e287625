"""The demo world: a simulated AWS account (moto over HTTP) in the middle of a v1 -> v2 migration."""

from __future__ import annotations

# moto (with its server's Flask) is not a dependency of the monitor itself, only of the demo. Both
# ways of installing are named: from the package index, and from a checkout of the repository
# (where `pip install 'alb-sg-monitor[demo]'` would fetch another copy instead of adding the extra).
INSTALL_EXTRA = "pip install 'alb-sg-monitor[demo]' (from a checkout: pip install -e '.[demo]', or make install)"
MISSING_EXTRA = f"alb-sg-monitor: the demo needs the 'demo' extra: {INSTALL_EXTRA}"


def extra_installed() -> bool:
    """Whether the demo's own packages (moto's server) can be imported."""
    try:
        import moto.server  # noqa: F401
    except ImportError:
        return False
    return True
