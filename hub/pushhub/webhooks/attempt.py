"""One delivery attempt: the signed request it sends (pure), the POST, and what its reply means for
the delivery (pure): succeeded, failed for good, or pending until the next step of the schedule."""

from __future__ import annotations

import time
from collections.abc import Callable

from . import masking, message, signing
from .client import HttpClient, Reply
from .endpoints import Endpoint
from .errors import Blocked
from .retry import Outcome, classify, next_delay, parse_retry_after
from .settings import DispatchConfig
from .ssrf import check_url
from .store import FAILED, SUCCEEDED, Attempt, Delivery


class Requests:
    """Makes one endpoint's signed requests (pure): its fixed headers merged once, and masked once
    for the attempts' records (:mod:`.masking`), its keys set up once (:class:`~.signing.Signer`).
    While no secret is being rotated out, every signature masks to the same value, which is kept
    from the first attempt on."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self.fixed = {**dict(endpoint.headers), "content-type": "application/json"}
        self.shown = masking.masked(endpoint.headers, self.fixed)
        self.signer = signing.Signer(endpoint.signature)
        self.secrets = None if endpoint.old_secrets else [endpoint.secret]  # the live ones, while none expire
        self._masked: str | None = None  # the masked signature, while the secrets are fixed

    def make(self, delivery: Delivery, number: int, now: float) -> tuple[bytes, dict[str, str], dict[str, str]]:
        """The body and headers of attempt ``number`` of ``delivery``, signed at ``now``, and those
        headers as its record keeps them (secrets masked)."""
        endpoint = self.endpoint
        body = message.render(delivery.payload, channel=delivery.channel, cursor=f"{delivery.epoch}.{delivery.offset}",
                              delivery_id=delivery.id, endpoint_id=endpoint.id, attempt=number)
        signed = self.signer.headers(self.secrets or endpoint.live_secrets(now), delivery.event_id, int(now), body)
        shown = self.shown | signed
        name = self.signer.signature_header
        masked = self._masked
        if masked is None:
            masked = masking.mask_signatures(signed[name])
            if self.secrets is not None:
                self._masked = masked
        shown[name] = masked
        return body, self.fixed | signed, shown


def conclude(delivery: Delivery, reply: Reply, *, number: int, done: float, schedule: tuple[float, ...],
             jitter: float, rand: Callable[[], float]) -> Outcome:
    """Move ``delivery`` to its state after attempt ``number`` got ``reply`` at ``done``."""
    outcome = classify(reply.status)
    delivery.attempts = number
    delivery.updated_at = done
    delivery.last_status = reply.status
    delivery.last_error = reply.error
    if outcome is Outcome.SUCCESS:
        delivery.status = SUCCEEDED
    elif outcome is Outcome.GONE:
        delivery.status = FAILED
    else:
        delivery.tries += 1
        retry_after = parse_retry_after(reply.retry_after, done)
        delay = next_delay(delivery.tries, schedule, jitter, rand, retry_after)
        if delay is None:
            delivery.status = FAILED
        else:
            delivery.next_at = done + delay
    return outcome


def blocked(url: str, config: DispatchConfig) -> str | None:
    """Why no request may go to ``url`` whatever its host resolves to (scheme, literal address), or
    ``None``. The addresses a name resolves to are checked by the client when it connects."""
    try:
        check_url(url, https_only=config.https_only, allow=config.allow)
    except Blocked as exc:
        return exc.message
    return None


async def send(client: HttpClient, requests: Requests, delivery: Delivery, config: DispatchConfig,
               now: Callable[[], float], rand: Callable[[], float], refused: str | None) -> tuple[Outcome, Attempt]:
    """Send ``delivery`` once to ``requests``' endpoint (unless ``refused`` says why its URL may not be
    reached) and move it to its next state; returns the outcome and the attempt's record."""
    endpoint = requests.endpoint
    started_at = now()
    number = delivery.attempts + 1
    body, headers, shown = requests.make(delivery, number, started_at)
    started = time.monotonic()
    reply = Reply(error=refused) if refused is not None else await client.post(endpoint.url, body, headers)
    latency_ms = (time.monotonic() - started) * 1000.0
    schedule = config.schedule if endpoint.retry_schedule is None else endpoint.retry_schedule
    outcome = conclude(delivery, reply, number=number, done=now(), schedule=schedule, jitter=config.jitter, rand=rand)
    return outcome, Attempt(delivery.id, endpoint.id, delivery.event_id, number, started_at, latency_ms,
                            reply.status, reply.body, reply.error,
                            request_headers=shown)
