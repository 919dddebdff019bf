"""Decimal integers in untrusted text (pure).

``str.isdigit`` accepts characters such as ``²`` that ``int`` refuses, so a header or query value
checked with it alone can still raise; :func:`is_decimal` accepts only ASCII digits. ``int`` also
refuses more than 4300 digits (Python's guard against quadratic parsing), so :func:`bounded`
compares a number with its bound before converting it.
"""

from __future__ import annotations


def is_decimal(text: str) -> bool:
    return text.isascii() and text.isdigit()


def bounded(text: str, maximum: int) -> int | None:
    """``text`` as an integer if it is ASCII digits, with any value above ``maximum`` (of any
    length) answered as ``maximum + 1``; ``None`` if it is not a decimal number."""
    if not is_decimal(text):
        return None
    digits = text.lstrip("0") or "0"
    if len(digits) > len(str(maximum)):
        return maximum + 1
    return min(int(digits), maximum + 1)
