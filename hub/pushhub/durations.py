"""The one duration grammar of every setting and API field (pure): a number and a unit, ``ms``,
``s``, ``m``, ``h`` or ``d`` (``1500ms``, ``90s``, ``2.5m``, ``72h``, ``30d``)."""

from __future__ import annotations

import re

from .errors import BadRequest

UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION_RE = re.compile(r"([0-9]{1,12}(?:\.[0-9]{1,9})?)(ms|s|m|h|d)")
GRAMMAR = "a number and one of ms, s, m, h, d (e.g. 90s, 72h)"


def parse(text: str) -> float:
    """Seconds."""
    match = _DURATION_RE.fullmatch(text.strip())
    if match is None:
        raise BadRequest(f"invalid duration {text!r}: use {GRAMMAR}")
    return float(match.group(1)) * UNITS[match.group(2)]


def parse_seconds(value: str | float) -> float:
    """A duration, or a bare number of seconds (what a setting given in seconds always accepted)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    text = str(value).strip()
    try:
        return float(text)
    except ValueError:
        return parse(text)
