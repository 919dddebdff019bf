"""The optional features and the extras that install them (``pip install 'pushhub[redis]'``).

The core hub (SQLite or memory log, HS256 tokens) needs none of them; a feature whose extra is
missing fails where it is configured, with one line that names the extra, instead of a traceback
at import time.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from .errors import MissingExtra

# extra -> the top-level modules it installs
EXTRAS = {
    "redis": ("redis",),
    "jwt-rsa": ("cryptography",),
}


def missing_message(extra: str, feature: str) -> str:
    return f"{feature} needs the {extra!r} extra: pip install 'pushhub[{extra}]'"


@contextmanager
def needs(extra: str, feature: str) -> Iterator[None]:
    """Imports inside this block that fail for want of ``extra``'s modules raise :class:`MissingExtra`."""
    try:
        yield
    except ImportError as exc:
        if (exc.name or "").partition(".")[0] not in EXTRAS[extra]:
            raise
        raise MissingExtra(missing_message(extra, feature)) from exc
