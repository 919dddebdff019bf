"""The outgoing webhook sender, wired together: the :class:`~.registry.Registry` of endpoints, the
:class:`~.intake.Intake` that turns appended events into deliveries, one
:class:`~.worker.Worker` per enabled endpoint sending them, :mod:`.replay` on request,
:mod:`.sync` with other processes sharing the store, and the hourly pruning of old history.

Workers share nothing, not even a connection pool, so a slow or failing endpoint never delays
another.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl
from collections import deque
from collections.abc import Callable, Sequence

from ..cursor import Position
from ..events import Event, EventDraft
from ..hub import Hub
from ..tasks import cancel_and_wait
from . import attempt, health
from .client import AiohttpClient, ClientFactory
from .clock import Clock, SystemClock
from .endpoints import Endpoint
from .intake import Intake
from .process import SenderProcess
from .recorder import Recorder
from .registry import Registry
from .replay import Replay, channels_for
from .retry import Outcome, classify
from .settings import PROCESS, DispatchConfig
from .store import Attempt, Delivery, DeliveryStore, new_delivery_id
from .sync import follow_others
from .worker import Worker

logger = logging.getLogger("pushhub.webhooks")

PRUNE_INTERVAL = 3600.0
TEST_CHANNEL = "pushhub.test"  # the channel a test send names (no event of it is in any log)


class Dispatcher:
    def __init__(self, hub: Hub, store: DeliveryStore, config: DispatchConfig, *, clock: Clock | None = None,
                 rand: Callable[[], float] = random.random, client: ClientFactory | None = None) -> None:
        """``client`` makes the HTTP client (the connection pool) of each endpoint."""
        self.hub = hub
        self.store = store
        self.config = config
        self.clock: Clock = clock or SystemClock()
        self.rand = rand
        self.process: SenderProcess | None = None
        if client is None and config.sender == PROCESS:
            self.process = SenderProcess(config)
            client = self.process.client
        elif client is None:
            ssl_context = ssl.create_default_context()
            client = lambda: AiohttpClient(  # noqa: E731
                config.allow, timeout=config.timeout, response_limit=config.response_limit,
                user_agent=config.user_agent, ssl_context=ssl_context)
        self.client = client
        self.registry = Registry(store, self._configure, self._forget)
        self.intake = Intake(hub.broker, store, self.registry, self.clock, self._wake)
        self.replay = Replay(hub.broker, store, self.registry, self.clock, self._wake)
        self.recorder = Recorder(store, self._observe)
        self.workers: dict[str, Worker] = {}
        self._retired: list[Worker] = []  # disabled endpoints' workers, finishing what they started
        self._tasks: list[asyncio.Task[None]] = []
        self._outcomes: deque[tuple[str, Outcome, float]] = deque()  # waiting for _store_health
        self._health_task: asyncio.Task[None] | None = None

    @property
    def endpoints(self) -> dict[str, Endpoint]:
        return self.registry.endpoints

    # Lifecycle --------------------------------------------------------------------------------

    async def start(self) -> None:
        if self.process is not None:
            await self.process.start()
        await self.registry.load()
        await self.intake.start()
        self.hub.publish_listeners.append(self)
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._prune())]
        if self.store.shared:
            self._tasks.append(loop.create_task(follow_others(self.store, self.registry, self.intake, self.clock)))
        for endpoint in self.endpoints.values():
            self._configure(endpoint)

    async def close(self) -> None:
        with contextlib.suppress(ValueError):
            self.hub.publish_listeners.remove(self)
        await cancel_and_wait(self._tasks)
        await self.intake.close()
        for worker in [*self.workers.values(), *self._retired]:
            await worker.stop()
        self.workers.clear()
        await self.recorder.close()
        if self._health_task is not None:
            await self._health_task
        if self.process is not None:
            await self.process.close()

    def _observe(self, attempt: Attempt) -> None:
        outcome = "error" if attempt.status is None else classify(attempt.status).value
        self.hub.stats.observer.webhook_attempt(outcome, attempt.latency_ms / 1000.0)

    # The hub's publish listener ---------------------------------------------------------------

    async def before_publish(self, channel: str) -> None:
        await self.intake.before_publish(channel)

    async def published(self, channel: str, events: list[Event]) -> None:
        await self.intake.published(channel, events)

    def ready(self, channel: str) -> bool:
        return self.intake.ready(channel)

    def settled(self, channel: str, events: list[Event]) -> bool:
        return self.intake.settled(channel, events)

    # Workers ----------------------------------------------------------------------------------

    def _configure(self, endpoint: Endpoint) -> None:
        """Start, reconfigure or retire ``endpoint``'s worker after it changed."""
        worker = self.workers.get(endpoint.id)
        if worker is not None:
            worker.configure(endpoint)
            if not endpoint.enabled:
                self._retired = [w for w in self._retired if not w.task.done()]
                self._retired.append(self.workers.pop(endpoint.id))
        elif endpoint.enabled:
            self.workers[endpoint.id] = Worker(endpoint, store=self.store, config=self.config, clock=self.clock,
                                               client=self.client(), recorder=self.recorder, rand=lambda: self.rand(),
                                               on_outcome=self._health)

    async def _forget(self, endpoint_id: str) -> None:
        worker = self.workers.pop(endpoint_id, None)
        if worker is not None:
            await worker.stop()

    def _wake(self, endpoint_id: str, fresh: Sequence[Delivery] = ()) -> None:
        worker = self.workers.get(endpoint_id)
        if worker is not None:
            worker.notify(fresh)

    def _health(self, endpoint_id: str, outcome: Outcome, now: float) -> None:
        """An attempt's outcome is stored: the endpoint changes it makes (:mod:`.health`) are stored
        one after the other, each worked out from the endpoint as the previous one left it."""
        if not self._outcomes:
            endpoint = self.endpoints.get(endpoint_id)
            if endpoint is None or health.after_attempt(endpoint, outcome, now, self.config.disable_after) is None:
                return  # the usual case: a success of a healthy endpoint changes nothing
        self._outcomes.append((endpoint_id, outcome, now))
        if self._health_task is None or self._health_task.done():
            self._health_task = asyncio.get_running_loop().create_task(self._store_health())

    async def _store_health(self) -> None:
        while self._outcomes:
            endpoint_id, outcome, now = self._outcomes.popleft()
            endpoint = self.endpoints.get(endpoint_id)
            changed = None if endpoint is None else health.after_attempt(endpoint, outcome, now,
                                                                          self.config.disable_after)
            if changed is not None:
                try:
                    await self.save(changed)
                except Exception:
                    logger.exception("could not store endpoint %s's state after an attempt", endpoint_id)

    # Endpoints --------------------------------------------------------------------------------

    async def save(self, endpoint: Endpoint) -> Endpoint:
        """Store ``endpoint`` and bring its worker in line (started, reconfigured or stopping)."""
        return await self.registry.save(endpoint)

    def get(self, endpoint_id: str) -> Endpoint:
        return self.registry.get(endpoint_id)

    async def delete(self, endpoint_id: str) -> None:
        await self.registry.delete(endpoint_id)

    async def refresh(self) -> None:
        """Take in the endpoint changes other processes made."""
        await self.registry.refresh()

    # Replay -----------------------------------------------------------------------------------

    async def test_send(self, endpoint_id: str, draft: EventDraft) -> Attempt:
        """Send ``draft`` to the endpoint once, signed like any delivery but outside every channel,
        on a connection of its own, and record nothing: what the endpoint answered comes back."""
        endpoint = self.get(endpoint_id)
        now = self.clock.now()
        probe = Delivery(new_delivery_id(), endpoint.id, TEST_CHANNEL, "test", 0, draft.id, draft.type,
                         draft.stored(), now, now)
        client = self.client()
        try:
            _, record = await attempt.send(client, attempt.Requests(endpoint), probe, self.config, self.clock.now,
                                           self.rand, attempt.blocked(endpoint.url, self.config))
        finally:
            await client.close()
        return record

    async def replay_delivery(self, delivery_id: str) -> Delivery:
        return await self.replay.delivery(delivery_id)

    async def replay_failed(self, endpoint_id: str) -> int:
        return await self.replay.failed(endpoint_id)

    async def replay_events(self, endpoint_id: str, *, channels: list[str], after: Position | None = None,
                            since: float | None = None) -> int:
        return await self.replay.events(endpoint_id, channels=channels, after=after, since=since)

    def replay_channels(self, endpoint: Endpoint) -> list[str]:
        return channels_for(endpoint, self.intake.cursors)

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
