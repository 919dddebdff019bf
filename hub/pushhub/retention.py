"""How much history each channel keeps (pure).

Rules are ``PATTERN=COUNT/AGE`` strings, e.g. ``orders.*=5000/7d``; the first rule whose pattern
matches a channel applies, and the default applies to the rest. AGE is a duration (:mod:`pushhub.durations`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from . import durations
from .channels import compile_patterns
from .errors import BadRequest
from .numbers import is_decimal


class Retention(NamedTuple):
    max_events: int
    max_age: float  # seconds


DEFAULT = Retention(1000, 86400.0)


def parse_duration(text: str) -> float:
    return durations.parse(text)


def parse_retention(text: str) -> Retention:
    count, sep, age = text.partition("/")
    if not sep or not is_decimal(count.strip()) or int(count) < 1:
        raise BadRequest(f"invalid retention {text!r}: use COUNT/AGE, e.g. 1000/24h")
    return Retention(int(count), parse_duration(age))


class RetentionPolicy:
    def __init__(self, rules: Iterable[str] = (), default: Retention = DEFAULT) -> None:
        self.default = default
        self._rules = []
        for rule in rules:
            pattern, sep, value = rule.partition("=")
            if not sep:
                raise BadRequest(f"invalid retention rule {rule!r}: use PATTERN=COUNT/AGE")
            match = compile_patterns([pattern.strip()], kind="channel")
            self._rules.append((match, parse_retention(value)))
        self._cache: dict[str, Retention] = {}

    def for_channel(self, channel: str) -> Retention:
        found = self._cache.get(channel)
        if found is None:
            found = next((r for match, r in self._rules if match is None or match(channel)), self.default)
            if len(self._cache) < 100_000:
                self._cache[channel] = found
        return found
