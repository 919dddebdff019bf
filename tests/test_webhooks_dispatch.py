"""The dispatcher in this process, against real receivers on loopback: retry schedule on a clock the
test moves, isolation, circuit breaker, ordering, SSRF at connect time, durability of the outbox."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import hashlib
import hmac
import ipaddress
import itertools
import os
import signal
import sqlite3
import ssl
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from pushhub.backends import create_backend
from pushhub.cursor import Position
from pushhub.errors import Unavailable
from pushhub.events import Event, EventDraft, format_time
from pushhub.hub import Hub
from pushhub.retention import RetentionPolicy
from pushhub.webhooks import endpoints, signing
from pushhub.webhooks import recorder as recorder_module
from pushhub.webhooks.client import AiohttpClient
from pushhub.webhooks.clock import Clock
from pushhub.webhooks.dispatcher import Dispatcher
from pushhub.webhooks.endpoints import Endpoint
from pushhub.webhooks.errors import InvalidEndpoint
from pushhub.webhooks.recorder import Recorder
from pushhub.webhooks.retry import MAX_RETRY_AFTER, SVIX_SCHEDULE
from pushhub.webhooks.settings import PROCESS, DispatchConfig
from pushhub.webhooks.ssrf import parse_networks
from pushhub.webhooks.store import (
    FAILED,
    PENDING,
    SUCCEEDED,
    Attempt,
    Delivery,
    MemoryDeliveryStore,
    SqliteDeliveryStore,
    new_delivery_id,
)
from pushhub.webhooks.worker import PREFETCH, Worker

from .utils import TIMEOUT, free_port
from .webhook_utils import FakeClock, Reply, eventually, receiver

LOOPBACK = ("127.0.0.0/8",)


@dataclass
class Harness:
    hub: Hub
    dispatcher: Dispatcher
    store: SqliteDeliveryStore

    async def add(self, url: str, **fields: Any) -> Endpoint:
        endpoint = endpoints.create({"url": url, **fields}, https_only=False, allow=self.dispatcher.config.allow,
                                    now=self.dispatcher.clock.now())
        return await self.dispatcher.save(endpoint)

    async def publish(self, channel: str, type: str = "test.event", data: Any = None) -> Event:
        (event,) = await self.hub.publish(channel, [EventDraft.from_json({"type": type, "data": data})])
        return event

    async def publish_failing(self, channel: str, data: Any) -> None:
        """Publish, the append's transaction failing (a disk error in it)."""
        def refused(db: Any, appended: Any) -> None:
            raise sqlite3.OperationalError("disk I/O error")

        self.store.database.joined.append(refused)
        try:
            with pytest.raises(Unavailable):
                await self.publish(channel, data=data)
        finally:
            self.store.database.joined.remove(refused)

    async def deliveries(self, endpoint: Endpoint) -> list[Delivery]:
        """The endpoint's deliveries, oldest first."""
        return list(reversed(await self.store.deliveries(endpoint_id=endpoint.id)))

    async def until_statuses(self, endpoint: Endpoint, *statuses: str) -> list[Delivery]:
        """Until the endpoint's deliveries, oldest first, have these statuses; returns them."""
        found: list[Delivery] = await eventually(lambda: self.deliveries(endpoint),
                                                 lambda ds: [d.status for d in ds] == list(statuses))
        return found


@contextlib.asynccontextmanager
async def dispatching(path: Path, *, clock: Clock | None = None, allow: tuple[str, ...] = LOOPBACK,
                      fsync: bool = False, **config: Any) -> AsyncIterator[Harness]:
    backend = create_backend("sqlite://" + str(path / "hub.db"), RetentionPolicy(), fsync=fsync)
    await backend.open()
    hub = Hub(backend.broker)
    await hub.start()
    store = backend.deliveries
    assert isinstance(store, SqliteDeliveryStore)
    dispatcher = Dispatcher(hub, store, DispatchConfig(allow=tuple(parse_networks(allow)), **config),
                            clock=clock, rand=lambda: 0.5)
    await dispatcher.start()
    try:
        yield Harness(hub, dispatcher, store)
    finally:
        await dispatcher.close()
        await hub.close()
        await backend.close()


async def test_delivers_signed_event(tmp_path: Path) -> None:
    async with receiver() as server, dispatching(tmp_path) as h:
        endpoint = await h.add(server.url, channels=["orders"], types=["payment.*"])
        await h.publish("orders", "refund.created", 1)
        event = await h.publish("orders", "payment.created", {"amount": 5})
        (queued,) = await h.deliveries(endpoint)  # queued before publish returned
        assert queued.event_id == event.id
        await h.publish("other", "payment.created", 3)
        (request,) = await server.wait_for(1)
        body = request.json()
        assert body["type"] == "payment.created" and body["data"] == {"amount": 5}
        assert body["metadata"] == {"event_id": event.id, "channel": "orders", "cursor": event.position.encode(),
                                    "delivery_id": queued.id,
                                    "endpoint_id": endpoint.id, "attempt": 1}
        assert request.headers["webhook-id"] == event.id
        assert request.headers["user-agent"].startswith("pushhub/")
        assert request.headers["content-type"] == "application/json"
        Webhook(endpoint.secret).verify(request.body, request.headers)
        await h.publish("orders", "payment.created", 4)
        await server.wait_for(2)
        await h.until_statuses(endpoint, SUCCEEDED, SUCCEEDED)
        assert [a.response for a in await h.store.attempts(endpoint_id=endpoint.id)] == ["ok", "ok"]  # whole


