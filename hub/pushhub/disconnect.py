"""Why a stream ends, and whether the client should come back (pure).

Every disconnect pushhub initiates has a code. WebSocket clients get it as the close code; SSE
clients get it in a final ``disconnect`` event. Codes 4000-4499 mean "reconnect and resume from your
cursor"; codes 4500-4999 mean "do not reconnect without changing something".
"""

from __future__ import annotations

from typing import NamedTuple


class Disconnect(NamedTuple):
    code: int
    reason: str

    @property
    def reconnect(self) -> bool:
        return self.code < 4500

    def as_dict(self) -> dict[str, object]:
        return {"code": self.code, "reason": self.reason, "reconnect": self.reconnect}


CLIENT_GONE = Disconnect(1000, "client_gone")
SHUTDOWN = Disconnect(4000, "shutdown")
SLOW_CONSUMER = Disconnect(4001, "slow_consumer")
TOKEN_EXPIRED = Disconnect(4002, "token_expired")
INTERNAL_ERROR = Disconnect(4003, "internal_error")
PING_TIMEOUT = Disconnect(4004, "ping_timeout")
UNAUTHORIZED = Disconnect(4501, "unauthorized")

ALL = (SHUTDOWN, SLOW_CONSUMER, TOKEN_EXPIRED, INTERNAL_ERROR, PING_TIMEOUT, UNAUTHORIZED)
