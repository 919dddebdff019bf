"""One endpoint's sender: takes its due deliveries, within its concurrency cap, rate limit and
circuit breaker, and sends each in a task of its own. An ordered endpoint gets one delivery at a
time, oldest first, each retried until it succeeds or fails for good before the next is sent.

With a store other processes share, the worker claims each delivery before sending it, and looks at
the store at least every :data:`SHARED_POLL` seconds, since deliveries other processes add or give
up do not wake it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from . import attempt
from .client import HttpClient
from .clock import Clock
from .endpoints import Endpoint
from .ratelimit import TokenBucket
from .recorder import Recorder
from .retry import Breaker, BreakerState, Outcome
from .settings import DispatchConfig
from .store import Delivery, DeliveryStore

logger = logging.getLogger("pushhub.webhooks")

STEP_RETRY = 1.0
SHARED_POLL = 1.0  # with a store other processes share: how often to look at what they changed
PREFETCH = 64  # due deliveries read at a time

OnOutcome = Callable[[str, Outcome, float], Awaitable[None]]


class Worker:
    """Sends one endpoint's deliveries through its own connection pool (``client``).

    A delivery is *busy* from the moment its request starts until its outcome is stored: it is never
    taken again meanwhile. The concurrency cap counts requests in flight only, so the next request
    starts while the previous outcome waits for its batch to be written (:class:`~.recorder.Recorder`).
    Due deliveries are read from the store up to :data:`PREFETCH` at a time and sent from that list
    until it runs out.
    """

    def __init__(self, endpoint: Endpoint, *, store: DeliveryStore, config: DispatchConfig, clock: Clock,
                 client: HttpClient, recorder: Recorder, rand: Callable[[], float], on_outcome: OnOutcome) -> None:
        self.endpoint = endpoint
        self.recorder = recorder
        self.store = store
        self.config = config
        self.clock = clock
        self.client = client
        self.rand = rand
        self.on_outcome = on_outcome
        self.breaker = Breaker(config.breaker_threshold, config.breaker_cooldown, config.breaker_max_cooldown)
        self.bucket: TokenBucket | None = None
        self.blocked: str | None = None  # why the endpoint's URL may not be reached, if it may not
        self.wake = asyncio.Event()
        self.inflight: set[str] = set()  # deliveries whose request is in flight
        self.busy: dict[str, asyncio.Task[None]] = {}  # ... or whose outcome is not stored yet
        self.ready: deque[Delivery] = deque()  # due deliveries read ahead
        self.configure(endpoint)
        self.task = asyncio.get_running_loop().create_task(self.run())

    def configure(self, endpoint: Endpoint) -> None:
        rate = endpoint.rate_limit
        if rate is None:
            self.bucket = None
        elif self.bucket is None or self.bucket.rate != rate:
            self.bucket = TokenBucket(rate, max(1.0, rate), self.clock.now())
        self.endpoint = endpoint
        self.blocked = attempt.blocked(endpoint.url, self.config)
        self.ready.clear()
        self.wake.set()

    @property
    def capacity(self) -> int:
        if self.endpoint.ordered:
            return 1
        return self.endpoint.max_concurrency or self.config.max_concurrency

    async def stop(self) -> None:
        tasks = [self.task, *self.busy.values()]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.client.close()

    async def _wait(self, until: float | None) -> None:
        """Until the clock reaches ``until`` or something wakes this worker."""
        if until is None:
            await self.wake.wait()
            return
        waits: set[asyncio.Future[Any]] = {asyncio.ensure_future(self.wake.wait()),
                                           asyncio.ensure_future(self.clock.sleep_until(until))}
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
                self.ready.clear()
                await self.clock.sleep_until(self.clock.now() + STEP_RETRY)
        if self.busy:  # disabled: finish what was started, then let the connections go
            await asyncio.wait(list(self.busy.values()))
        await self.client.close()

    async def _due(self, now: float, count: int) -> list[Delivery]:
        """Up to ``count`` due deliveries that are not busy, soonest first (for an ordered endpoint:
        its oldest pending delivery, whenever it is due)."""
        if self.endpoint.ordered:
            return [d for d in await self.store.due(self.endpoint.id, now, 1, ordered=True) if d.id not in self.busy]
        if not self.ready:
            self.ready.extend(d for d in await self.store.due(self.endpoint.id, now, PREFETCH + len(self.busy))
                              if d.id not in self.busy)
        taken: list[Delivery] = []
        while self.ready and len(taken) < count:
            delivery = self.ready.popleft()
            if delivery.id not in self.busy:
                taken.append(delivery)
        return taken

    async def _step(self) -> None:
        """Start what may be sent now, or wait until something may."""
        store = self.store
        self.wake.clear()
        now = self.clock.now()
        endpoint = self.endpoint
        room = self.capacity - len(self.inflight)
        if room <= 0:
            await self._wait(None)
            return
        if not self.breaker.allows(now):
            await self._wait(self.breaker.reopen_at if self.breaker.reopen_at > now else None)
            return
        probing = self.breaker.state is BreakerState.HALF_OPEN
        due = await self._due(now, 1 if probing else room)
        until: float | None = None
        if endpoint.ordered and due and due[0].next_at > now:
            until, due = due[0].next_at, []
        elif not due and not self.busy:
            until = await store.next_due(endpoint.id)
        started = False
        for n, delivery in enumerate(due):
            if self.bucket is not None:
                wait = self.bucket.take(now)
                if wait > 0:
                    until = now + wait
                    self.ready.extendleft(reversed(due[n:]))
                    break
            if not await store.claim(delivery, now):
                continue  # another process is sending it
            self.inflight.add(delivery.id)
            self.busy[delivery.id] = asyncio.get_running_loop().create_task(self._send(delivery))
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
            outcome, record = await attempt.send(self.client, self.endpoint, delivery, self.config, self.clock.now,
                                                 self.rand, self.blocked)
            self.inflight.discard(delivery.id)  # the request is over: the next one may start
            self.wake.set()
            done = delivery.updated_at
            self.breaker.record(outcome is Outcome.SUCCESS, done)
            await self.recorder.record(delivery, record)
            await self.on_outcome(self.endpoint.id, outcome, done)
        except Exception:
            logger.exception("delivery %s to %s failed unexpectedly", delivery.id, self.endpoint.id)
        finally:
            self.inflight.discard(delivery.id)
            self.busy.pop(delivery.id, None)
            self.wake.set()
