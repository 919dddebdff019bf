"""Retry policy (pure): what a response means, when to try again, and when to pause an endpoint.

* 2xx is success; 410 Gone disables the endpoint; anything else (3xx included, since redirects are
  not followed), a timeout or a network error is a failure to be retried.
* The n-th retry waits ``schedule[n-1]`` seconds ± ``jitter`` (a fraction), or longer when the
  receiver asks for it with ``Retry-After`` (capped at :data:`MAX_RETRY_AFTER`: a longer wait, of
  however many digits, or a date further off, counts as the cap). After the last step of the
  schedule the delivery has failed.
* A :class:`Breaker` opens after ``threshold`` consecutive failures of an endpoint, lets one probe
  through after a cooldown (doubling up to ``max_cooldown`` while probes fail) and closes on the
  first success.
* An endpoint that has failed without a single success for ``disable_after`` seconds is disabled.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

from .. import durations
from ..errors import BadRequest
from ..numbers import bounded

SVIX_SCHEDULE = (5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)
MAX_RETRY_AFTER = 86400.0
MAX_SCHEDULE_STEPS = 50



class Outcome(enum.Enum):
    SUCCESS = "success"
    FAILURE = "failure"
    GONE = "gone"


def classify(status: int | None) -> Outcome:
    """``status`` is ``None`` when no response arrived (timeout, refused, blocked)."""
    if status is not None and 200 <= status < 300:
        return Outcome.SUCCESS
    if status == 410:
        return Outcome.GONE
    return Outcome.FAILURE


def parse_schedule(text: str) -> tuple[float, ...]:
    """``"5s,5m,30m"`` → ``(5.0, 300.0, 1800.0)``; units ms, s, m, h, d; an empty text means no retry."""
    steps = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            steps.append(durations.parse(part))
        except BadRequest as exc:
            raise BadRequest(f"invalid retry step {part!r}: use {durations.GRAMMAR}") from exc
    if len(steps) > MAX_SCHEDULE_STEPS:
        raise BadRequest(f"a retry schedule has at most {MAX_SCHEDULE_STEPS} steps")
    return tuple(steps)


def format_schedule(schedule: Sequence[float]) -> str:
    return ",".join(f"{step:g}s" for step in schedule)


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date), at most
    :data:`MAX_RETRY_AFTER`, or ``None``."""
    if not value:
        return None
    value = value.strip()
    seconds = bounded(value, int(MAX_RETRY_AFTER))
    if seconds is not None:
        return min(float(seconds), MAX_RETRY_AFTER)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return min(max(0.0, when.timestamp() - now), MAX_RETRY_AFTER)


def next_delay(tries: int, schedule: Sequence[float], jitter: float, rand: Callable[[], float],
               retry_after: float | None = None) -> float | None:
    """Seconds until the next try after ``tries`` failed tries, or ``None`` when the delivery has failed.

    ``rand`` returns a float in [0, 1); the delay is scaled by a factor in [1 - jitter, 1 + jitter).
    """
    if tries < 1 or tries > len(schedule):
        return None
    delay = schedule[tries - 1] * (1.0 + jitter * (2.0 * rand() - 1.0))
    if retry_after is not None:
        delay = max(delay, min(retry_after, MAX_RETRY_AFTER))
    return max(0.0, delay)


def should_disable(failing_since: float | None, now: float, disable_after: float) -> bool:
    return failing_since is not None and now - failing_since >= disable_after


class BreakerState(enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass
class Breaker:
    threshold: int
    cooldown: float
    max_cooldown: float
    failures: int = 0
    state: BreakerState = BreakerState.CLOSED
    reopen_at: float = 0.0
    current_cooldown: float = 0.0

    def allows(self, now: float) -> bool:
        """May a request start now? In the open state, once the cooldown is over, one probe may."""
        if self.state is BreakerState.CLOSED:
            return True
        if self.state is BreakerState.OPEN and now >= self.reopen_at:
            self.state = BreakerState.HALF_OPEN
            return True
        return False

    def record(self, success: bool, now: float) -> None:
        if success:
            self.failures = 0
            self.state = BreakerState.CLOSED
            self.current_cooldown = 0.0
            return
        self.failures += 1
        if self.state is BreakerState.HALF_OPEN:
            self._open(now, min(self.current_cooldown * 2, self.max_cooldown))
        elif self.state is BreakerState.CLOSED and self.failures >= self.threshold:
            self._open(now, self.cooldown)

    def cancel_probe(self) -> None:
        """The probe did not happen (nothing was due): the next request may probe instead."""
        if self.state is BreakerState.HALF_OPEN:
            self.state = BreakerState.OPEN

    def _open(self, now: float, cooldown: float) -> None:
        self.state = BreakerState.OPEN
        self.current_cooldown = cooldown
        self.reopen_at = now + cooldown
