"""The daemon's memory: few malloc arenas, and its long-lived values kept out of the garbage
collector's way.

glibc gives each thread that allocates at once an arena of its own, and memory freed in one is not
reused by another: the daemon's threads (the checks, the health job, the events thread, the HTTP
server) would each hold their own free memory. Two arenas (`limit_arenas`, glibc's M_ARENA_MAX,
set before the threads start) kept the resident size of a daemon watching 5,000 ALBs about 6 MiB
lower; where the C library is not glibc it does nothing.

Python's cyclic collector walks every tracked object on each full collection, and a check makes
enough short-lived objects (parsing the listings) to run several: at 5,000 ALBs that was about 40%
of a steady check's CPU, spent walking the topology and the last report, which hold no reference
cycle and are freed by reference counting when replaced. So they are frozen (`gc.freeze`, out of
the collector's walks) once a check has published; after a full discovery, and every
COLLECT_EVERY checks, everything is unfrozen and collected once first, so that a cycle that became
garbage meanwhile is reclaimed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc

COLLECT_EVERY = 60  # checks between two full collections, besides the one after each full discovery
M_ARENA_MAX = -8  # glibc's mallopt parameter
ARENAS = 2


def limit_arenas() -> bool:
    """At most ARENAS malloc arenas for the process (glibc); False where it could not be set."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(M_ARENA_MAX, ARENAS))
    except (OSError, AttributeError):
        return False


def settle() -> None:
    """After a check: what is alive now is long-lived; the collector stops walking it (cheap)."""
    gc.freeze()


def collect_and_settle() -> None:
    """After a full discovery: one full collection of everything, then settle."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()
