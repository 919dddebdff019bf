"""Channel names and the patterns that select channels and event types (pure)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from .errors import BadChannel, BadRequest

CHANNEL_MAX_LENGTH = 128
CHANNEL_CHARSET = "A-Z a-z 0-9 _ - . :"
_CHANNEL_RE = re.compile(r"[A-Za-z0-9_\-.:]{1,%d}" % CHANNEL_MAX_LENGTH)
_PATTERN_RE = re.compile(r"[A-Za-z0-9_\-.:*]{1,%d}" % CHANNEL_MAX_LENGTH)

TYPE_MAX_LENGTH = 128
_TYPE_RE = re.compile(r"[A-Za-z0-9_\-.:/]{1,%d}" % TYPE_MAX_LENGTH)
_TYPE_PATTERN_RE = re.compile(r"[A-Za-z0-9_\-.:/*]{1,%d}" % TYPE_MAX_LENGTH)


def validate_channel(name: str) -> str:
    """Return ``name`` if it is a valid channel name, else raise :class:`BadChannel`."""
    if not isinstance(name, str) or not _CHANNEL_RE.fullmatch(name):
        raise BadChannel(
            f"invalid channel name {name!r}: use 1-{CHANNEL_MAX_LENGTH} characters from {CHANNEL_CHARSET}"
        )
    return name


def validate_type(name: str) -> str:
    if not isinstance(name, str) or not _TYPE_RE.fullmatch(name):
        raise BadRequest(
            f"invalid event type {name!r}: use 1-{TYPE_MAX_LENGTH} characters from A-Z a-z 0-9 _ - . : /"
        )
    return name


def _glob(pattern: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")))


def compile_patterns(patterns: Iterable[str], *, kind: str = "type") -> Callable[[str], bool] | None:
    """Compile glob patterns (``*`` matches any run of characters) into one predicate.

    Returns ``None`` when no pattern is given, meaning "match everything", so the hot path can skip
    the call entirely.
    """
    checker = _TYPE_PATTERN_RE if kind == "type" else _PATTERN_RE
    compiled: list[str] = []
    for pattern in patterns:
        if not isinstance(pattern, str) or not checker.fullmatch(pattern):
            raise BadRequest(f"invalid {kind} pattern {pattern!r}")
        if pattern == "*":
            return None
        compiled.append(_glob(pattern).pattern)
    if not compiled:
        return None
    regex = re.compile("|".join(f"(?:{p})" for p in compiled))
    return lambda value: regex.fullmatch(value) is not None
