"""The OpenAPI document: valid, complete (every route the app serves), and true (schemathesis
fuzzes a running hub from it, with response checks; real WebSocket and SSE messages match their
schemas)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import jsonschema
import orjson
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from openapi_spec_validator import validate
from referencing import Registry, Resource
from schemathesis import checks
from starlette.routing import Route

from pushhub import dashboard
from pushhub.app import PushHub
from pushhub.config import load
from pushhub.openapi import document

from .utils import TIMEOUT, HubProcess, sse_stream, ws_client

DOCUMENT = document()
# Streams the PushHub ASGI app dispatches ahead of its Starlette router.
DISPATCHED = {("get", "/v1/sse"), ("get", "/v1/ws"), ("get", dashboard.SSE_PATH)}


def served_routes(app: PushHub) -> set[tuple[str, str]]:
    out = set(DISPATCHED)
    for route in app.api.routes:
        assert isinstance(route, Route), f"{route!r}: only plain routes can be listed"
        out.update((method.lower(), route.path) for method in route.methods or () if method != "HEAD")
    return out


def documented() -> set[tuple[str, str]]:
    return {(method, path) for path, item in DOCUMENT["paths"].items() for method in item}


def test_document_is_valid_openapi_3_1() -> None:
    assert DOCUMENT["openapi"] == "3.1.0"
    validate(DOCUMENT)
    for name, schema in DOCUMENT["components"]["schemas"].items():
        try:
            jsonschema.Draft202012Validator.check_schema(schema)
        except jsonschema.SchemaError as exc:
            pytest.fail(f"components.schemas.{name}: {exc.message}")


def test_every_served_route_is_documented_and_every_documented_one_served(tmp_path: Any) -> None:
    app = PushHub(load(environ={"PUSHHUB_DATA_DIR": str(tmp_path)}))
    served = served_routes(app)
    assert sorted(served - documented()) == [], "add these routes to pushhub/openapi/paths.py"
    assert sorted(documented() - served) == [], "documented but not served"


def test_every_error_answer_has_the_error_shape() -> None:
    for path, item in DOCUMENT["paths"].items():
        for method, operation in item.items():
            for status, response in operation["responses"].items():
                if int(status) >= 400 and path not in ("/healthz", "/readyz"):
                    schema = response["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/Error"}, (method, path, status)


# A running hub against its document ---------------------------------------------------------

@pytest.fixture(scope="module")
def open_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProcess]:
    data = tmp_path_factory.mktemp("openapi")
    hub = HubProcess(["--data-dir", str(data)], log_path=str(data / "hub.log")).start()
    yield hub
    hub.stop()


def test_the_hub_serves_its_document_and_docs_page(open_hub: HubProcess) -> None:
    answer = httpx.get(open_hub.url + "/openapi.json", timeout=TIMEOUT)
    assert answer.status_code == 200
    assert answer.json() == orjson.loads(orjson.dumps(DOCUMENT))
    page = httpx.get(open_hub.url + "/docs", timeout=TIMEOUT)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    for asset in ("swagger-ui.css", "swagger-ui-bundle.js", "docs.js"):
        assert f"/docs/{asset}" in page.text
        loaded = httpx.get(f"{open_hub.url}/docs/{asset}", timeout=TIMEOUT)
        assert loaded.status_code == 200 and len(loaded.content) > 20, asset
    assert "/openapi.json" in httpx.get(open_hub.url + "/docs/docs.js", timeout=TIMEOUT).text
    assert "http" not in page.text.replace("http-equiv", ""), "the page loads nothing from elsewhere"


def _fuzzed() -> Any:
    schema = schemathesis.openapi.from_dict(DOCUMENT)
    streaming = [path for path, item in DOCUMENT["paths"].items()
                 if any(op.get("x-pushhub-streaming") for op in item.values())]
    return schema.exclude(path=streaming)


FUZZ_CHECKS: list[Callable[..., Any]] = [checks.not_a_server_error, checks.status_code_conformance,
                                         checks.content_type_conformance, checks.response_schema_conformance]


@_fuzzed().parametrize()
@settings(max_examples=int(os.environ.get("PUSHHUB_FUZZ_EXAMPLES", "25")), deadline=None,
          suppress_health_check=list(HealthCheck))
def test_fuzz_every_operation_no_5xx_and_answers_match_the_document(case: Any, open_hub: HubProcess) -> None:
    case.call_and_validate(base_url=open_hub.url, checks=FUZZ_CHECKS, timeout=4 * TIMEOUT)


@pytest.mark.parametrize("path", ["/v1/webhooks/deliveries", "/v1/webhooks/attempts"])
def test_a_page_cursor_beyond_64_bits_is_a_bad_request(open_hub: HubProcess, path: str) -> None:
    """Found by the fuzz test: SQLite cannot compare such a number, which answered 500."""
    answer = httpx.get(open_hub.url + path, params={"before": str(2**64)}, timeout=TIMEOUT)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["code"] == "bad_request"


# WebSocket and SSE messages against their schemas ---------------------------------------------

def _validator(name: str) -> jsonschema.Draft202012Validator:
    registry: Registry[Any] = Registry().with_resource("urn:pushhub", Resource.from_contents(
        {**DOCUMENT, "$schema": "https://json-schema.org/draft/2020-12/schema"}))
    return jsonschema.Draft202012Validator({"$ref": f"urn:pushhub#/components/schemas/{name}"}, registry=registry)


async def test_websocket_messages_match_their_schemas(open_hub: HubProcess) -> None:
    client_schema, server_schema = _validator("WsClientMessage"), _validator("WsServerMessage")
    sent = [
        {"op": "subscribe", "id": 1, "channel": "schema-ws", "types": ["t.*"]},
        {"op": "publish", "id": "two", "channel": "schema-ws", "event": {"type": "t.made", "data": {"n": 1}}},
        {"op": "ping", "id": 3},
        {"op": "unsubscribe", "id": 4, "channel": "schema-ws"},
    ]
    ops = set()
    async with ws_client(open_hub.ws_url) as client:
        for message in sent:
            client_schema.validate(message)
            await client.ws.send(orjson.dumps(message).decode())
        await client.ws.send(orjson.dumps({"op": "unsubscribe", "id": 5, "channel": "schema-ws"}).decode())
        while "error" not in ops:
            received = orjson.loads(await asyncio.wait_for(client.ws.recv(), TIMEOUT))
            server_schema.validate(received)
            ops.add(received["op"])
    assert ops == {"subscribed", "published", "event", "pong", "unsubscribed", "error"}


async def test_sse_events_match_their_schemas(tmp_path: Any) -> None:
    hub = HubProcess(["--data-dir", str(tmp_path)]).start()
    try:
        async with sse_stream(hub.url, ["schema-sse"]) as stream, httpx.AsyncClient(timeout=TIMEOUT) as client:
            await client.post(hub.url + "/v1/channels/schema-sse/events", json={"type": "t.made", "data": [1]})
            message = await stream.next()
            assert message.event == "message"
            _validator("SseMessage").validate(orjson.loads(message.data))
            assert hub.process is not None
            hub.process.send_signal(15)
            goodbye = await stream.next()
            assert goodbye.event == "disconnect"
            _validator("SseDisconnect").validate(orjson.loads(goodbye.data))
    finally:
        hub.stop()


def test_a_wrong_message_fails_its_schema() -> None:
    with pytest.raises(jsonschema.ValidationError):
        _validator("WsClientMessage").validate({"op": "subscribe", "channel": "bad channel!"})
    with pytest.raises(jsonschema.ValidationError):
        _validator("WsServerMessage").validate({"op": "event", "channel": "c", "cursor": "a.1"})
