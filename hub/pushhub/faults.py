"""Test-only fault points: never set ``PUSHHUB_TEST_FAULT`` outside a test.

Read once when the hub starts. ``PUSHHUB_TEST_FAULT=kill-after-append:N`` makes the process kill
itself with SIGKILL right after its ``N``-th append is durable, before the publisher is answered or
the webhook intake runs: the crash tests use it to show that a retried request is in the log once.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Mapping

VARIABLE = "PUSHHUB_TEST_FAULT"
KILL_AFTER_APPEND = "kill-after-append:"


def nothing() -> None:
    return None


def after_append(environ: Mapping[str, str] = os.environ) -> Callable[[], None]:
    """What to call after each append: nothing, unless a fault point is set."""
    spec = environ.get(VARIABLE, "")
    if not spec.startswith(KILL_AFTER_APPEND):
        return nothing
    remaining = [int(spec.removeprefix(KILL_AFTER_APPEND))]

    def count() -> None:
        remaining[0] -= 1
        if remaining[0] == 0:
            os.kill(os.getpid(), signal.SIGKILL)
    return count
