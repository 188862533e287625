"""The daemon's long-lived values kept out of the garbage collector's way.

Python's cyclic collector walks every tracked object on each full collection, and a check makes
enough short-lived objects (parsing the listings) to run several: at 5,000 ALBs that was about 40%
of a steady check's CPU, spent walking the topology and the last report, which hold no reference
cycle and are freed by reference counting when replaced. So they are frozen (`gc.freeze`, out of
the collector's walks) once a check has published, and after a full discovery everything is
unfrozen and collected once first, so that a cycle that became garbage meanwhile is reclaimed
within one --topology-interval.
"""

from __future__ import annotations

import gc


def settle() -> None:
    """After a check: what is alive now is long-lived; the collector stops walking it (cheap)."""
    gc.freeze()


def collect_and_settle() -> None:
    """After a full discovery: one full collection of everything, then settle."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()
