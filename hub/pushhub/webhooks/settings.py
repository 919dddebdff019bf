"""The sender's configuration: one value object, made from the hub's settings."""

from __future__ import annotations

from dataclasses import dataclass

from .. import __version__
from ..config import Settings
from ..errors import BadRequest
from ..retention import parse_duration
from .retry import SVIX_SCHEDULE, parse_schedule
from .ssrf import IPNetwork, parse_networks

INLINE = "inline"
PROCESS = "process"
SENDERS = (INLINE, PROCESS)


@dataclass(frozen=True)
class DispatchConfig:
    schedule: tuple[float, ...] = SVIX_SCHEDULE
    jitter: float = 0.2
    timeout: float = 15.0
    max_concurrency: int = 4
    breaker_threshold: int = 10
    breaker_cooldown: float = 30.0
    breaker_max_cooldown: float = 600.0
    disable_after: float = 5 * 86400.0
    retention: float = 30 * 86400.0
    secret_overlap: float = 86400.0
    response_limit: int = 2048
    https_only: bool = False
    allow: tuple[IPNetwork, ...] = ()
    user_agent: str = f"pushhub/{__version__}"
    sender: str = INLINE  # where the HTTP requests are made: INLINE (this event loop) or PROCESS (a child)


def config_from_settings(settings: Settings) -> DispatchConfig:
    """The dispatcher's configuration from the hub's settings; bad values raise :class:`BadRequest`."""
    if not 0 <= settings.webhook_jitter < 1:
        raise BadRequest("webhook_jitter must be a fraction from 0 to below 1")
    if settings.webhook_timeout <= 0 or settings.webhook_max_concurrency < 1 or settings.webhook_breaker_threshold < 1:
        raise BadRequest("webhook_timeout, webhook_max_concurrency and webhook_breaker_threshold must be positive")
    if settings.webhook_sender not in SENDERS:
        raise BadRequest(f"webhook_sender must be one of {', '.join(SENDERS)}")
    return DispatchConfig(
        schedule=parse_schedule(settings.webhook_retry_schedule),
        jitter=settings.webhook_jitter,
        timeout=settings.webhook_timeout,
        max_concurrency=settings.webhook_max_concurrency,
        breaker_threshold=settings.webhook_breaker_threshold,
        breaker_cooldown=parse_duration(settings.webhook_breaker_cooldown),
        disable_after=parse_duration(settings.webhook_disable_after),
        retention=parse_duration(settings.webhook_retention),
        secret_overlap=parse_duration(settings.webhook_secret_overlap),
        https_only=settings.webhook_https_only,
        allow=tuple(parse_networks(settings.webhook_allow_networks)),
        sender=settings.webhook_sender,
    )