async def test_svix_schedule_runs_27_hours_then_fails(tmp_path: Path) -> None:
    clock = FakeClock()
    async with receiver(lambda n: Reply(500, body=b"x" * 5000)) as server, \
            dispatching(tmp_path, clock=clock) as h:
        endpoint = await h.add(server.url)
        start = clock.now()
        event = await h.publish("orders")
        await server.wait_for(1)
        for number, step in enumerate(SVIX_SCHEDULE, 2):
            await clock.sleeping_until(clock.now() + step)
            clock.advance(step)
            requests = await server.wait_for(number)
            assert requests[-1].json()["metadata"]["attempt"] == number  # type: ignore[index]
            assert requests[-1].headers["webhook-id"] == event.id
        assert clock.now() - start == sum(SVIX_SCHEDULE) > 27 * 3600
        await h.until_statuses(endpoint, FAILED)
        (delivery,) = await h.deliveries(endpoint)
        assert delivery.status == FAILED and delivery.attempts == 8 and delivery.last_status == 500
        attempts = list(reversed(await h.store.attempts(delivery_id=delivery.id)))
        assert [a.number for a in attempts] == list(range(1, 9))
        assert [b.at - a.at for a, b in itertools.pairwise(attempts)] == list(SVIX_SCHEDULE)
        assert all(a.status == 500 and len(a.response) == 2048 for a in attempts)
        assert (await h.store.attempts(event_id=event.id))[0].id == attempts[-1].id
        assert len(server.requests) == 8
        assert h.dispatcher.endpoints[endpoint.id].failing_since == start


async def test_jitter_spreads_retries(tmp_path: Path) -> None:
    clock = FakeClock()
    async with receiver(lambda n: Reply(503)) as server, dispatching(tmp_path, clock=clock) as h:
        h.dispatcher.rand = lambda: 0.0
        await h.add(server.url)
        await h.publish("orders")
        await server.wait_for(1)
        await clock.sleeping_until(clock.now() + 4.0)  # 5 s - 20 %


async def test_retry_after_is_honoured(tmp_path: Path) -> None:
    clock = FakeClock()
    replies = [Reply(429, {"retry-after": "120"}), Reply(200)]
    async with receiver(lambda n: replies[n]) as server, dispatching(tmp_path, clock=clock) as h:
        endpoint = await h.add(server.url)
        await h.publish("orders")
        await server.wait_for(1)
        await clock.sleeping_until(clock.now() + 120)
        clock.advance(119)
        assert len(server.requests) == 1
        clock.advance(1)
        await server.wait_for(2)
        await h.until_statuses(endpoint, SUCCEEDED)
        assert [a.status for a in await h.store.attempts(endpoint_id=endpoint.id)] == [200, 429]


async def test_a_retry_after_of_thousands_of_digits_waits_the_longest_allowed(tmp_path: Path) -> None:
    clock = FakeClock()
    replies = [Reply(429, {"retry-after": "9" * 5000}), Reply(200)]
    async with receiver(lambda n: replies[n]) as server, dispatching(tmp_path, clock=clock) as h:
        endpoint = await h.add(server.url)
        await h.publish("orders")
        await server.wait_for(1)
        await clock.sleeping_until(clock.now() + MAX_RETRY_AFTER)
        clock.advance(MAX_RETRY_AFTER)
        await server.wait_for(2)
        await h.until_statuses(endpoint, SUCCEEDED)


async def test_gone_disables_the_endpoint(tmp_path: Path) -> None:
    async with receiver(lambda n: Reply(410)) as server, dispatching(tmp_path) as h:
        endpoint = await h.add(server.url)
        await h.publish("orders")
        await server.wait_for(1)
        await eventually(lambda: not h.dispatcher.endpoints[endpoint.id].enabled)
        assert h.dispatcher.endpoints[endpoint.id].disabled_reason == "the endpoint answered 410 Gone"
        assert (await h.store.endpoint(endpoint.id)).enabled is False  # type: ignore[union-attr]
        assert [d.status for d in await h.deliveries(endpoint)] == [FAILED]
        await h.publish("orders")
        assert len(await h.deliveries(endpoint)) == 1  # a disabled endpoint gets no new deliveries


async def test_redirects_are_failures_and_not_followed(tmp_path: Path) -> None:
    clock = FakeClock()
    async with receiver(lambda n: Reply(302, {"location": "/elsewhere"})) as server, \
            dispatching(tmp_path, clock=clock) as h:
        endpoint = await h.add(server.url)
        await h.publish("orders")
        await clock.sleeping_until(clock.now() + 5)
        assert [r.path for r in server.requests] == ["/hook"]
        (delivery,) = await h.deliveries(endpoint)
        assert delivery.status == PENDING and delivery.last_status == 302 and delivery.tries == 1


