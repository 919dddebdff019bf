"""Hypothesis-generated requests on every route of the HTTP API, in process: hostile paths, query
parameters, headers and bodies are answered 4xx with the error shape, never 5xx, and whatever was
accepted before is still there afterwards."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .fuzz_utils import ADMIN, InProcess, bodies, header_lists, json_values

AUTH = [(b"authorization", f"Bearer {ADMIN}".encode())]

# Route templates; {channel} and {id} are filled in by the strategies below.
ROUTES = [
    ("GET", "/healthz"), ("GET", "/metrics"), ("GET", "/v1/stats"),
    ("POST", "/v1/channels/{channel}/events"), ("GET", "/v1/channels/{channel}/events"),
    ("GET", "/v1/channels/{channel}"),
    ("POST", "/v1/session"), ("DELETE", "/v1/session"), ("GET", "/v1/admin/ingest/sources"),
    ("POST", "/v1/webhooks/endpoints"), ("GET", "/v1/webhooks/endpoints"),
    ("GET", "/v1/webhooks/endpoints/{id}"), ("PATCH", "/v1/webhooks/endpoints/{id}"),
    ("DELETE", "/v1/webhooks/endpoints/{id}"), ("POST", "/v1/webhooks/endpoints/{id}/rotate-secret"),
    ("POST", "/v1/webhooks/endpoints/{id}/replay"),
    ("GET", "/v1/webhooks/deliveries"), ("GET", "/v1/webhooks/deliveries/{id}"),
    ("POST", "/v1/webhooks/deliveries/{id}/replay"), ("GET", "/v1/webhooks/attempts"),
]

numbers = st.one_of(st.integers(-5, 2000).map(str), st.sampled_from(["", "1e3", "0x10", "²", "-0", " 5", "5 "]),
                    st.integers(0, 10**40).map(str), st.integers(1, 6000).map(lambda n: "9" * n),
                    st.integers(1, 6000).map(lambda n: "0" * n + "7"))
times = st.one_of(st.sampled_from(["9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+23:59", "2026-01-31T12:00:00Z",
                                   "2026-13-01T00:00:00Z", "yesterday", ""]), st.text(max_size=30))
cursors = st.one_of(st.sampled_from(["zzzz.999999", "a.0", "x.99999999999999999999", "", "@", "a@b.1,c"]),
                    st.text(max_size=40))
channels = st.one_of(st.sampled_from(["orders", "public:news", "a" * 300, "bad name", "%00", "x@y", "."]),
                     st.from_regex(r"[A-Za-z0-9_.:\-]{1,20}", fullmatch=True))
query_values = st.one_of(numbers, times, cursors, st.text(max_size=20))
queries = st.dictionaries(st.sampled_from(["limit", "after", "before", "status", "endpoint", "event", "delivery",
                                           "token", "channel"]), query_values, max_size=4)
event_objects = st.fixed_dictionaries({}, optional={
    "type": st.one_of(st.sampled_from(["order.created", "", "x" * 300]), st.text(max_size=10)),
    "time": times, "id": st.one_of(st.text(max_size=150), st.integers(-(2**63), 2**63 - 1)), "data": json_values,
    "meta": json_values,
})
webhook_bodies = st.fixed_dictionaries({}, optional={
    "url": st.sampled_from(["https://example.invalid/hook", "http://10.1/", "http://0x7f000001/", "ftp://x/",
                            "http://[::ffff:127.0.0.1]/", "https://user:pw@example.invalid/", "not a url", ""]),
    "channels": st.lists(channels, max_size=3) | json_values, "types": st.lists(st.text(max_size=8), max_size=3),
    "enabled": st.booleans() | json_values, "rate_limit": json_values, "secret": json_values,
    "description": json_values, "headers": json_values, "ordered": json_values, "max_concurrency": json_values,
    "since": times, "after": cursors, "channel": channels, "failed": json_values, "overlap": json_values,
})
json_bodies = st.one_of(bodies, event_objects.map(orjson.dumps), webhook_bodies.map(orjson.dumps),
                        st.lists(event_objects, max_size=3).map(lambda events: orjson.dumps({"events": events})))


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcess]:
    hub = InProcess(tmp_path_factory.mktemp("api-fuzz"), "")
    yield hub
    hub.close()


@pytest.fixture(scope="module")
def kept(hub: InProcess) -> dict[str, Any]:
    """An event and a (disabled) webhook endpoint accepted before the fuzzing starts."""
    event = hub.request("POST", "/v1/channels/kept/events", headers=AUTH, json={"type": "kept", "data": 1})
    assert event.status_code == 202, event.text
    endpoint = hub.request("POST", "/v1/webhooks/endpoints", headers=AUTH,
                           json={"url": "https://example.invalid/hook", "enabled": False})
    assert endpoint.status_code == 201, endpoint.text
    return {"event": event.json(), "endpoint": endpoint.json()["id"]}


def fill(template: str, channel: str, id_: str) -> str:
    return template.replace("{channel}", quote(channel, safe=":@")).replace("{id}", quote(id_, safe=""))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(route=st.sampled_from(ROUTES), channel=channels, id_=st.one_of(st.just("kept"), st.text(max_size=20)),
       query=queries, headers=header_lists, body=json_bodies, admin=st.booleans())
def test_api_never_5xx(hub: InProcess, kept: dict[str, Any], route: tuple[str, str], channel: str, id_: str,
                       query: dict[str, str], headers: list[tuple[bytes, bytes]], body: bytes, admin: bool) -> None:
    method, template = route
    path = fill(template, channel, kept["endpoint"] if id_ == "kept" else id_)
    sent = [(k, v) for k, v in headers if k not in (b"content-length", b"authorization")] + (AUTH if admin else [])
    response = hub.request(method, path, params=query, headers=sent,
                           content=body if method in ("POST", "PATCH") else None)
    assert response.status_code < 500, (method, path, query, response.text)
    if response.status_code >= 400 and response.headers.get("content-type", "").startswith("application/json"):
        error = response.json()["error"]
        assert error["code"] and error["message"], response.text


def test_accepted_data_survives_the_fuzzing(hub: InProcess, kept: dict[str, Any]) -> None:
    events = hub.request("GET", "/v1/channels/kept/events", headers=AUTH).json()["events"]
    assert events[0]["id"] == kept["event"]["id"] and events[0]["offset"] == 1
