from __future__ import annotations

import pytest

from flock.common.durations import parse_duration


@pytest.mark.parametrize("text, seconds", [
    ("20s", 20), ("1m", 60), ("500ms", 0.5), ("1h30m", 5400), ("1.5s", 1.5), ("30", 30),
    ("2h0m5s", 7205),
])
def test_durations(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "soon", "5d", "1m30", "-1s", "-3", "s"])
def test_bad_durations(text):
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)