async def test_timeouts_and_refused_connections_are_retried(tmp_path: Path) -> None:
    clock = FakeClock()
    refused = f"http://127.0.0.1:{free_port()}/hook"
    async with receiver(lambda n: Reply(delay=4 * TIMEOUT if n == 0 else 0)) as slow, \
            dispatching(tmp_path, clock=clock, timeout=TIMEOUT / 25) as h:
        slow_endpoint = await h.add(slow.url)
        refused_endpoint = await h.add(refused)
        await h.publish("orders")
        await clock.sleeping_until(clock.now() + 5)
        await eventually(lambda: len(clock.deadlines()) >= 3)
        (timed_out,) = await h.store.attempts(endpoint_id=slow_endpoint.id)
        assert timed_out.status is None and timed_out.error == f"timed out after {TIMEOUT / 25:g}s"
        (refusal,) = await h.store.attempts(endpoint_id=refused_endpoint.id)
        assert refusal.status is None and refusal.error is not None and "ClientConnectorError" in refusal.error
        clock.advance(5)
        await h.until_statuses(slow_endpoint, SUCCEEDED)
        assert (await h.deliveries(refused_endpoint))[0].attempts == 2


async def test_a_broken_endpoint_does_not_delay_healthy_ones(tmp_path: Path) -> None:
    hanging = Reply(delay=8 * TIMEOUT)
    async with receiver(lambda n: hanging) as slow, receiver(lambda n: Reply(500)) as failing, \
            receiver() as healthy, dispatching(tmp_path, timeout=8 * TIMEOUT) as h:
        await h.add(slow.url, max_concurrency=2)
        await h.add(failing.url)
        await h.add(f"http://127.0.0.1:{free_port()}/hook")
        good = await h.add(healthy.url)
        for n in range(30):
            await h.publish("orders", data=n)
        await healthy.wait_for(30)
        await h.until_statuses(good, *[SUCCEEDED] * 30)
        assert slow.max_active == 2  # the concurrency cap: the other 28 wait their turn
        assert slow.active == 2  # still hanging while the healthy endpoint got everything
        assert sorted(r.json()["data"] for r in healthy.requests) == list(range(30))  # type: ignore[type-var]


async def test_circuit_breaker_pauses_then_probes(tmp_path: Path) -> None:
    clock = FakeClock()
    healthy = False

    def script(n: int) -> Reply:
        return Reply(200 if healthy else 500)

    async with receiver(script) as server, dispatching(tmp_path, clock=clock, breaker_threshold=3,
                                                       breaker_cooldown=60.0) as h:
        endpoint = await h.add(server.url, max_concurrency=1, retry_schedule="1h")
        for n in range(5):
            await h.publish("orders", data=n)
        await server.wait_for(3)
        opened = clock.now()
        await clock.sleeping_until(opened + 60)  # open: waiting for the cooldown, not sending
        assert len(server.requests) == 3
        clock.advance(60)
        await server.wait_for(4)  # one probe
        await clock.sleeping_until(opened + 60 + 120)  # the probe failed: twice the cooldown
        assert len(server.requests) == 4
        healthy = True
        clock.advance(120)
        await server.wait_for(5)
        assert [r.json()["data"] for r in server.requests] == [0, 1, 2, 3, 4]
        await h.until_statuses(endpoint, *[PENDING] * 4, SUCCEEDED)
        clock.advance(3600)  # their retries are due: the breaker is closed
        await server.wait_for(9)
        await h.until_statuses(endpoint, *[SUCCEEDED] * 5)


async def test_disabled_after_failing_continuously(tmp_path: Path) -> None:
    clock = FakeClock()
    async with receiver(lambda n: Reply(500)) as server, \
            dispatching(tmp_path, clock=clock, disable_after=3600.0) as h:
        endpoint = await h.add(server.url, retry_schedule="40m,40m,40m")
        start = clock.now()
        await h.publish("orders")
        await server.wait_for(1)
        for count in (2, 3):
            await clock.sleeping_until(clock.now() + 2400)
            clock.advance(2400)
            await server.wait_for(count)
        await eventually(lambda: not h.dispatcher.endpoints[endpoint.id].enabled)
        assert h.dispatcher.endpoints[endpoint.id].disabled_reason == (
            f"failing without a success since {format_time(start)}")
        assert [d.status for d in await h.deliveries(endpoint)] == [PENDING]  # kept for when it is enabled


