"""The console's SVG pictures (pure): what they draw, and what they say of an import's event times."""
from __future__ import annotations

import xml.etree.ElementTree as ET

from producers.console import charts


def _svg(markup) -> ET.Element:
    return ET.fromstring(str(markup))  # well-formed XML: inline SVG a browser draws as written


def test_bars_are_scaled_to_the_largest_labelled_and_escaped():
    drawn = _svg(charts.bars("Errors by code", [("invalid_time", 40, "/imports/x/errors?code=invalid_time"),
                                                ("<script>", 10, None), ("none", 0, None)]))
    widths = [float(r.get("width")) for r in drawn.iter("rect")]
    assert abs(widths[0] - 4 * widths[1]) <= 2 and widths[2] == 0  # (whole units)
    text = "".join(drawn.itertext())
    assert "<script>" in text and "40" in text and "Errors by code" in text  # escaped in the markup, read as text
    assert "<script>" not in str(charts.bars("t", [("<script>", 1, None)]))
    assert drawn.get("role") == "img" and drawn.get("aria-label") == "Errors by code"


def test_a_histogram_says_when_every_event_is_at_one_instant_or_in_1970():
    one_instant = "".join(_svg(charts.histogram("Events over time", 5_000, 5_000, [0] * 39 + [12])).itertext())
    assert "every event at the same instant" in one_instant and "1970" in one_instant
    spread = "".join(_svg(charts.histogram("t", 1_709_251_200_000, 1_711_929_600_000, [3] * 40)).itertext())
    assert "2024-03-01 00:00:00 UTC" in spread and "1970" not in spread and "span 31.0 days" in spread


def test_nothing_to_draw_draws_nothing():
    assert str(charts.bars("t", [])) == "" and str(charts.histogram("t", 0, 0, [])) == ""
