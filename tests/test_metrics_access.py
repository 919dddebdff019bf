"""Who may read ``/metrics``: loopback peers by default, the holders of a metrics key once one is set."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from pushhub.errors import Forbidden, Unauthorized
from pushhub.metrics_access import MetricsAccess

from .utils import TIMEOUT, HubProcess

KEY = "metrics-key-for-the-tests"


def test_loopback_peers_only_without_a_key() -> None:
    open_ = MetricsAccess([])
    for peer in ("127.0.0.1", "127.8.9.1", "::1", "::ffff:127.0.0.1"):
        open_.check(None, peer)
    for peer in ("10.0.0.1", "192.168.1.20", "2001:db8::1", "::ffff:10.0.0.1", "not an address", None):
        with pytest.raises(Forbidden, match="loopback"):
            open_.check(None, peer)


def test_a_key_is_required_from_everyone_once_set() -> None:
    keyed = MetricsAccess(["old-key", KEY])
    keyed.check(KEY, "10.0.0.1")
    keyed.check("old-key", "127.0.0.1")
    for token in (None, "", "wrong", KEY + "x"):
        with pytest.raises(Unauthorized, match="metrics key"):
            keyed.check(token, "127.0.0.1")


async def test_metrics_over_http(tmp_path: Path) -> None:
    plain = HubProcess(["--memory"], log_path=str(tmp_path / "plain.log")).start()
    keyed = HubProcess(["--memory", "--metrics-key", KEY], log_path=str(tmp_path / "keyed.log")).start()
    try:
        async with httpx.AsyncClient(timeout=TIMEOUT) as client:
            answer = await client.get(plain.url + "/metrics")
            assert answer.status_code == 200 and "pushhub_events_published_total" in answer.text
            for headers in ({}, {"authorization": "Bearer wrong"}):
                refused = await client.get(keyed.url + "/metrics", headers=headers)
                assert refused.status_code == 401 and refused.json()["error"]["code"] == "unauthorized"
            answer = await client.get(keyed.url + "/metrics", headers={"authorization": f"Bearer {KEY}"})
            assert answer.status_code == 200 and "pushhub_events_published_total" in answer.text
    finally:
        plain.stop()
        keyed.stop()