async def test_ordered_endpoint_waits_for_each_delivery(tmp_path: Path) -> None:
    clock = FakeClock()
    async with receiver(lambda n: Reply(500 if n == 0 else 200)) as server, \
            dispatching(tmp_path, clock=clock) as h:
        endpoint = await h.add(server.url, ordered=True, max_concurrency=8)
        for n in range(4):
            await h.publish("orders", data=n)
        await server.wait_for(1)
        await clock.sleeping_until(clock.now() + 5)
        assert len(server.requests) == 1
        clock.advance(5)
        await server.wait_for(5)
        assert [r.json()["data"] for r in server.requests] == [0, 0, 1, 2, 3]
        assert server.max_active == 1
        await h.until_statuses(endpoint, *[SUCCEEDED] * 4)


async def test_rate_limit(tmp_path: Path) -> None:
    clock = FakeClock()
    async with receiver() as server, dispatching(tmp_path, clock=clock) as h:
        await h.add(server.url, rate_limit=2)
        for n in range(5):
            await h.publish("orders", data=n)
        await server.wait_for(2)
        await clock.sleeping_until(clock.now() + 0.5)
        assert len(server.requests) == 2
        clock.advance(0.5)
        await server.wait_for(3)
        await clock.sleeping_until(clock.now() + 0.5)
        assert len(server.requests) == 3


async def test_ssrf_refuses_names_resolving_to_private_addresses(tmp_path: Path) -> None:
    async with receiver() as server, dispatching(tmp_path, allow=()) as h:
        with pytest.raises(InvalidEndpoint, match="loopback"):
            await h.add(server.url)  # a literal address is refused when the endpoint is defined
        endpoint = await h.add(f"http://localhost:{server.port}/hook")
        await h.publish("orders")
        (attempt,) = await eventually(lambda: h.store.attempts(endpoint_id=endpoint.id))
        assert attempt.error is not None and "is a loopback address" in attempt.error
        assert server.requests == []


async def test_guard_checks_the_address_it_connects_to() -> None:
    async def rebinding(host: str, port: int) -> list[str]:
        return ["93.184.215.14", "10.0.0.7"]  # one public, one private answer

    client = AiohttpClient([], timeout=TIMEOUT, response_limit=100, user_agent="t", resolver=rebinding)
    try:
        reply = await client.post("http://rebind.example/", b"{}", {})
        assert reply.status is None and reply.error == (
            "10.0.0.7 is a private address; deliveries go only to public addresses unless allowlisted")
    finally:
        await client.close()

    async def loopback(host: str, port: int) -> list[str]:
        return ["127.0.0.1"]

    client = AiohttpClient(parse_networks(["127.0.0.0/8"]), timeout=TIMEOUT, response_limit=100, user_agent="t",
                           resolver=loopback)
    try:
        async with receiver() as server:
            # the name resolves nowhere but through the guard: the connection goes to the address it checked
            reply = await client.post(f"http://hooks.invalid:{server.port}/hook", b"{}", {})
            assert reply.status == 200
            assert server.requests[0].headers["host"] == f"hooks.invalid:{server.port}"
            assert (await client.post(f"http://127.0.0.1:{server.port}/hook", b"{}", {})).status == 200  # allowed
    finally:
        await client.close()
    client = AiohttpClient([], timeout=TIMEOUT, response_limit=100, user_agent="t", resolver=loopback)
    try:
        for literal in ("127.0.0.1", "[::1]", "[::ffff:127.0.0.1]"):  # never asked of the resolver
            reply = await client.post(f"http://{literal}:1/hook", b"{}", {})
            assert reply.error is not None and "deliveries go only to public addresses" in reply.error
    finally:
        await client.close()


async def test_events_appended_while_the_dispatcher_was_down_are_caught_up(tmp_path: Path) -> None:
    """The crash window between the log append and an intake that is not in its transaction (or
    failed): the stored cursor covers it."""
    async with receiver() as server:
        async with dispatching(tmp_path) as h:
            endpoint = await h.add(server.url)
            await h.publish("orders", data=0)
            await server.wait_for(1)
            h.hub.publish_listeners.clear()  # the dispatcher no longer hears of publishes...
            h.store.join_appends(None)
            for n in range(1, 4):
                await h.publish("orders", data=n)  # ...as if it crashed right after these appends
        async with dispatching(tmp_path) as h:
            await server.wait_for(4)
            await h.until_statuses(endpoint, *[SUCCEEDED] * 4)
            assert [r.json()["data"] for r in server.requests] == [0, 1, 2, 3]


async def test_pending_retries_survive_a_restart(tmp_path: Path) -> None:
    clock = FakeClock()
    async with receiver(lambda n: Reply(500 if n == 0 else 200)) as server:
        async with dispatching(tmp_path, clock=clock) as h:
            endpoint = await h.add(server.url)
            event = await h.publish("orders")
            await server.wait_for(1)
            await clock.sleeping_until(clock.now() + 5)
        clock.advance(5)
        async with dispatching(tmp_path, clock=clock) as h:
            requests = await server.wait_for(2)
            assert [r.headers["webhook-id"] for r in requests] == [event.id, event.id]
            assert requests[1].json()["metadata"]["attempt"] == 2  # type: ignore[index]
            await h.until_statuses(endpoint, SUCCEEDED)


