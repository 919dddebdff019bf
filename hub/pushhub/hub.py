"""One hub process: publishing, live fan-out to local connections, and exact resume.

Live path: the broker hands over a channel's new events in offset order; for each group of live
subscriptions (same wire format, same type filter) the batch is framed once and the same bytes are
written to every member's socket.

Resume path: a subscription first registers as *catching up*, so live events are buffered for it,
then reads history after its cursor, then drains the buffer skipping what history already gave. It
joins the live groups only when its position on every channel equals the hub's, which leaves no
window where an event could be missed or delivered twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, Protocol

from . import cursor as cursors
from . import disconnect, faults
from .backends.base import Broker, Done, HistoryPage, Once, Published
from .connection import Connection, GroupKind, Outbox, Subscription, render_batch
from .cursor import Position
from .errors import BadCursor, PushHubError
from .events import Event, EventDraft
from .provenance import Origin
from .stats import Stats

logger = logging.getLogger("pushhub")

HISTORY_PAGE = 500
RECOVER_RETRY_MIN = 0.05  # seconds before retrying a recovery the log could not serve; doubles
RECOVER_RETRY_MAX = 2.0

# Reasons carried by ``reset``: the resume could not be exact on that channel.
HISTORY_TRIMMED = "history_trimmed"
EPOCH_CHANGED = "epoch_changed"
BAD_CURSOR = "bad_cursor"


class Group:
    """Live subscriptions of one channel that get the same bytes: one wire format (``kind``), one
    type filter, one :class:`Outbox` that writes them."""

    __slots__ = ("kind", "match", "members", "outbox")

    def __init__(self, kind: GroupKind, match: Callable[[str], bool] | None, outbox: Outbox) -> None:
        self.kind = kind
        self.match = match
        self.outbox = outbox
        self.members: dict[Connection, None] = {}


class ChannelState:
    __slots__ = ("groups", "name", "pending", "ready", "recovering", "recovery", "refs")

    def __init__(self, name: str) -> None:
        self.name = name
        self.groups: dict[tuple[GroupKind, tuple[str, ...], Outbox], Group] = {}
        self.pending: dict[Subscription, None] = {}
        self.refs = 0
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.recovering: list[Event] | None = None
        self.recovery: asyncio.Task[None] | None = None


async def _answer(done: Done, publishing: Awaitable[Published]) -> None:
    """Tell ``done`` what ``publishing`` returns or raises."""
    try:
        published = await publishing
    except BaseException as exc:
        done(exc)
        if not isinstance(exc, Exception):
            raise
        return
    done(published)


class PublishListener(Protocol):
    """Told about every publish of this process: before the append (to take note of the channel
    durably) and after it (the events are in the log). Where :meth:`ready` or :meth:`settled` says
    so, the call it stands for has nothing to do and is skipped."""

    async def before_publish(self, channel: str) -> None: ...

    async def published(self, channel: str, events: list[Event]) -> None: ...

    def ready(self, channel: str) -> bool:
        """Whether :meth:`before_publish` would return at once."""

    def settled(self, channel: str, events: list[Event]) -> bool:
        """Whether :meth:`published` would return at once."""


class Hub:
    def __init__(self, broker: Broker, *, max_backlog: int = 10_000,
                 after_append: Callable[[], None] = faults.nothing) -> None:
        self.broker = broker
        self.max_backlog = max_backlog
        self.after_append = after_append  # a test-only fault point (pushhub.faults)
        self.channels: dict[str, ChannelState] = {}
        self.tops: dict[str, Position] = {}
        self.connections: dict[Connection, None] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.stats = Stats()
        self._leaving: dict[str, asyncio.Task[None]] = {}  # broker unsubscriptions still running
        self.publish_listeners: list[PublishListener] = []
        self.on_close = self._on_close  # one bound method for every connection
        self.outbox = Outbox()  # the streams' connections write through it

    async def start(self) -> None:
        await self.broker.start(self._on_events, self._on_batch)

    async def close(self) -> None:
        self.close_connections(disconnect.SHUTDOWN)
        for task in list(self._tasks):
            task.cancel()
        await self.broker.close()

    def close_connections(self, reason: disconnect.Disconnect) -> None:
        for conn in list(self.connections):
            conn.close(reason)

    # Publishing and history -------------------------------------------------------------------

    async def publish(self, channel: str, drafts: Sequence[EventDraft], origin: Origin | None = None) -> list[Event]:
        return (await self.publish_once(channel, drafts, None, origin)).events

    async def publish_once(self, channel: str, drafts: Sequence[EventDraft], once: Once | None,
                           origin: Origin | None = None) -> Published:
        """Publish ``drafts`` from ``origin`` (kept in the event index), unless ``once`` names a
        request already published (then its record comes back and nothing is appended): see
        :meth:`Broker.publish`."""
        for listener in self.publish_listeners:
            await listener.before_publish(channel)
        started = time.perf_counter()
        published = await self.broker.publish(channel, drafts, once, origin)
        if published.replayed is not None:
            return published
        self._appended(published, started)
        for listener in self.publish_listeners:
            await listener.published(channel, published.events)
        return published

    def publish_soon(self, channel: str, drafts: Sequence[EventDraft], once: Once | None, origin: Origin | None,
                     done: Done) -> None:
        """:meth:`publish_once`, answered through ``done`` (the lean publish route), with no coroutine
        while the publish listeners have nothing to do for ``channel``: then ``done`` is called from
        the group commit itself (:meth:`Broker.publish_soon`)."""
        listeners = self.publish_listeners
        if not all(listener.ready(channel) for listener in listeners):
            self._spawn(_answer(done, self.publish_once(channel, drafts, once, origin)))
            return
        started = time.perf_counter()

        def appended(result: Published | BaseException) -> None:
            if isinstance(result, BaseException) or result.replayed is not None:
                done(result)
                return
            try:
                self._appended(result, started)
            except Exception as exc:
                done(exc)
                return
            if all(listener.settled(channel, result.events) for listener in listeners):
                done(result)
            else:
                self._spawn(_answer(done, self._tell_listeners(channel, result)))

        self.broker.publish_soon(channel, drafts, once, origin, appended)

    def _appended(self, published: Published, started: float) -> None:
        self.after_append()
        self.stats.published += len(published.events)
        self.stats.observer.publish(len(published.events), time.perf_counter() - started)

    async def _tell_listeners(self, channel: str, published: Published) -> Published:
        for listener in self.publish_listeners:
            await listener.published(channel, published.events)
        return published

    async def history(self, channel: str, after: str | None, limit: int) -> tuple[HistoryPage, str | None]:
        """A page of ``channel``'s events after the cursor ``after``, and the reason a reset is due
        (``None`` when the page continues exactly from ``after``)."""
        state = await self.broker.state(channel)
        if after is None:
            return await self.broker.history(channel, state.earliest - 1, limit), None
        position = cursors.decode(after, (channel,))[channel]
        start, reason = _resume_point(position, state.epoch, state.top, state.earliest)
        return await self.broker.history(channel, start, limit), reason

    # Connections ------------------------------------------------------------------------------

    def add_connection(self, conn: Connection) -> None:
        self.connections[conn] = None
        conn.on_close = self.on_close

    def _on_close(self, conn: Connection) -> None:
        self.connections.pop(conn, None)
        if conn.closed == disconnect.SLOW_CONSUMER:
            self.stats.slow_consumers += 1
        for sub in list(conn.subscriptions):
            self.unsubscribe(sub)

    def remove_connection(self, conn: Connection) -> None:
        """The client went away (the transport is already closed)."""
        if conn.closed is None:
            conn.closed = disconnect.CLIENT_GONE
            self._on_close(conn)

    # Subscribing ------------------------------------------------------------------------------

    async def _acquire(self, channel: str) -> ChannelState:
        state = self.channels.get(channel)
        if state is None:
            state = self.channels[channel] = ChannelState(channel)
            state.refs += 1
            try:
                leaving = self._leaving.get(channel)
                if leaving is not None:  # the broker must leave the channel before it follows it again
                    await asyncio.wait([leaving])
                await self.broker.subscribe(channel)
                stream = await self.broker.state(channel)
            except BaseException as exc:
                state.refs -= 1
                self._release(state)
                state.ready.set_exception(exc if isinstance(exc, Exception) else PushHubError("cancelled"))
                state.ready.exception()  # mark retrieved: waiters re-raise it themselves
                raise
            self.tops[channel] = Position(stream.epoch, stream.top)
            state.ready.set_result(None)
            early, state.recovering = state.recovering, None
            if early:
                self._on_events(channel, early)
        else:
            state.refs += 1
            if not state.ready.done():
                try:
                    await asyncio.shield(state.ready)
                except BaseException:
                    state.refs -= 1
                    raise
        return state

    def _release(self, state: ChannelState) -> None:
        if state.refs == 0 and self.channels.get(state.name) is state:
            del self.channels[state.name]
            self.tops.pop(state.name, None)
            task = self._leaving[state.name] = self._spawn(self.broker.unsubscribe(state.name))
            task.add_done_callback(lambda done: self._left(state.name, done))

    def _left(self, channel: str, task: asyncio.Task[None]) -> None:
        if self._leaving.get(channel) is task:
            del self._leaving[channel]

    async def subscribe(self, sub: Subscription, cursor: str | None,
                        announce: Callable[[Subscription], None] | None = None) -> None:
        """Attach ``sub`` to its channels, send it what it missed after ``cursor``, then go live.

        ``announce`` is called once the starting positions are known, before anything is sent.
        """
        acquired: list[ChannelState] = []
        try:
            for channel in sub.channels:
                acquired.append(await self._acquire(channel))
        except BaseException:
            for state in acquired:
                state.refs -= 1
                self._release(state)
            raise
        sub.conn.subscriptions.append(sub)
        if sub.conn.closed is not None:
            self.unsubscribe(sub)
            return
        for state in acquired:
            state.pending[sub] = None
        resets: list[tuple[str, str]] = []
        given: dict[str, Position] = {}
        if cursor:
            try:
                given = cursors.decode_widened(
                    cursor, sub.channels, {c: self.tops[c].epoch for c in sub.channels})
            except BadCursor:
                resets = [(channel, BAD_CURSOR) for channel in sub.channels]
        for channel in sub.channels:
            top = self.tops[channel]
            position = given.get(channel)
            if position is None:
                sub.pos[channel] = top
                continue
            stream = await self.broker.state(channel)
            start, reason = _resume_point(position, stream.epoch, stream.top, stream.earliest)
            sub.pos[channel] = Position(stream.epoch, start)
            if reason is not None:
                resets.append((channel, reason))
        if sub.conn.closed is not None:
            return
        for channel, reason in resets:
            if reason == BAD_CURSOR:
                sub.pos[channel] = self.tops[channel]
        if announce is not None:
            announce(sub)
        for channel, reason in resets:
            self._reset(sub, channel, reason)
        await self._catch_up(sub)

    def subscribe_now(self, sub: Subscription, announce: Callable[[Subscription], None] | None = None) -> bool:
        """Attach ``sub`` live from the channels' current positions at once, within this call, when
        there is nothing to wait for: no cursor to resume from (the caller knows) and every channel
        already followed, settled and not recovering. Otherwise do nothing and return False:
        :meth:`subscribe` is needed. This is how a connect costs no task in the common case."""
        states = []
        for channel in sub.channels:
            state = self.channels.get(channel)
            if (state is None or not state.ready.done() or state.ready.cancelled()
                    or state.ready.exception() is not None or state.recovering is not None):
                return False
            states.append(state)
        for state in states:
            state.refs += 1
        sub.conn.subscriptions.append(sub)
        if sub.conn.closed is not None:
            self.unsubscribe(sub)
            return True
        for channel in sub.channels:
            sub.pos[channel] = self.tops[channel]
        if announce is not None:
            announce(sub)
        self._go_live(sub)
        return True

    def _reset(self, sub: Subscription, channel: str, reason: str) -> None:
        self.stats.resets += 1
        sub.conn.send(sub.conn.render_reset(sub, channel, reason))

    def unsubscribe(self, sub: Subscription) -> None:
        with contextlib.suppress(ValueError):
            sub.conn.subscriptions.remove(sub)
        for channel in sub.channels:
            state = self.channels.get(channel)
            if state is None:
                continue
            state.pending.pop(sub, None)
            if sub.live:
                key = (sub.conn.group_kind(sub), sub.types, sub.conn.outbox)
                group = state.groups.get(key)
                if group is not None:
                    group.members.pop(sub.conn, None)
                    if not group.members:
                        del state.groups[key]
            state.refs -= 1
            self._release(state)
        sub.live = False

    async def _catch_up(self, sub: Subscription) -> None:
        try:
            await self._read_up(sub)
        except PushHubError as exc:
            logger.warning("closing a stream that cannot catch up: %s", exc.message)
            sub.conn.close(disconnect.INTERNAL_ERROR)

    async def _read_up(self, sub: Subscription) -> None:
        conn = sub.conn
        while conn.closed is None:
            for channel in sub.channels:
                while conn.closed is None:
                    position = sub.pos[channel]
                    top = self.tops[channel]
                    if position.epoch == top.epoch and position.offset >= top.offset:
                        break
                    page = await self.broker.history(channel, position.offset, HISTORY_PAGE)
                    if conn.closed is not None:
                        return
                    self._deliver_history(sub, channel, page)
                    if conn.closed is None and page.state.epoch != self.tops[channel].epoch:
                        await self._resync(self.channels[channel])
                    if not page.events:
                        break
            if conn.closed is not None or self._drain(sub):
                return

    def _deliver_history(self, sub: Subscription, channel: str, page: HistoryPage) -> None:
        position = sub.pos[channel]
        state = page.state
        if state.epoch != position.epoch:
            sub.pos[channel] = Position(state.epoch, state.earliest - 1)
            self._reset(sub, channel, EPOCH_CHANGED)
        elif page.events and page.events[0].offset > position.offset + 1:
            sub.pos[channel] = Position(state.epoch, page.events[0].offset - 1)
            self._reset(sub, channel, HISTORY_TRIMMED)
        elif not page.events and state.top > position.offset:
            sub.pos[channel] = Position(state.epoch, state.top)
            self._reset(sub, channel, HISTORY_TRIMMED)
        self._send_events(sub, page.events)

    def _send_events(self, sub: Subscription, events: list[Event]) -> None:
        conn = sub.conn
        match = sub.match
        for event in events:
            current = sub.pos[event.channel]
            if event.epoch != current.epoch or event.offset <= current.offset:
                continue
            sub.pos[event.channel] = event.position
            if match is None or match(event.type):
                conn.send(conn.render(sub, event))
                self.stats.delivered += 1

    def _drain(self, sub: Subscription) -> bool:
        """Deliver buffered live events; go live if caught up. False means history is needed."""
        backlog, sub.backlog = sub.backlog, []
        for index, event in enumerate(backlog):
            current = sub.pos[event.channel]
            if event.epoch == current.epoch and event.offset > current.offset + 1:
                sub.backlog = backlog[index:]
                break
            if event.epoch != current.epoch and event.epoch == self.tops[event.channel].epoch:
                sub.pos[event.channel] = Position(event.epoch, 0)
                self._reset(sub, event.channel, EPOCH_CHANGED)
            self._send_events(sub, [event])
        if sub.conn.closed is not None:
            return True
        behind = False
        ahead = False
        for channel in sub.channels:
            position, top = sub.pos[channel], self.tops[channel]
            if position.epoch != top.epoch or position.offset < top.offset:
                behind = True
            elif position.offset > top.offset:
                ahead = True
        if behind:
            sub.waiting = False
            return False
        if ahead:
            sub.waiting = True
            return True
        self._go_live(sub)
        return True

    def _go_live(self, sub: Subscription) -> None:
        sub.waiting = False
        sub.live = True
        conn = sub.conn
        kind = conn.group_kind(sub)
        key = (kind, sub.types, conn.outbox)
        for channel in sub.channels:
            state = self.channels[channel]
            state.pending.pop(sub, None)
            group = state.groups.get(key)
            if group is None:
                group = state.groups[key] = Group(kind, sub.match, conn.outbox)
            group.members[conn] = None

    # Live fan-out -----------------------------------------------------------------------------

    def _on_events(self, channel: str, events: list[Event]) -> None:
        """Live events from the broker. They are stored already: a failure here must not fail the
        publisher, so it is logged and the subscribers are left to recover from the log."""
        try:
            self._dispatch(channel, events)
        except Exception:
            logger.exception("fan-out of %s failed", channel)

    def _on_batch(self, batch: list[tuple[str, list[Event]]]) -> None:
        """Live events of several channels, made together (a group commit): written to the sockets
        here, in the turn that made them, not in a turn of the outbox's own."""
        outbox = self.outbox
        held = outbox.hold()
        try:
            for channel, events in batch:
                self._on_events(channel, events)
        finally:
            if held:
                outbox.flush()

    def _dispatch(self, channel: str, events: list[Event]) -> None:
        state = self.channels.get(channel)
        if state is None or not events:
            return
        if not state.ready.done() or state.recovering is not None:
            if state.recovering is None:
                state.recovering = list(events)
            else:
                state.recovering.extend(events)  # buffered until the recovery or the setup is done
            return
        top = self.tops[channel]
        first = events[0]
        if first.epoch == top.epoch:
            if first.offset <= top.offset:
                events = [e for e in events if e.offset > top.offset]
                if not events:
                    return
                first = events[0]
            if first.offset > top.offset + 1:
                self._start_recovery(state, events)
                return
        elif first.offset > 1:
            self._start_recovery(state, events)  # a new epoch whose first events this process missed
            return
        else:
            self._epoch_changed(state, first)
        self._fan_out(state, events)

    def _fan_out(self, state: ChannelState, events: list[Event]) -> None:
        tops = self.tops
        delivered = 0
        for group in state.groups.values():  # queueing writes changes no group
            match = group.match
            selected = events if match is None else [e for e in events if match(e.type)]
            if selected:
                members = group.members
                group.outbox.write_all(members, render_batch(group.kind, selected, tops))
                delivered += len(members) * len(selected)
        if delivered:
            stats = self.stats
            stats.delivered += delivered
            stats.observer.delivery(events[-1].time, time.time())
        tops[state.name] = events[-1].position
        if not state.pending:
            return
        for sub in list(state.pending):
            sub.backlog.extend(events)
            if len(sub.backlog) > self.max_backlog:
                sub.conn.close(disconnect.SLOW_CONSUMER)
            elif sub.waiting and not self._drain(sub):
                self._spawn(self._catch_up(sub))

    def _epoch_changed(self, state: ChannelState, first: Event) -> None:
        """The log lost its past: every live subscriber is told, then continues in the new epoch."""
        self.tops[state.name] = Position(first.epoch, first.offset - 1)
        self._reset_live(state, EPOCH_CHANGED)

    def _reset_live(self, state: ChannelState, reason: str) -> None:
        for group in state.groups.values():
            for conn in list(group.members):
                for sub in conn.subscriptions:
                    if state.name in sub.channels and sub.live:
                        sub.pos = {c: self.tops[c] for c in sub.channels}
                        self._reset(sub, state.name, reason)

    def _start_recovery(self, state: ChannelState, events: list[Event]) -> asyncio.Task[None]:
        """Recover the channel from its log; live events are buffered until that is done."""
        if state.recovery is None:
            state.recovering = list(events)
            state.recovery = self._spawn(self._recover(state))
        return state.recovery

    async def _resync(self, state: ChannelState) -> None:
        """The log is in an epoch this process has not seen live (Redis lost data): move to it."""
        await asyncio.shield(self._start_recovery(state, []))

    async def _recover(self, state: ChannelState) -> None:
        """Bring the channel up to its log (fill a gap in live delivery, or move to the log's new
        epoch), then release what arrived meanwhile. Retries while the log is unavailable."""
        delay = RECOVER_RETRY_MIN
        while self.channels.get(state.name) is state:
            try:
                await self._fill(state)
                break
            except PushHubError as exc:
                logger.warning("cannot recover channel %s from its log yet: %s", state.name, exc.message)
            await asyncio.sleep(delay)
            delay = min(2 * delay, RECOVER_RETRY_MAX)
        pending, state.recovering, state.recovery = state.recovering or [], None, None
        if self.channels.get(state.name) is not state:
            return
        if pending:
            self._on_events(state.name, pending)
        for sub in list(state.pending):
            if sub.waiting and not self._drain(sub):
                self._spawn(self._catch_up(sub))

    async def _fill(self, state: ChannelState) -> None:
        name = state.name
        while self.channels.get(name) is state:
            top = self.tops[name]
            page = await self.broker.history(name, top.offset, HISTORY_PAGE)
            if page.state.epoch != top.epoch:
                page = await self.broker.history(name, page.state.earliest - 1, HISTORY_PAGE)
            if self.channels.get(name) is not state:
                return
            self._adopt(state, page)
            if len(page.events) < HISTORY_PAGE:
                return

    def _adopt(self, state: ChannelState, page: HistoryPage) -> None:
        """Fan out a page read after the hub's top; first reset live subscribers if it does not
        continue exactly from there (the log changed epoch, or trimmed what was missed)."""
        top = self.tops[state.name]
        epoch = page.state.epoch
        first = page.events[0].offset if page.events else page.state.top + 1
        if epoch != top.epoch or first > top.offset + 1:
            self.tops[state.name] = Position(epoch, first - 1)
            self._reset_live(state, EPOCH_CHANGED if epoch != top.epoch else HISTORY_TRIMMED)
        fresh = [e for e in page.events if e.offset > self.tops[state.name].offset]
        if fresh:
            self._fan_out(state, fresh)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task


def _resume_point(position: Position, epoch: str, top: int, earliest: int) -> tuple[int, str | None]:
    """Where to resume a channel whose client last saw ``position``: the offset to read after, and
    the reason for a ``reset`` when that is not exactly ``position`` (pure)."""
    if position.epoch != epoch:
        return earliest - 1, EPOCH_CHANGED
    if position.offset > top:
        return top, BAD_CURSOR
    if position.offset < earliest - 1:
        return earliest - 1, HISTORY_TRIMMED
    return position.offset, None
