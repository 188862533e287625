"""Markdown tables of the docs and bench/results.md, read as the tests compare them."""

from __future__ import annotations

import re


def _rows(text: str, heading: str) -> list[list[str]]:
    """The rows (cells, stripped), header first, of the first Markdown table after `heading`."""
    section = text[text.index(heading):]
    rows = []
    for line in section.splitlines()[1:]:
        if line.startswith("|"):
            cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
            if not set("".join(cells)) <= set("-: "):
                rows.append(cells)
        elif rows:
            break
    return rows


def table(text: str, heading: str) -> list[list[str]]:
    """The rows (cells, stripped) of the first Markdown table after `heading`, without its header."""
    return _rows(text, heading)[1:]


def named_rows(text: str, heading: str) -> list[dict[str, str]]:
    """The rows of the first Markdown table after `heading`, each by its column names."""
    header, *rows = _rows(text, heading)
    return [dict(zip(header, row)) for row in rows]