async def test_replay_one_failed_and_since(tmp_path: Path) -> None:
    clock = FakeClock()
    async with receiver(lambda n: Reply(500 if n < 2 else 200)) as server, \
            dispatching(tmp_path, clock=clock) as h:
        endpoint = await h.add(server.url, retry_schedule="")
        first = await h.publish("orders", data=1)
        await h.publish("orders", data=2)
        await server.wait_for(2)
        one, two = await h.until_statuses(endpoint, FAILED, FAILED)
        replayed = await h.dispatcher.replay_delivery(one.id)
        assert replayed.status == PENDING and replayed.id == one.id
        await server.wait_for(3)
        assert server.requests[2].headers["webhook-id"] == first.id
        assert server.requests[2].json()["metadata"]["attempt"] == 2  # type: ignore[index]
        await h.until_statuses(endpoint, SUCCEEDED, FAILED)
        assert await h.dispatcher.replay_failed(endpoint.id) == 1
        await server.wait_for(4)
        assert [d.id for d in await h.until_statuses(endpoint, SUCCEEDED, SUCCEEDED)] == [one.id, two.id]
        since = await h.dispatcher.replay_events(endpoint.id, channels=["orders"], after=first.position)
        assert since == 1
        await server.wait_for(5)
        assert server.requests[4].json()["data"] == 2
        everything = await h.dispatcher.replay_events(endpoint.id, channels=h.dispatcher.replay_channels(endpoint),
                                                      since=clock.now() - 60)
        assert everything == 2
        await server.wait_for(7)
        assert len(await h.deliveries(endpoint)) == 2  # replays reuse the delivery of each event


async def test_rotation_signs_with_both_secrets(tmp_path: Path) -> None:
    async with receiver() as server, dispatching(tmp_path) as h:
        endpoint = await h.add(server.url)
        new_secret = signing.generate_secret()
        await h.dispatcher.save(endpoints.rotate(endpoint, new_secret, 3600.0, h.dispatcher.clock.now()))
        await h.publish("orders")
        (request,) = await server.wait_for(1)
        assert len(request.headers["webhook-signature"].split(" ")) == 2
        Webhook(endpoint.secret).verify(request.body, request.headers)
        Webhook(new_secret).verify(request.body, request.headers)
        with pytest.raises(WebhookVerificationError):
            Webhook(signing.generate_secret()).verify(request.body, request.headers)


async def test_simple_signature_form(tmp_path: Path) -> None:
    async with receiver() as server, dispatching(tmp_path) as h:
        endpoint = await h.add(server.url, signature="simple", headers={"X-Team": "billing"})
        await h.publish("orders")
        (request,) = await server.wait_for(1)
        expected = hmac.new(endpoint.secret.encode(), request.body, hashlib.sha256).hexdigest()
        assert request.headers["x-webhook-signature"] == expected
        assert request.headers["x-webhook-timestamp"].isdigit()
        assert request.headers["x-team"] == "billing"
        assert "webhook-signature" not in request.headers


async def test_paused_ordered_endpoint_probes_when_its_next_delivery_is_due(tmp_path: Path) -> None:
    clock = FakeClock()
    async with receiver(lambda n: Reply(500 if n == 0 else 200)) as server, \
            dispatching(tmp_path, clock=clock, breaker_threshold=1, breaker_cooldown=10.0) as h:
        endpoint = await h.add(server.url, ordered=True, retry_schedule="1h")
        await h.publish("orders")
        await server.wait_for(1)
        start = clock.now()
        await clock.sleeping_until(start + 10)
        clock.advance(10)  # the pause is over, but the only delivery is not due for an hour
        await clock.sleeping_until(start + 3600)
        clock.advance(3590)
        await server.wait_for(2)
        await h.until_statuses(endpoint, SUCCEEDED)


async def test_retention_drops_old_attempts_and_finished_deliveries(tmp_path: Path) -> None:
    clock = FakeClock()
    async with receiver(lambda n: Reply(200 if n == 0 else 500)) as server, \
            dispatching(tmp_path, clock=clock, retention=3600.0) as h:
        endpoint = await h.add(server.url, retry_schedule="3h")
        await h.publish("orders", data=1)
        await h.until_statuses(endpoint, SUCCEEDED)
        await h.publish("orders", data=2)
        await eventually(lambda: h.deliveries(endpoint), lambda found: found[-1].attempts == 1)  # failed once
        start = clock.now()
        for hour in (1, 2):
            await clock.sleeping_until(start + hour * 3600)  # the hourly pruning
            clock.advance(3600)
        (pending,) = await h.until_statuses(endpoint, PENDING)  # the pending delivery stays
        assert pending.attempts == 1 and pending.last_status == 500
        await eventually(lambda: h.store.attempts(endpoint_id=endpoint.id), lambda found: found == [])


