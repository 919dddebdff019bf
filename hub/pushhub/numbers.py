"""Decimal integers in untrusted text (pure).

``str.isdigit`` accepts characters such as ``²`` that ``int`` refuses, so a header or query value
checked with it alone can still raise; :func:`is_decimal` accepts only ASCII digits.
"""

from __future__ import annotations


def is_decimal(text: str) -> bool:
    return text.isascii() and text.isdigit()
