"""Durations as docs/reference.md writes them."""

import pytest

from monitor.core.settings import format_duration, parse_duration


@pytest.mark.parametrize("text, seconds", [
    ("500ms", 0.5), ("15s", 15), ("5m", 300), ("1h", 3600), ("1m30s", 90), ("1.5s", 1.5),
])
def test_parse(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "15", "s", "5 m", "1d", "-1s", "15s5"])
def test_parse_rejects(text):
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize("seconds, text", [(0.5, "500ms"), (15, "15s"), (300, "5m"), (3600, "1h"), (90, "90s")])
def test_format(seconds, text):
    assert format_duration(seconds) == text