async def test_intake_uses_the_published_events_without_reading_the_log(tmp_path: Path) -> None:
    async with receiver() as server, dispatching(tmp_path) as h:
        endpoint = await h.add(server.url)
        reads: list[str] = []
        history = h.hub.broker.history

        async def counted(channel: str, after: int, limit: int) -> Any:
            reads.append(channel)
            return await history(channel, after, limit)

        h.hub.broker.history = counted  # type: ignore[method-assign]
        for n in range(3):
            await h.publish("orders", data=n)
        assert [d.offset for d in await h.deliveries(endpoint)] == [1, 2, 3]
        assert reads == []
        h.hub.publish_listeners.clear()
        h.store.join_appends(None)
        await h.publish("orders", data=3)  # the intake misses this one...
        h.hub.publish_listeners.append(h.dispatcher)
        h.store.join_appends(h.dispatcher.intake.join)
        await h.publish("orders", data=4)  # ...so this one does not follow its cursor: it reads the log
        assert [d.offset for d in await h.deliveries(endpoint)] == [1, 2, 3, 4, 5]
        assert reads == ["orders"]
        await server.wait_for(5)


async def test_deliveries_commit_in_the_transaction_of_their_events(tmp_path: Path) -> None:
    """On SQLite the append, its deliveries and the cursor move are one commit; a failed append
    leaves neither its events nor their deliveries."""
    async with receiver() as server, dispatching(tmp_path) as h:
        first, second = await h.add(server.url), await h.add(server.url, channels=["orders"])
        await h.publish("orders", data=0)  # the first publish to a channel also starts following it
        statements: list[str] = []
        h.store.database.db.set_trace_callback(statements.append)
        published = await asyncio.gather(*(h.publish("orders", data=n) for n in range(1, 4)))
        h.store.database.db.set_trace_callback(None)
        assert statements.count("COMMIT") == 1  # the three publishes of one loop turn, and their deliveries
        assert [d.offset for d in await h.deliveries(first)] == [d.offset for d in await h.deliveries(second)] \
            == [1, 2, 3, 4]
        assert [e.offset for e in published] == [2, 3, 4]
        await h.publish_failing("orders", data=5)
        assert (await h.hub.broker.state("orders")).top == 4
        assert len(await h.deliveries(first)) == 4
        again = await h.publish("orders", data=6)
        assert again.offset == 5 and [d.offset for d in await h.deliveries(first)] == [1, 2, 3, 4, 5]
        await server.wait_for(10)


def count_reads(store: SqliteDeliveryStore) -> list[str]:
    """The endpoint of each read of due deliveries from ``store`` from now on."""
    reads: list[str] = []
    due = store.due

    async def counted(endpoint_id: str, now: float, limit: int, *, ordered: bool = False) -> list[Delivery]:
        reads.append(endpoint_id)
        return await due(endpoint_id, now, limit, ordered=ordered)

    store.due = counted  # type: ignore[method-assign]
    return reads


async def test_a_worker_reads_the_store_again_only_when_something_may_have_come_due(tmp_path: Path) -> None:
    async with receiver() as server, dispatching(tmp_path) as h:
        reads = count_reads(h.store)
        endpoint = await h.add(server.url)
        for n in range(1, 4):
            await h.publish("orders", data=n)
            await server.wait_for(n)
            first, *_ = await h.until_statuses(endpoint, *[SUCCEEDED] * n)
        assert len(reads) <= 4  # one when the worker started, one per publish: not after each attempt
        await h.dispatcher.replay_delivery(first.id)  # a resend is read even so
        await server.wait_for(4)


async def test_the_intake_hands_new_deliveries_to_a_settled_worker_without_a_read(tmp_path: Path) -> None:
    async with receiver() as server, dispatching(tmp_path) as h:
        reads = count_reads(h.store)
        endpoint = await h.add(server.url)
        await eventually(lambda: asyncio.sleep(0, reads), lambda found: found == [endpoint.id])  # settled
        for n in range(1, 4):
            await h.publish("orders", data=n)
            await server.wait_for(n)
            await h.until_statuses(endpoint, *[SUCCEEDED] * n)
        assert reads == [endpoint.id]  # the first read only: each publish's deliveries were handed over
        await h.hub.publish("orders", [EventDraft.from_json({"type": "test.event"}) for _ in range(PREFETCH + 1)])
        await server.wait_for(4 + PREFETCH)
        assert len(reads) > 1 and set(reads) == {endpoint.id}  # more than it reads ahead at a time: read
        read = len(reads)
        ordered = await h.add(server.url, ordered=True)
        await h.publish("orders", data=4)
        await server.wait_for(6 + PREFETCH)
        assert reads.count(endpoint.id) == read and ordered.id in reads  # nothing is handed to an ordered endpoint


