"""The dashboard's pure parts: session tickets and the stats a live view has not seen yet."""

from __future__ import annotations

from pushhub import dashboard_ticket
from pushhub.stats import Stats

KEY, OTHER = b"admin-key-one", b"admin-key-two"


def test_ticket_names_the_admin_key_that_signed_it() -> None:
    ticket = dashboard_ticket.issue(KEY, 2000)
    assert dashboard_ticket.admin_key(ticket, [OTHER, KEY], now=1999) == KEY
    assert dashboard_ticket.admin_key(ticket, [OTHER], now=1999) is None  # that key was removed


def test_ticket_refused_when_expired_tampered_or_malformed() -> None:
    ticket = dashboard_ticket.issue(KEY, 2000)
    expires, mac = ticket.split(".")
    assert dashboard_ticket.admin_key(ticket, [KEY], now=2000) is None
    assert dashboard_ticket.admin_key(f"3000.{mac}", [KEY], now=1999) is None  # expiry moved
    flipped = mac[:-1] + ("1" if mac[-1] == "0" else "0")
    assert dashboard_ticket.admin_key(f"{expires}.{flipped}", [KEY], now=1999) is None
    for bad in [None, "", "2000", ".abc", "-1.abc", "x.abc", "9" * 13 + ".abc", f"{expires}.é"]:
        assert dashboard_ticket.admin_key(bad, [KEY], now=1999) is None


def test_rates_after_a_time_are_only_the_newer_samples() -> None:
    stats = Stats(clock=lambda: 0.0)
    for second in range(1, 5):
        stats.published += second
        stats.delivered += 2 * second
        stats.sample(float(second))
    assert [r["time"] for r in stats.rates()] == [2.0, 3.0, 4.0]
    newer = stats.snapshot({"sse_connections": 1}, after=3.0)
    assert newer["rates"] == [{"time": 4.0, "published": 4.0, "delivered": 8.0}]
    assert newer["sse_connections"] == 1 and newer["published"] == 10
    assert stats.snapshot({}, after=4.0)["rates"] == []
