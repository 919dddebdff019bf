"""Reconnect delays: exponential backoff with jitter (pure; randomness passed in)."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Backoff:
    """The delay before reconnect attempt ``n`` (0-based) is ``initial * factor**n``, capped at
    ``maximum``, then reduced by a random fraction of at most ``jitter`` so that many clients cut off
    at once do not come back in lockstep."""

    initial: float = 0.25
    maximum: float = 10.0
    factor: float = 2.0
    jitter: float = 0.5
    random: Callable[[], float] = field(default=random.random, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.initial < 0 or self.maximum < self.initial or self.factor < 1 or not 0 <= self.jitter <= 1:
            raise ValueError("Backoff needs 0 <= initial <= maximum, factor >= 1 and 0 <= jitter <= 1")

    def delay(self, attempt: int) -> float:
        base = min(self.maximum, self.initial * self.factor ** min(attempt, 64))
        return base * (1 - self.jitter * self.random())
