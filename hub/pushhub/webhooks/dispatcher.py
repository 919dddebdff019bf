"""Turning the event log into webhook deliveries, and sending them.

Intake (the outbox): the dispatcher keeps a durable cursor per channel over the log. Before the
first publish to a channel that some endpoint matches, it records the channel's current top as the
cursor; after each append, before the publisher is answered, it reads the log from the cursor,
makes one delivery per matching enabled endpoint and moves the cursor, in one store transaction. At
start it catches up from every stored cursor, so an event appended just before a crash still gets
its deliveries; a background task retries a channel whose intake failed.

Sending: one worker per enabled endpoint takes that endpoint's due deliveries, within its
concurrency cap, rate limit and circuit breaker, and sends each in its own task. Workers share
nothing but the HTTP connection pool (which has no global cap), so a slow or failing endpoint never
delays another. An ordered endpoint gets one delivery at a time, oldest first, each retried until
it succeeds or fails for good before the next is sent.

With a store several processes share (Redis), each dispatcher also follows the others: it reloads
endpoints when their version moves, a cursor move or endpoint change it lost to another process
makes it read again (the store refuses the outdated write), it claims each delivery before sending
it, and its workers look at the store at least every :data:`SHARED_POLL` seconds, since deliveries
other processes add or give up do not wake them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import httpx

from .. import __version__
from ..config import Settings
from ..cursor import Position
from ..errors import BadRequest
from ..events import Event, format_time
from ..hub import Hub
from ..retention import parse_duration
from . import message, signing
from .clock import Clock, SystemClock
from .endpoints import Endpoint
from .errors import Blocked, NotFound
from .ratelimit import TokenBucket
from .retry import (
    SVIX_SCHEDULE,
    Breaker,
    BreakerState,
    Outcome,
    classify,
    next_delay,
    parse_retry_after,
    parse_schedule,
    should_disable,
)
from .ssrf import GuardedTransport, IPNetwork, check_url, parse_networks
from .store import FAILED, SUCCEEDED, Attempt, Delivery, DeliveryStore, new_delivery_id

logger = logging.getLogger("pushhub.webhooks")

PAGE = 500
PRUNE_INTERVAL = 3600.0
INTAKE_RETRY = 1.0
STEP_RETRY = 1.0
SHARED_POLL = 1.0  # with a store other processes share: how often to look at what they changed
CATCH_UP_ROUNDS = 10  # ... and every this many looks, take in every channel's events (see _follow_others)


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


def config_from_settings(settings: Settings) -> DispatchConfig:
    """The dispatcher's configuration from the hub's settings; bad values raise :class:`BadRequest`."""
    if not 0 <= settings.webhook_jitter < 1:
        raise BadRequest("webhook_jitter must be a fraction from 0 to below 1")
    if settings.webhook_timeout <= 0 or settings.webhook_max_concurrency < 1 or settings.webhook_breaker_threshold < 1:
        raise BadRequest("webhook_timeout, webhook_max_concurrency and webhook_breaker_threshold must be positive")
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
    )


def event_seconds(event_time: str) -> float:
    return datetime.fromisoformat(event_time.replace("Z", "+00:00")).timestamp()


class Worker:
    """Sends one endpoint's deliveries."""

    def __init__(self, dispatcher: Dispatcher, endpoint: Endpoint) -> None:
        self.dispatcher = dispatcher
        self.endpoint = endpoint
        config = dispatcher.config
        self.breaker = Breaker(config.breaker_threshold, config.breaker_cooldown, config.breaker_max_cooldown)
        self.bucket: TokenBucket | None = None
        self.wake = asyncio.Event()
        self.inflight: dict[str, asyncio.Task[None]] = {}
        # A connection pool per endpoint: one endpoint's connections never queue behind another's.
        self.client = httpx.AsyncClient(transport=dispatcher.transport(), follow_redirects=False,
                                        timeout=httpx.Timeout(config.timeout),
                                        headers={"user-agent": config.user_agent})
        self.configure(endpoint)
        self.task = asyncio.get_running_loop().create_task(self.run())

    def configure(self, endpoint: Endpoint) -> None:
        rate = endpoint.rate_limit
        if rate is None:
            self.bucket = None
        elif self.bucket is None or self.bucket.rate != rate:
            self.bucket = TokenBucket(rate, max(1.0, rate), self.dispatcher.clock.now())
        self.endpoint = endpoint
        self.wake.set()

    @property
    def capacity(self) -> int:
        if self.endpoint.ordered:
            return 1
        return self.endpoint.max_concurrency or self.dispatcher.config.max_concurrency

    async def stop(self) -> None:
        tasks = [self.task, *self.inflight.values()]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.client.aclose()

    async def _wait(self, until: float | None) -> None:
        """Until the clock reaches ``until`` or something wakes this worker."""
        waiter = asyncio.ensure_future(self.wake.wait())
        waits: set[asyncio.Future[Any]] = {waiter}
        if until is not None:
            waits.add(asyncio.ensure_future(self.dispatcher.clock.sleep_until(until)))
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for future in waits:
                future.cancel()

    async def run(self) -> None:
        while self.endpoint.enabled:
            try:
                await self._step()
            except Exception:
                logger.exception("webhook worker of %s failed; retrying", self.endpoint.id)
                clock = self.dispatcher.clock
                await clock.sleep_until(clock.now() + STEP_RETRY)
        if self.inflight:  # disabled: finish what was started, then let the connections go
            await asyncio.wait(list(self.inflight.values()))
        await self.client.aclose()

    async def _step(self) -> None:
        """Start what may be sent now, or wait until something may."""
        store, clock = self.dispatcher.store, self.dispatcher.clock
        self.wake.clear()
        now = clock.now()
        endpoint = self.endpoint
        room = self.capacity - len(self.inflight)
        if room <= 0:
            await self._wait(None)
            return
        if not self.breaker.allows(now):
            await self._wait(self.breaker.reopen_at if self.breaker.reopen_at > now else None)
            return
        probing = self.breaker.state is BreakerState.HALF_OPEN
        due = [d for d in await store.due(endpoint.id, now, room + len(self.inflight), ordered=endpoint.ordered)
               if d.id not in self.inflight][:1 if probing else room]
        until: float | None = None
        if endpoint.ordered and due and due[0].next_at > now:
            until, due = due[0].next_at, []
        elif not due and not self.inflight:
            until = await store.next_due(endpoint.id)
        started = False
        for delivery in due:
            if self.bucket is not None:
                wait = self.bucket.take(now)
                if wait > 0:
                    until = now + wait
                    break
            if not await store.claim(delivery, now):
                continue  # another process is sending it
            self.inflight[delivery.id] = asyncio.get_running_loop().create_task(self._send(delivery))
            started = True
        if started:
            return
        if probing:
            self.breaker.cancel_probe()  # nothing went out: the next request will be the probe
        if store.shared:  # other processes add deliveries, and leases run out, without waking this one
            until = min(until, now + SHARED_POLL) if until is not None else now + SHARED_POLL
        await self._wait(until)

    async def _send(self, delivery: Delivery) -> None:
        try:
            await self.dispatcher.attempt(self, delivery)
        except Exception:
            logger.exception("delivery %s to %s failed unexpectedly", delivery.id, self.endpoint.id)
        finally:
            self.inflight.pop(delivery.id, None)
            self.wake.set()


