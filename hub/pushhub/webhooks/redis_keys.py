"""Every name the webhook store uses in Redis, in one place (pure).

All of them carry the one hash tag ``{webhooks}``, so Redis Cluster keeps them in one slot and each
Lua script may touch any of them (cursors, deliveries and their indexes move together). The
scripts receive :data:`PREFIX` and build the per-delivery names with the Lua helpers of
:data:`LUA_NAMES`, generated from the same suffixes as the Python functions below.

``version``          integer, bumped by every endpoint change (other processes reload on a change)
``endpoints``        hash: endpoint id → endpoint record (JSON)
``cursors``          hash: channel → ``epoch.offset``, the last event turned into deliveries
``seq``              integer: the last delivery ``seq`` handed out
``keys``             hash: ``endpoint\\0channel\\0epoch\\0offset`` → delivery id (one delivery per event)
``d:{id}``           hash: one delivery's fields
``due:{endpoint}``   sorted set of pending delivery ids by the time they may next be tried (their
                     ``next_at``, or the end of the lease of the process sending them)
``pending:{endpoint}`` sorted set of pending delivery ids by ``seq`` (ordered endpoints)
``all``, ``by_endpoint:{id}``, ``by_event:{id}`` sorted sets of delivery ids by ``seq`` (listing)
``finished``         sorted set of succeeded and failed delivery ids by ``updated_at`` (retention)
``attempt_seq``      integer: the last attempt id handed out
``attempts``         hash: attempt id → attempt record (JSON)
``attempts_all``, ``attempts_by_endpoint:{id}``, ``attempts_by_event:{id}``,
``attempts_by_delivery:{id}`` sorted sets of attempt ids by id (listing); ``attempts_at`` by time
``minutes:{endpoint}:{hour}`` hash: ``{minute}:s``, ``:f``, ``:l`` the endpoint's succeeded and failed
                     attempts and their total latency (ms) in each minute of that hour (expires)
"""

from __future__ import annotations

from ..backends.redis_keys import PREFIX as ROOT

PREFIX = ROOT + "{webhooks}:"

VERSION = "version"
ENDPOINTS = "endpoints"
CURSORS = "cursors"
SEQ = "seq"
KEYS = "keys"
ALL = "all"
FINISHED = "finished"
ATTEMPT_SEQ = "attempt_seq"
ATTEMPTS = "attempts"
ATTEMPTS_ALL = "attempts_all"
ATTEMPTS_AT = "attempts_at"

# Per-item names: suffix + id.
DELIVERY = "d:"
DUE = "due:"
PENDING = "pending:"
BY_ENDPOINT = "by_endpoint:"
BY_EVENT = "by_event:"
ATTEMPTS_BY_ENDPOINT = "attempts_by_endpoint:"
ATTEMPTS_BY_EVENT = "attempts_by_event:"
ATTEMPTS_BY_DELIVERY = "attempts_by_delivery:"
MINUTES = "minutes:"


def name(suffix: str, item: str = "") -> str:
    return PREFIX + suffix + item


def delivery_key(endpoint_id: str, channel: str, epoch: str, offset: int) -> str:
    return f"{endpoint_id}\0{channel}\0{epoch}\0{offset}"


_PER_ITEM = {"delivery": DELIVERY, "due": DUE, "pending": PENDING, "by_endpoint": BY_ENDPOINT,
             "by_event": BY_EVENT, "attempts_by_endpoint": ATTEMPTS_BY_ENDPOINT,
             "attempts_by_event": ATTEMPTS_BY_EVENT, "attempts_by_delivery": ATTEMPTS_BY_DELIVERY,
             "minutes": MINUTES}
_SINGLE = {"version": VERSION, "endpoints": ENDPOINTS, "cursors": CURSORS, "seq": SEQ, "keys": KEYS, "all": ALL,
           "finished": FINISHED, "attempt_seq": ATTEMPT_SEQ, "attempts": ATTEMPTS, "attempts_all": ATTEMPTS_ALL,
           "attempts_at": ATTEMPTS_AT}

# Lua: ``K.<single>`` is a full key name, ``K.<per item>(id)`` builds one; ``P`` is ARGV[1] (the prefix).
LUA_NAMES = "local P = ARGV[1]\nlocal K = {}\n" + "".join(
    f"K.{lua} = P .. '{suffix}'\n" for lua, suffix in _SINGLE.items()) + "".join(
    f"K.{lua} = function(id) return P .. '{suffix}' .. id end\n" for lua, suffix in _PER_ITEM.items())