async def test_a_settled_worker_asks_when_its_next_delivery_is_due_once(tmp_path: Path) -> None:
    clock = FakeClock()
    async with receiver(lambda n: Reply(500 if n == 3 else 200)) as server, dispatching(tmp_path, clock=clock) as h:
        asked: list[str] = []
        next_due = h.store.next_due

        async def counted(endpoint_id: str) -> float | None:
            asked.append(endpoint_id)
            return await next_due(endpoint_id)

        h.store.next_due = counted  # type: ignore[method-assign]
        endpoint = await h.add(server.url)
        for n in range(1, 4):
            await h.publish("orders", data=n)
            await server.wait_for(n)
            await h.until_statuses(endpoint, *[SUCCEEDED] * n)
        assert asked == [endpoint.id]  # nothing became pending but what was sent and succeeded
        await h.publish("orders", data=4)  # answered 500: pending again, due later
        await server.wait_for(4)
        (*_, retried) = await eventually(lambda: h.deliveries(endpoint), lambda ds: ds[-1].attempts == 1)
        await eventually(lambda: asyncio.sleep(0, asked), lambda found: len(found) > 1)  # asked again
        await clock.sleeping_until(retried.next_at)  # the worker waits for the retry
        clock.advance(retried.next_at - clock.now())
        await server.wait_for(5)
        await h.until_statuses(endpoint, *[SUCCEEDED] * 4)


async def test_a_worker_stops_when_a_store_call_swallows_its_cancellation() -> None:
    """A cancellation can be lost inside a store call (redis-py's wait_for on Python 3.11: see
    :mod:`pushhub.tasks`): the worker stops all the same."""
    entered = asyncio.Event()

    class Swallowing(MemoryDeliveryStore):
        async def due(self, endpoint_id: str, now: float, limit: int, *, ordered: bool = False) -> list[Delivery]:
            entered.set()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.get_running_loop().create_future()  # until cancelled, which it swallows
            return []

    store = Swallowing()
    allow = tuple(parse_networks(LOOPBACK))
    endpoint = endpoints.create({"url": "http://127.0.0.1:9/hook"}, https_only=False, allow=allow, now=1.0)
    recorder = Recorder(store)
    worker = Worker(endpoint, store=store, config=DispatchConfig(allow=allow), clock=FakeClock(),
                    client=AiohttpClient(allow, timeout=TIMEOUT, response_limit=100, user_agent="test"),
                    recorder=recorder, rand=lambda: 0.5, on_outcome=lambda endpoint_id, outcome, when: None)
    await asyncio.wait_for(entered.wait(), TIMEOUT)
    stopping = asyncio.ensure_future(worker.stop())
    await asyncio.wait([stopping], timeout=TIMEOUT)  # not wait_for: its own cancel would end the worker
    stopped = stopping.done()
    stopping.cancel()  # (if it did not stop: that ends it, through the task it waits for)
    await asyncio.wait([stopping])
    await recorder.close()
    assert stopped


async def test_attempts_finishing_in_one_turn_are_recorded_in_one_write() -> None:
    class Counting(MemoryDeliveryStore):
        def __init__(self) -> None:
            super().__init__()
            self.writes: list[int] = []

        async def finish_attempts(self, finished: Sequence[tuple[Delivery, Attempt]]) -> None:
            self.writes.append(len(finished))
            await super().finish_attempts(finished)

    store = Counting()
    await store.enqueue("orders", Position("ep0ch", 5), [
        Delivery(new_delivery_id(), "ep_a", "orders", "ep0ch", n, f"evt_{n}", "t", b"{}", 1.0, 1.0)
        for n in range(1, 6)])
    recorder = Recorder(store)
    due = await store.due("ep_a", 1.0, 10)
    for d in due:
        d.status, d.attempts = SUCCEEDED, 1

    async def finish(ds: list[Delivery]) -> None:
        stored: list[str | None] = []
        done = asyncio.Event()

        def recorded(d: Delivery, ok: bool) -> None:  # called once the attempt is stored
            assert ok
            stored.append(store._deliveries[d.id].status)
            if len(stored) == len(ds):
                done.set()

        for d in ds:
            recorder.add(d, Attempt(d.id, "ep_a", d.event_id, 1, 1.0, 1.0, 200), recorded)
        assert stored == []
        await done.wait()
        assert stored == [SUCCEEDED] * len(ds)

    await finish(due)
    await finish(due[:1])
    assert store.writes == [5, 1]
    await recorder.close()



