"""What an attempt's outcome does to its endpoint (pure): 410 Gone disables it, a success clears its
failing streak, and an endpoint failing without a success for ``disable_after`` seconds is disabled."""

from __future__ import annotations

from dataclasses import replace

from ..events import format_time
from .endpoints import Endpoint
from .retry import Outcome, should_disable


def after_attempt(endpoint: Endpoint, outcome: Outcome, now: float, disable_after: float) -> Endpoint | None:
    """The endpoint as it should be stored after an attempt with ``outcome``, or ``None`` if unchanged."""
    if outcome is Outcome.GONE:
        return replace(endpoint, enabled=False, disabled_reason="the endpoint answered 410 Gone", updated_at=now)
    if outcome is Outcome.SUCCESS:
        return replace(endpoint, failing_since=None) if endpoint.failing_since is not None else None
    if endpoint.failing_since is None:
        return replace(endpoint, failing_since=now)
    if should_disable(endpoint.failing_since, now, disable_after):
        return replace(endpoint, enabled=False, updated_at=now, disabled_reason=(
            f"failing without a success since {format_time(endpoint.failing_since)}"))
    return None