class Dispatcher:
    def __init__(self, hub: Hub, store: DeliveryStore, config: DispatchConfig, *, clock: Clock | None = None,
                 rand: Callable[[], float] = random.random,
                 transport: Callable[[], httpx.AsyncBaseTransport] | None = None) -> None:
        """``transport`` makes the HTTP transport of each endpoint (by default a :class:`GuardedTransport`)."""
        self.hub = hub
        self.store = store
        self.config = config
        self.clock: Clock = clock or SystemClock()
        self.rand = rand
        if transport is None:
            ssl_context = httpx.create_ssl_context(trust_env=False)
            transport = lambda: GuardedTransport(config.allow, ssl_context=ssl_context)  # noqa: E731
        self.transport = transport
        self.endpoints: dict[str, Endpoint] = {}
        self.version: int | None = None  # the store's endpoints version self.endpoints reflects
        self._endpoints_lock = asyncio.Lock()
        self.workers: dict[str, Worker] = {}
        self._retired: list[Worker] = []  # disabled endpoints' workers, finishing what they started
        self.cursors: dict[str, Position] = {}
        self.dirty: set[str] = set()
        self._intake_wake = asyncio.Event()
        self._locks: dict[str, asyncio.Lock] = {}  # one intake at a time per channel
        self._tasks: list[asyncio.Task[None]] = []

    # Lifecycle --------------------------------------------------------------------------------

    async def start(self) -> None:
        self.version = await self.store.endpoints_version()
        self.endpoints = {e.id: e for e in await self.store.endpoints()}
        self.cursors = await self.store.cursors()
        self.hub.publish_listeners.append(self)
        self.dirty.update(self.cursors)
        self._intake_wake.set()
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._intake()), loop.create_task(self._prune())]
        if self.store.shared:
            self._tasks.append(loop.create_task(self._follow_others()))
        for endpoint in self.endpoints.values():
            if endpoint.enabled:
                self.workers[endpoint.id] = Worker(self, endpoint)

    async def close(self) -> None:
        with contextlib.suppress(ValueError):
            self.hub.publish_listeners.remove(self)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for worker in [*self.workers.values(), *self._retired]:
            await worker.stop()
        self.workers.clear()

    # Intake -----------------------------------------------------------------------------------

    async def before_publish(self, channel: str) -> None:
        if channel not in self.cursors:
            await self.refresh()  # an endpoint registered through another process may follow it now
        if channel in self.cursors or not any(e.matches_channel(channel) for e in self.endpoints.values()):
            return
        state = await self.hub.broker.state(channel)
        if channel in self.cursors:
            return
        position = self.cursors[channel] = Position(state.epoch, state.top)
        try:
            await self.store.track(channel, position)
        except BaseException:
            del self.cursors[channel]  # the publish fails too: nothing is appended untracked
            raise

    async def published(self, channel: str, events: list[Event]) -> None:
        """Turn the new events into deliveries before the publisher is answered: a publisher can then
        never outrun the intake far enough for retention to trim events it has not read."""
        if channel not in self.cursors:
            return
        try:
            await self._take_in(channel)
        except BaseException as exc:
            self.dirty.add(channel)  # the intake task retries
            self._intake_wake.set()
            if not isinstance(exc, Exception):
                raise
            logger.exception("could not turn channel %s's events into deliveries; retrying", channel)

    async def _intake(self) -> None:
        while True:
            await self._intake_wake.wait()
            self._intake_wake.clear()
            for channel in list(self.dirty):
                self.dirty.discard(channel)
                try:
                    await self._take_in(channel)
                except Exception:
                    logger.exception("could not turn channel %s's events into deliveries; retrying", channel)
                    self.dirty.add(channel)
            if self.dirty and not self._intake_wake.is_set():
                await asyncio.sleep(INTAKE_RETRY)
                self._intake_wake.set()

    async def _take_in(self, channel: str) -> None:
        lock = self._locks.get(channel)
        if lock is None:
            lock = self._locks[channel] = asyncio.Lock()
        async with lock:
            await self._take_in_locked(channel)

    async def _take_in_locked(self, channel: str) -> None:
        while True:
            cursor = self.cursors[channel]
            page = await self.hub.broker.history(channel, cursor.offset, PAGE)
            state = page.state
            if state.epoch != cursor.epoch:
                logger.warning("channel %s's log changed epoch: delivering from its earliest retained event", channel)
                await self._advance(channel, cursor, Position(state.epoch, state.earliest - 1), [], self.version)
                continue
            events = page.events
            if not events:
                return
            if events[0].offset > cursor.offset + 1:
                logger.warning("channel %s: events %d-%d left the log before they were dispatched", channel,
                               cursor.offset + 1, events[0].offset - 1)
            now = self.clock.now()
            version = self.version  # of the endpoints the deliveries are made for
            deliveries = [
                Delivery(new_delivery_id(), endpoint.id, channel, event.epoch, event.offset, event.id, event.type,
                         event.json, next_at=now, created_at=now)
                for event in events for endpoint in self.endpoints.values()
                if endpoint.enabled and endpoint.matches(channel, event.type)]
            if await self._advance(channel, cursor, events[-1].position, deliveries, version) and len(events) < PAGE:
                return

    async def _advance(self, channel: str, cursor: Position, position: Position, deliveries: list[Delivery],
                       version: int | None) -> bool:
        """Move the channel's cursor from ``cursor`` to ``position`` with ``deliveries``; if another
        process moved it, or changed the endpoints, first, take in their view instead (False)."""
        if not await self.store.enqueue(channel, position, deliveries, after=cursor, version=version):
            await self.refresh()
            stored = await self.store.cursor(channel)
            if stored is None:  # the store lost it (Redis flushed): follow the channel again from here
                await self.store.track(channel, cursor)
            self.cursors[channel] = stored or cursor
            return False
        self.cursors[channel] = position
        for endpoint_id in {d.endpoint_id for d in deliveries}:
            worker = self.workers.get(endpoint_id)
            if worker is not None:
                worker.wake.set()
        return True

    # Sending ----------------------------------------------------------------------------------

    async def attempt(self, worker: Worker, delivery: Delivery) -> None:
        """Send ``delivery`` once, record the attempt and decide what comes next."""
        endpoint, config, clock = worker.endpoint, self.config, self.clock
        now = clock.now()
        number = delivery.attempts + 1
        body = message.render(delivery.payload, channel=delivery.channel, cursor=f"{delivery.epoch}.{delivery.offset}",
                              delivery_id=delivery.id, endpoint_id=endpoint.id, attempt=number)
        headers = {**dict(endpoint.headers), "content-type": "application/json",
                   **signing.headers(endpoint.signature, endpoint.live_secrets(now), delivery.event_id, int(now), body)}
        status: int | None = None
        error: str | None = None
        response_text = ""
        retry_after: float | None = None
        started = time.monotonic()
        try:
            check_url(endpoint.url, https_only=config.https_only, allow=config.allow)
            async with asyncio.timeout(config.timeout), \
                    worker.client.stream("POST", endpoint.url, content=body, headers=headers) as response:
                status = response.status_code
                retry_after = parse_retry_after(response.headers.get("retry-after"), clock.now())
                received = bytearray()
                async for chunk in response.aiter_bytes():
                    received += chunk
                    if len(received) > config.response_limit:
                        break
                response_text = received[:config.response_limit].decode(errors="replace")
        except Blocked as exc:
            error = exc.message
        except (TimeoutError, httpx.TimeoutException):
            error = f"timed out after {config.timeout:g}s"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        latency_ms = (time.monotonic() - started) * 1000.0
        done = clock.now()
        outcome = classify(status)
        delivery.attempts = number
        delivery.updated_at = done
        delivery.last_status = status
        delivery.last_error = error
        if outcome is Outcome.SUCCESS:
            delivery.status = SUCCEEDED
        elif outcome is Outcome.GONE:
            delivery.status = FAILED
        else:
            delivery.tries += 1
            schedule = config.schedule if endpoint.retry_schedule is None else endpoint.retry_schedule
            delay = next_delay(delivery.tries, schedule, config.jitter, self.rand, retry_after)
            if delay is None:
                delivery.status = FAILED
            else:
                delivery.next_at = done + delay
        await self.store.finish_attempt(delivery, Attempt(delivery.id, endpoint.id, delivery.event_id, number, now,
                                                    latency_ms, status, response_text, error))
        worker.breaker.record(outcome is Outcome.SUCCESS, done)
        await self._health(endpoint.id, outcome, done)

    async def _health(self, endpoint_id: str, outcome: Outcome, now: float) -> None:
        endpoint = self.endpoints.get(endpoint_id)
        if endpoint is None:
            return
        if outcome is Outcome.GONE:
            await self.save(replace(endpoint, enabled=False, disabled_reason="the endpoint answered 410 Gone",
                               updated_at=now))
        elif outcome is Outcome.SUCCESS:
            if endpoint.failing_since is not None:
                await self.save(replace(endpoint, failing_since=None))
        elif endpoint.failing_since is None:
            await self.save(replace(endpoint, failing_since=now))
        elif should_disable(endpoint.failing_since, now, self.config.disable_after):
            await self.save(replace(endpoint, enabled=False, updated_at=now, disabled_reason=(
                f"failing without a success since {format_time(endpoint.failing_since)}")))

    # Endpoints --------------------------------------------------------------------------------

    async def save(self, endpoint: Endpoint) -> Endpoint:
        """Store ``endpoint`` and bring its worker in line (started, reconfigured or stopping)."""
        async with self._endpoints_lock:
            await self.store.save_endpoint(endpoint)
            return self._apply(endpoint)

    def _apply(self, endpoint: Endpoint) -> Endpoint:
        self.endpoints[endpoint.id] = endpoint
        worker = self.workers.get(endpoint.id)
        if worker is not None:
            worker.configure(endpoint)
            if not endpoint.enabled:
                self._retired = [w for w in self._retired if not w.task.done()]
                self._retired.append(self.workers.pop(endpoint.id))
        elif endpoint.enabled:
            self.workers[endpoint.id] = Worker(self, endpoint)
        return endpoint

    def get(self, endpoint_id: str) -> Endpoint:
        endpoint = self.endpoints.get(endpoint_id)
        if endpoint is None:
            raise NotFound(f"no endpoint {endpoint_id!r}")
        return endpoint

    async def delete(self, endpoint_id: str) -> None:
        self.get(endpoint_id)
        async with self._endpoints_lock:
            await self._forget(endpoint_id)
            await self.store.delete_endpoint(endpoint_id)

    async def _forget(self, endpoint_id: str) -> None:
        worker = self.workers.pop(endpoint_id, None)
        if worker is not None:
            await worker.stop()
        self.endpoints.pop(endpoint_id, None)

    async def refresh(self) -> None:
        """Take in the endpoint changes other processes made (nothing to do when the store is this
        process's own)."""
        if not self.store.shared or await self.store.endpoints_version() == self.version:
            return
        async with self._endpoints_lock:
            version = await self.store.endpoints_version()  # read first: a change after it is seen next time
            current = {e.id: e for e in await self.store.endpoints()}
            for endpoint_id in set(self.endpoints) - set(current):
                await self._forget(endpoint_id)
            for endpoint in current.values():
                if endpoint != self.endpoints.get(endpoint.id):
                    self._apply(endpoint)
            self.version = version

    async def _follow_others(self) -> None:
        """With a store other processes share: take in their endpoint changes and the channels they
        started following, and every :data:`CATCH_UP_ROUNDS` looks, every channel's new events. The
        process that appends events turns them into deliveries before answering; this catch-up is
        for a process that died in between (its own restart would do it too, if it comes back)."""
        rounds = 0
        while True:
            await self.clock.sleep_until(self.clock.now() + SHARED_POLL)
            rounds += 1
            try:
                await self.refresh()
                for channel, position in (await self.store.cursors()).items():
                    if channel not in self.cursors:
                        self.cursors[channel] = position
                        self.dirty.add(channel)
                if rounds % CATCH_UP_ROUNDS == 0:
                    self.dirty.update(self.cursors)
            except Exception:
                logger.exception("could not read what other hub processes changed; retrying")
            if self.dirty:
                self._intake_wake.set()

    # Replay -----------------------------------------------------------------------------------

    def _wake(self, endpoint_id: str) -> None:
        worker = self.workers.get(endpoint_id)
        if worker is not None:
            worker.wake.set()

    async def replay_delivery(self, delivery_id: str) -> Delivery:
        delivery = await self.store.delivery(delivery_id)
        if delivery is None:
            raise NotFound(f"no delivery {delivery_id!r}")
        await self.store.resend([delivery], self.clock.now())
        self._wake(delivery.endpoint_id)
        found = await self.store.delivery(delivery_id)
        assert found is not None
        return found

    async def replay_failed(self, endpoint_id: str) -> int:
        self.get(endpoint_id)
        count = 0
        while True:
            failed = await self.store.deliveries(endpoint_id=endpoint_id, status=FAILED, limit=PAGE)
            if not failed:
                break
            count += await self.store.resend(failed, self.clock.now())
        self._wake(endpoint_id)
        return count

    async def replay_events(self, endpoint_id: str, *, channels: list[str], after: Position | None = None,
                            since: float | None = None) -> int:
        """Deliver again every event of ``channels`` after ``after`` (one channel) or since ``since``."""
        endpoint = self.get(endpoint_id)
        now = self.clock.now()
        count = 0
        for channel in channels:
            state = await self.hub.broker.state(channel)
            offset = state.earliest - 1
            if after is not None and after.epoch == state.epoch:
                offset = after.offset
            while True:
                page = await self.hub.broker.history(channel, offset, PAGE)
                if not page.events:
                    break
                chosen = [e for e in page.events if endpoint.matches(channel, e.type)
                          and (since is None or event_seconds(e.time) >= since)]
                count += await self.store.resend([
                    Delivery(new_delivery_id(), endpoint.id, channel, e.epoch, e.offset, e.id, e.type, e.json,
                             next_at=now, created_at=now) for e in chosen], now)
                offset = page.events[-1].offset
        self._wake(endpoint_id)
        return count

    def replay_channels(self, endpoint: Endpoint) -> list[str]:
        """The channels whose events may concern ``endpoint``: those followed, and those it names."""
        named = [c for c in endpoint.channels if "*" not in c]
        return sorted({c for c in self.cursors if endpoint.matches_channel(c)} | set(named))

    # Retention --------------------------------------------------------------------------------

    async def _prune(self) -> None:
        while True:
            try:
                dropped = await self.store.prune(self.clock.now() - self.config.retention)
                if dropped:
                    logger.info("dropped %d webhook attempts and finished deliveries past retention", dropped)
            except Exception:
                logger.exception("could not prune webhook history")
            await self.clock.sleep_until(self.clock.now() + PRUNE_INTERVAL)