async def test_an_append_takes_the_waiting_attempt_records_into_its_transaction(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(recorder_module, "INTERVAL", TIMEOUT / 2)  # the recorder's own write comes late
    async with receiver() as server, dispatching(tmp_path) as h:
        endpoint = await h.add(server.url)
        waiting = h.dispatcher.recorder._batch
        await h.publish("orders", data=1)
        await server.wait_for(1)
        await eventually(lambda: len(waiting), lambda count: count == 1)  # answered, not recorded yet
        statements: list[str] = []
        h.store.database.db.set_trace_callback(statements.append)
        await h.publish("orders", data=2)
        h.store.database.db.set_trace_callback(None)
        assert statements.count("COMMIT") == 1
        assert [s.split(" (")[0] for s in statements if s.startswith("INSERT INTO")] == [
            "INSERT INTO events", "INSERT INTO webhook_cursors", "INSERT INTO webhook_attempts",
            "INSERT INTO webhook_minutes"]
        assert [d.status for d in await h.deliveries(endpoint)] == [SUCCEEDED, PENDING]  # before the commit
        await server.wait_for(2)
        await eventually(lambda: len(waiting), lambda count: count == 1)
        await h.publish_failing("orders", data=3)
        assert len(waiting) == 1  # the failed append took nothing away: the recorder writes it itself
        await h.until_statuses(endpoint, SUCCEEDED, SUCCEEDED)
        assert len(await h.store.attempts(endpoint_id=endpoint.id)) == 2


async def test_with_fsync_an_append_neither_hands_over_nor_records_attempts(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With fsync an append's joined writes hear of their commit only after a later fsync: by then
    a worker may have read the deliveries, or the recorder written the records, itself."""
    monkeypatch.setattr(recorder_module, "INTERVAL", TIMEOUT / 2)
    async with receiver() as server, dispatching(tmp_path, fsync=True) as h:
        reads = count_reads(h.store)
        endpoint = await h.add(server.url)
        await eventually(lambda: asyncio.sleep(0, reads), lambda found: found == [endpoint.id])  # settled
        await h.publish("orders", data=1)
        await server.wait_for(1)
        statements: list[str] = []
        h.store.database.db.set_trace_callback(statements.append)
        await h.publish("orders", data=2)
        h.store.database.db.set_trace_callback(None)
        assert not [s for s in statements if s.startswith("INSERT INTO webhook_attempts")]
        await h.until_statuses(endpoint, SUCCEEDED, SUCCEEDED)
        assert len(reads) >= 3  # each publish's deliveries read from the store
        assert len(server.requests) == 2 and len(await h.store.attempts(endpoint_id=endpoint.id)) == 2


async def test_the_sender_process_sends_with_every_guarantee(tmp_path: Path) -> None:
    async with receiver() as server, dispatching(tmp_path, allow=(), sender=PROCESS) as h:
        assert h.dispatcher.process is not None
        named = await h.add(f"http://localhost:{server.port}/hook")  # the child's resolver refuses it
        await h.publish("orders", data=1)
        (attempt,) = await eventually(lambda: h.store.attempts(endpoint_id=named.id))
        assert attempt.error is not None and "is a loopback address" in attempt.error and server.requests == []
        await h.dispatcher.delete(named.id)
    async with receiver() as server, receiver(lambda n: Reply(delay=4 * TIMEOUT)) as slow, \
            dispatching(tmp_path, sender=PROCESS, timeout=TIMEOUT / 25) as h:
        endpoint = await h.add(server.url)
        hanging = await h.add(slow.url)
        event = await h.publish("orders", data=2)
        (request,) = await server.wait_for(1)
        Webhook(endpoint.secret).verify(request.body, request.headers)
        assert request.headers["webhook-id"] == event.id and request.json()["data"] == 2
        await h.until_statuses(endpoint, SUCCEEDED)
        (timed_out,) = await eventually(lambda: h.store.attempts(endpoint_id=hanging.id))
        assert timed_out.status is None and timed_out.error == f"timed out after {TIMEOUT / 25:g}s"


async def test_a_dead_sender_process_is_replaced_and_its_attempts_retried(tmp_path: Path) -> None:
    clock = FakeClock()
    async with receiver(lambda n: Reply(delay=8 * TIMEOUT if n == 0 else 0)) as server, \
            dispatching(tmp_path, clock=clock, sender=PROCESS) as h:
        assert h.dispatcher.process is not None
        endpoint = await h.add(server.url)
        await h.publish("orders")
        await server.wait_for(1)  # the child is waiting for the answer...
        child = h.dispatcher.process.pid
        assert child is not None
        os.kill(child, signal.SIGKILL)  # ...and dies
        (attempt,) = await eventually(lambda: h.store.attempts(endpoint_id=endpoint.id))
        assert attempt.error == "the webhook sender process exited with -9"
        await clock.sleeping_until(clock.now() + 5)
        clock.advance(5)  # the retry goes through a new child
        await server.wait_for(2)
        await h.until_statuses(endpoint, SUCCEEDED)
        assert h.dispatcher.process.pid not in (None, child)


def self_signed(directory: Path) -> tuple[str, str]:
    """A certificate for 127.0.0.1 that nothing trusts, and its key (PEM files)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_path), str(key_path)


async def test_tls_certificates_are_verified(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0, ssl=server_context)
    url = f"https://127.0.0.1:{server.sockets[0].getsockname()[1]}/hook"
    loopback = parse_networks(["127.0.0.0/8"])
    untrusting = AiohttpClient(loopback, timeout=TIMEOUT, response_limit=100, user_agent="t")
    trusting = AiohttpClient(loopback, timeout=TIMEOUT, response_limit=100, user_agent="t",
                             ssl_context=ssl.create_default_context(cafile=cert))
    try:
        refused = await untrusting.post(url, b"{}", {})
        assert refused.status is None and refused.error is not None and "certificate verify failed" in refused.error
        assert (await trusting.post(url, b"{}", {})).status == 200
    finally:
        await untrusting.close()
        await trusting.close()
        server.close()
        await server.wait_closed()
