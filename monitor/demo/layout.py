"""Fitting the demo's text to a width: names shortened in the middle, columns dropped, lines wrapped or cut."""

from __future__ import annotations

import os
import shutil
import sys
import textwrap
from collections.abc import Sequence

PIPED_WIDTH = 100  # piped with no width known: what a log viewer or a wide terminal shows whole
ELLIPSIS = "…"
SEP = "  "


def terminal_size() -> tuple[int, int]:
    """(columns, rows) of the terminal now: it may be resized while the demo plays."""
    size = shutil.get_terminal_size((80, 24))
    return max(20, size.columns), max(10, size.lines)


def piped_width() -> int:
    """Piped or redirected: COLUMNS if set, else the terminal the demo was started from (as in
    `demo | tee log`, where stderr is still that terminal), else PIPED_WIDTH."""
    try:
        columns = int(os.environ.get("COLUMNS", ""))
        if columns > 0:
            return max(20, columns)
    except ValueError:
        pass
    try:
        return max(20, os.get_terminal_size(sys.stderr.fileno()).columns)
    except (OSError, ValueError, AttributeError):
        return PIPED_WIDTH


def mark_for(encoding: str | None) -> str:
    """The ellipsis, or "~" where the output cannot encode it (a latin-1 locale)."""
    try:
        ELLIPSIS.encode(encoding or "utf-8")
    except (UnicodeEncodeError, LookupError):
        return "~"
    return ELLIPSIS


def shorten(text: str, width: int, mark: str = ELLIPSIS) -> str:
    """`text` in `width` columns, keeping its start and its end: ALB names differ at both ends (the
    cluster's hash or `k8s-` prefix first, the unique suffix last)."""
    if len(text) <= width:
        return text
    if width <= len(mark):
        return text[:width]
    keep = width - len(mark)
    head = (keep + 1) // 2
    return text[:head] + mark + text[len(text) - (keep - head):]


def clip(line: str, width: int, mark: str = ELLIPSIS) -> str:
    """One line cut at `width`, saying so: for output that must stay one event per line."""
    return line if len(line) <= width else line[:max(0, width - len(mark))] + mark


def wrap(text: str, width: int, indent: int = 2) -> list[str]:
    """`text` wrapped at word boundaries; continuation lines indented `indent` columns past its own
    indent. Names with hyphens (ALBs, security groups) are not split at the hyphens."""
    lead = len(text) - len(text.lstrip(" "))
    # On a very narrow screen the indent gives way, so each line still carries some text.
    lines = textwrap.wrap(text, width, subsequent_indent=" " * min(lead + indent, width // 3), break_on_hyphens=False,
                          drop_whitespace=True)
    return lines or [""]


def fit_columns(rows: Sequence[Sequence[str]], width: int, steps: Sequence[tuple[str, int, int]],
                mark: str = ELLIPSIS) -> list[str]:
    """`rows` (the first is the header) as aligned columns at most `width` wide. While the table is
    too wide, `steps` are taken in order: ("shorten", column, least width) or ("drop", column, 0),
    each only as far as needed. Columns not named in any step are never narrowed."""
    count = len(rows[0])
    widths = [max(len(row[i]) for row in rows) for i in range(count)]
    keep = list(range(count))
    for action, column, least in steps:
        over = sum(widths[i] for i in keep) + len(SEP) * (len(keep) - 1) - width
        if over <= 0:
            break
        if action == "shorten":
            widths[column] = max(least, widths[column] - over)
        elif column in keep:
            keep.remove(column)
    return [SEP.join(shorten(row[i], widths[i], mark).ljust(widths[i]) for i in keep).rstrip() for row in rows]
