"""One endpoint's sender: takes its due deliveries, within its concurrency cap, rate limit and
circuit breaker, and sends them from up to its cap of sender tasks; each task, once its request is
answered, goes on with the next due delivery itself while the endpoint lets it (no task, no wake-up
per delivery). An ordered endpoint gets one delivery at a time, oldest first, each retried until it
succeeds or fails for good before the next is sent.

With a store other processes share, the worker claims each delivery before sending it, and looks at
the store at least every :data:`SHARED_POLL` seconds, since deliveries other processes add or give
up do not wake it.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from ..tasks import cancel_and_wait
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
PREFETCH = 256  # due deliveries read at a time (the busy ones among them are read again, and skipped)

OnOutcome = Callable[[str, Outcome, float], None]  # (endpoint id, outcome, when): once the attempt is stored


class Worker:
    """Sends one endpoint's deliveries through its own connection pool (``client``).

    A delivery is *busy* from the moment its request starts until its outcome is stored: it is never
    taken again meanwhile. The concurrency cap counts requests in flight only, so the next request
    starts while the previous outcome waits for its batch to be written (:class:`~.recorder.Recorder`).
    Due deliveries are read from the store up to :data:`PREFETCH` at a time and sent from that list
    until it runs out. Once a read finds fewer than it asked for, the store is not read again until
    something may have made more of them due (:attr:`settled`): new or resent deliveries
    (:meth:`notify`), an attempt that did not succeed or could not be recorded, a timer, a change of
    the endpoint. New deliveries the intake hands over while the worker is settled join the
    read-ahead as they are: the store is not read for them either.
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
        self.requests = attempt.Requests(endpoint)
        self.blocked: str | None = None  # why the endpoint's URL may not be reached, if it may not
        self.wake = asyncio.Event()
        self.inflight: set[str] = set()  # deliveries whose request is in flight
        self.busy: set[str] = set()  # ... or whose outcome is not stored yet
        self.senders: set[asyncio.Task[None]] = set()
        self.ready: deque[Delivery] = deque()  # due deliveries read ahead
        self._settled = False
        self._next_due: float | None = None  # the store's next_due, read while settled ...
        self._next_known = False  # ... and settled ever since: nothing can have become pending meanwhile
        self.configure(endpoint)
        self.task = asyncio.get_running_loop().create_task(self.run())

    @property
    def settled(self) -> bool:
        """The store holds no due delivery that is not busy or in :attr:`ready`; once this is
        unset, the store's :meth:`~.store.DeliveryStore.next_due` is read again too."""
        return self._settled

    @settled.setter
    def settled(self, settled: bool) -> None:
        self._settled = settled
        if not settled:
            self._next_known = False

    def configure(self, endpoint: Endpoint) -> None:
        rate = endpoint.rate_limit
        if rate is None:
            self.bucket = None
        elif self.bucket is None or self.bucket.rate != rate:
            self.bucket = TokenBucket(rate, max(1.0, rate), self.clock.now())
        if endpoint != self.endpoint:
            self.requests = attempt.Requests(endpoint)
        self.endpoint = endpoint
        self.blocked = attempt.blocked(endpoint.url, self.config)
        self.ready.clear()
        self.notify()

    def notify(self, fresh: Sequence[Delivery] = ()) -> None:
        """The endpoint has new or resent deliveries; ``fresh``, if given, are all of them, just stored
        as new rows and due now: while the worker knows every due delivery (:attr:`settled`), they
        are read ahead as they are, without reading the store, up to :data:`PREFETCH` in all."""
        if fresh and self.settled and not self.endpoint.ordered and len(self.ready) + len(fresh) <= PREFETCH:
            self.ready.extend(fresh)
        else:
            self.settled = False
        self.wake.set()

    @property
    def capacity(self) -> int:
        if self.endpoint.ordered:
            return 1
        return self.endpoint.max_concurrency or self.config.max_concurrency

    async def stop(self) -> None:
        await cancel_and_wait([self.task, *self.senders])
        await self.client.close()

    async def _wait(self, until: float | None) -> None:
        """Until the clock reaches ``until`` or something wakes this worker."""
        if until is None:
            await self.wake.wait()
            return
        self.settled = False  # whatever ends the wait, a retry may be due by then
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
                self.settled = False
                await self.clock.sleep_until(self.clock.now() + STEP_RETRY)
        if self.senders:  # disabled: finish what was started, then let the connections go
            await asyncio.wait(list(self.senders))
        await self.client.close()

    async def _due(self, now: float, count: int) -> list[Delivery]:
        """Up to ``count`` due deliveries that are not busy, soonest first (for an ordered endpoint:
        its oldest pending delivery, whenever it is due)."""
        if self.endpoint.ordered:
            return [d for d in await self.store.due(self.endpoint.id, now, 1, ordered=True) if d.id not in self.busy]
        if not self.ready and not self.settled:
            asked = PREFETCH + len(self.busy)
            found = await self.store.due(self.endpoint.id, now, asked)
            self.settled = len(found) < asked and not self.store.shared  # others add and release without notice
            self.ready.extend(d for d in found if d.id not in self.busy)
        return self._ready(count)

    def _ready(self, count: int) -> list[Delivery]:
        """Up to ``count`` of the deliveries read ahead that are not busy."""
        taken: list[Delivery] = []
        while self.ready and len(taken) < count:
            delivery = self.ready.popleft()
            if delivery.id not in self.busy:
                taken.append(delivery)
        return taken

    async def _take(self, now: float, count: int) -> tuple[list[Delivery], float | None]:
        """Up to ``count`` due deliveries the rate limit lets go now, each claimed and busy from here on,
        and, when that leaves fewer than were due, the time the limit lets the next one go."""
        endpoint = self.endpoint
        due = await self._due(now, count)
        if endpoint.ordered and due and due[0].next_at > now:
            return [], due[0].next_at
        return await self._claim(due, now)

    async def _claim(self, due: list[Delivery], now: float) -> tuple[list[Delivery], float | None]:
        """Those of ``due`` the rate limit lets go now, claimed (with a store other processes share)
        and busy from here on, and the time the limit lets the next one go if it held some back."""
        taken: list[Delivery] = []
        for n, delivery in enumerate(due):
            if self.bucket is not None:
                wait = self.bucket.take(now)
                if wait > 0:
                    self.ready.extendleft(reversed(due[n:]))
                    return taken, now + wait
            if not self.store.shared or await self.store.claim(delivery, now):  # False: another process sends it
                self.inflight.add(delivery.id)
                self.busy.add(delivery.id)
                taken.append(delivery)
        return taken, None

    async def _step(self) -> None:
        """Start what may be sent now, or wait until something may."""
        self.wake.clear()
        now = self.clock.now()
        room = self.capacity - len(self.inflight)
        if room <= 0:
            await self._wait(None)
            return
        if not self.breaker.allows(now):
            await self._wait(self.breaker.reopen_at if self.breaker.reopen_at > now else None)
            return
        probing = self.breaker.state is BreakerState.HALF_OPEN
        taken, until = await self._take(now, 1 if probing else room)
        if taken:
            loop = asyncio.get_running_loop()
            for delivery in taken:
                sender = loop.create_task(self._send(delivery))
                self.senders.add(sender)
                sender.add_done_callback(self.senders.discard)
            return
        if probing:
            self.breaker.cancel_probe()  # nothing went out: the next request will be the probe
        if until is None and not self.busy:
            until = await self._next()
        if self.store.shared:  # other processes add deliveries, and leases run out, without waking this one
            until = min(until, now + SHARED_POLL) if until is not None else now + SHARED_POLL
        await self._wait(until)

    async def _next(self) -> float | None:
        """When the endpoint's next pending delivery is due (read from the store once while settled:
        a delivery that succeeds moves it later, if at all, and anything else unsets :attr:`settled`)."""
        if not self._next_known:
            self._next_due = await self.store.next_due(self.endpoint.id)
            self._next_known = self.settled
        return self._next_due

    async def _send(self, delivery: Delivery) -> None:
        """Send ``delivery``; then, while the breaker is closed, there is room and deliveries read ahead
        are left, the next of them, and so on; the rest (reading the store, waits, probes) is left to
        :meth:`_step`."""
        next_one: Delivery | None = delivery
        try:
            while next_one is not None:
                await self._attempt(next_one)
                next_one = None
                if (self.ready and self.endpoint.enabled and self.breaker.state is BreakerState.CLOSED
                        and len(self.inflight) < self.capacity):  # read ahead (never for an ordered endpoint)
                    taken, _ = await self._claim(self._ready(1), self.clock.now())
                    next_one = taken[0] if taken else None
        finally:
            self.wake.set()

    async def _attempt(self, delivery: Delivery) -> None:
        recorded = False
        try:
            outcome, record = await attempt.send(self.client, self.requests, delivery, self.config, self.clock.now,
                                                 self.rand, self.blocked)
            self.inflight.discard(delivery.id)  # the request is over: the next one may start
            done = delivery.updated_at
            self.breaker.record(outcome is Outcome.SUCCESS, done)
            self.recorder.add(delivery, record, lambda stored, ok: self._recorded(stored, ok, outcome, done))
            recorded = True
        except Exception:
            logger.exception("delivery %s to %s failed unexpectedly", delivery.id, self.endpoint.id)
        finally:
            self.inflight.discard(delivery.id)
            if not recorded:
                self._recorded(delivery, False)

    def _recorded(self, delivery: Delivery, stored: bool, outcome: Outcome | None = None, done: float = 0.0) -> None:
        """``delivery``'s attempt is stored (or, not ``stored``, could not be: the delivery stays as the
        store has it, due again)."""
        self.busy.discard(delivery.id)
        if not stored or outcome is not Outcome.SUCCESS:
            self.settled = False  # pending again, maybe due already
        self.wake.set()
        if stored and outcome is not None:
            self.on_outcome(self.endpoint.id, outcome, done)
