"""Following the other hub processes that share the store (Redis).

Every :data:`SHARED_POLL` seconds: take in their endpoint changes and the channels they started
following, and every :data:`CATCH_UP_ROUNDS` looks, every channel's new events. The process that
appends events turns them into deliveries before answering; this catch-up is for a process that died
in between (its own restart would do it too, if it comes back).
"""

from __future__ import annotations

import logging

from .clock import Clock
from .intake import Intake
from .registry import Registry
from .store import DeliveryStore
from .worker import SHARED_POLL

logger = logging.getLogger("pushhub.webhooks")

CATCH_UP_ROUNDS = 10


async def follow_others(store: DeliveryStore, registry: Registry, intake: Intake, clock: Clock) -> None:
    rounds = 0
    while True:
        await clock.sleep_until(clock.now() + SHARED_POLL)
        rounds += 1
        try:
            await registry.refresh()
            for channel, position in (await store.cursors()).items():
                intake.follow(channel, position)
            if rounds % CATCH_UP_ROUNDS == 0:
                intake.catch_up(intake.cursors)
        except Exception:
            logger.exception("could not read what other hub processes changed; retrying")
