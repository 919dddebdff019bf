"""Pure modules, tested on plain values."""

from __future__ import annotations

import base64
import os

import msgpack
import orjson
import pytest
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from pushhub import config, cursor, protocol, sse
from pushhub.channels import compile_patterns, validate_channel
from pushhub.cursor import Position
from pushhub.errors import BadChannel, BadCursor, BadEvent, BadRequest
from pushhub.events import Event, EventDraft, event_time, format_time, new_event_id, parse_publish_body
from pushhub.hub import BAD_CURSOR, EPOCH_CHANGED, HISTORY_TRIMMED, _resume_point
from pushhub.retention import Retention, RetentionPolicy, parse_duration


def test_channel_names() -> None:
    assert validate_channel("orders.eu-1:payments_v2") == "orders.eu-1:payments_v2"
    for bad in ["", "a b", "a/b", "a@b", "a,b", "x" * 129, "é"]:
        with pytest.raises(BadChannel):
            validate_channel(bad)


def test_patterns() -> None:
    assert compile_patterns([]) is None
    assert compile_patterns(["*"]) is None
    match = compile_patterns(["payment.*", "refund.created"])
    assert match is not None
    assert match("payment.created") and match("payment.") and match("refund.created")
    assert not match("payments.created") and not match("refund.created.x")
    with pytest.raises(BadRequest):
        compile_patterns(["bad pattern"])


def test_cursor_single_and_many() -> None:
    one = cursor.encode({"a": Position("ep1", 7)}, ["a"])
    assert one == "ep1.7"
    assert cursor.decode(one, ["a"]) == {"a": Position("ep1", 7)}
    many = cursor.encode({"a": Position("e1", 1), "b:x": Position("e2", 0)}, ["a", "b:x"])
    assert many == "a@e1.1,b:x@e2.0"
    assert cursor.decode(many, ["a", "b:x", "c"]) == {"a": Position("e1", 1), "b:x": Position("e2", 0)}


def test_new_epochs_are_valid_cursor_epochs_and_differ() -> None:
    epochs = {cursor.new_epoch() for _ in range(1000)}
    assert len(epochs) == 1000
    assert all(len(e) == cursor.EPOCH_LENGTH and cursor.decode(f"{e}.3", ["c"]) == {"c": Position(e, 3)}
               for e in epochs)


@pytest.mark.parametrize("bad", ["", "x", "ep.", "ep.-1", "ep.01", "EP.1", "a@ep.1,", "zz@ep.1", "a@@ep.1",
                                 "a@ep.1x", "x" * 20000])
def test_cursor_garbage(bad: str) -> None:
    with pytest.raises(BadCursor):
        cursor.decode(bad, ["a", "b"] if "@" in bad else ["a"])


def test_cursor_single_form_on_a_wider_subscription_is_matched_by_epoch() -> None:
    epochs = {"a": "e1", "b": "e2"}
    assert cursor.decode_widened("e2.5", ["a", "b"], epochs) == {"b": Position("e2", 5)}
    with pytest.raises(BadCursor):
        cursor.decode_widened("e9.5", ["a", "b"], epochs)


def test_resume_point() -> None:
    assert _resume_point(Position("e", 5), "e", top=10, earliest=3) == (5, None)
    assert _resume_point(Position("e", 2), "e", top=10, earliest=3) == (2, None)
    assert _resume_point(Position("e", 1), "e", top=10, earliest=3) == (2, HISTORY_TRIMMED)
    assert _resume_point(Position("e", 11), "e", top=10, earliest=3) == (10, BAD_CURSOR)
    assert _resume_point(Position("old", 5), "e", top=10, earliest=3) == (2, EPOCH_CHANGED)
    assert _resume_point(Position("e", 10), "e", top=10, earliest=11) == (10, None)


def test_sse_frames_parse_back() -> None:
    parser = sse.Parser()
    stream = sse.preamble(2000, "e.0") + sse.event_frame("e.1", b'{"a":1}') + sse.HEARTBEAT
    stream += sse.control_frame("reset", {"channel": "c"}, id="e.5")
    messages = parser.feed(stream[:7].decode()) + parser.feed(stream[7:].decode())
    assert [(m.event, m.data, m.id) for m in messages] == [
        ("message", '{"a":1}', "e.1"), ("reset", '{"channel":"c"}', "e.5")]
    assert parser.retry == 2000 and parser.last_id == "e.5"


def test_sse_id_only_frame_sets_last_id_without_an_event() -> None:
    parser = sse.Parser()
    assert parser.feed("id: e.3\n\n") == []
    assert parser.last_id == "e.3"


def test_http_chunk() -> None:
    assert sse.chunk(b"hello") == b"5\r\nhello\r\n"
    assert sse.chunk(b"x" * 300).startswith(b"12c\r\n")


@pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536])
@pytest.mark.parametrize("binary", [False, True])
async def test_ws_frame_is_read_by_the_websockets_library(size: int, binary: bool) -> None:
    payload = b"a" * size
    reader = StreamReader()
    reader.feed_data(protocol.ws_frame(payload, binary=binary))
    reader.feed_eof()
    parsing = Frame.parse(reader.read_exact, mask=False)
    with pytest.raises(StopIteration) as done:
        next(parsing)
    frame = done.value.value
    assert frame.opcode == (Opcode.BINARY if binary else Opcode.TEXT) and frame.data == payload and frame.fin


def test_event_messages_are_identical_in_both_formats() -> None:
    event = Event("c", "ep", 3, EventDraft("evt_1", "t.x", "2026-01-01T00:00:00.000Z", {"k": [1]}, {"m": "v"}))
    as_json = orjson.loads(protocol.event_json(event, "ep.3"))
    as_msgpack = msgpack.unpackb(protocol.event_msgpack(event, "ep.3"))
    assert as_json == as_msgpack == {"op": "event", "channel": "c", "cursor": "ep.3", "event": event.as_dict()}


def test_protocol_envelope() -> None:
    message = protocol.decode('{"op": "ping", "id": 7}', binary=False)
    assert protocol.validate(message) == "ping" and protocol.message_id(message) == 7
    with pytest.raises(BadRequest):
        protocol.validate(protocol.decode('{"op": "fly"}', binary=False))
    with pytest.raises(BadRequest):
        protocol.validate({"op": "ping", "id": [1]})
    with pytest.raises(BadRequest):
        protocol.decode("[1]", binary=False)
    with pytest.raises(BadRequest):
        protocol.decode(b"\xc1", binary=True)


def test_publish_body() -> None:
    drafts, batch = parse_publish_body(b'{"type": "a.b", "data": {"x": 1}, "time": "2026-01-01T01:00:00+01:00"}')
    assert not batch and drafts[0].type == "a.b" and drafts[0].time == "2026-01-01T00:00:00.000Z"
    drafts, batch = parse_publish_body(b'{"events": [{"type": "a"}, {"type": "b", "id": "mine"}]}')
    assert batch and [d.type for d in drafts] == ["a", "b"] and drafts[1].id == "mine"
    for bad in [b'{"events": [{"type": "a"}, {}]}', b'{"type": "a", "meta": 1}', b'{"type": "a", "id": ""}',
                b'{"type": "a", "time": "2026-01-01T00:00:00"}', b'{"type": "a b"}']:
        with pytest.raises(BadEvent):
            parse_publish_body(bad)


def test_event_time_is_the_millisecond_of_now() -> None:
    assert event_time(1767225599.9996) == format_time(1767225599.999) == "2025-12-31T23:59:59.999Z"
    assert event_time(1767225599.9999) == "2025-12-31T23:59:59.999Z"
    assert event_time(1767225600.0004) == "2026-01-01T00:00:00.000Z"
    assert EventDraft.from_json({"type": "t"}, now=1767225600.0004).time == "2026-01-01T00:00:00.000Z"


def test_event_ids_are_distinct_and_start_after_fork_with_a_new_prefix() -> None:
    ids = [new_event_id() for _ in range(1000)]
    assert len(set(ids)) == 1000 and all(i.startswith("evt_") and len(i) == 28 for i in ids)
    assert len({i[12:21] for i in ids}) == 1  # the process's random part
    read, write = os.pipe()
    child = os.fork()
    if child == 0:
        os.write(write, new_event_id().encode())
        os._exit(0)
    os.waitpid(child, 0)
    assert os.read(read, 100).decode()[12:21] != ids[0][12:21]


def test_stored_event_round_trip() -> None:
    draft = EventDraft.from_json({"type": "t", "data": [1, "two"], "meta": {"a": "b"}})
    event = Event.from_stored("c", "ep", 9, draft.stored())
    assert (event.id, event.type, event.data, event.meta, event.offset) == (draft.id, "t", [1, "two"], {"a": "b"}, 9)


def test_retention_rules() -> None:
    assert parse_duration("90s") == 90 and parse_duration("7d") == 7 * 86400
    policy = RetentionPolicy(["orders.*=5000/7d", "tmp:*=10/1m"], Retention(100, 3600))
    assert policy.for_channel("orders.eu") == Retention(5000, 7 * 86400)
    assert policy.for_channel("tmp:x") == Retention(10, 60)
    assert policy.for_channel("other") == Retention(100, 3600)
    for bad in ["orders", "a=0/1h", "a=10/1y", "a=10"]:
        with pytest.raises(BadRequest):
            RetentionPolicy([bad])


def test_settings_from_flags_and_environment() -> None:
    import argparse

    parser = argparse.ArgumentParser()
    config.add_arguments(parser)
    args = parser.parse_args(["--port", "9000", "--publisher-key", "a", "--publisher-key", "b", "--memory"])
    settings = config.load(args, {"PUSHHUB_PORT": "1", "PUSHHUB_HEARTBEAT": "2.5"})
    assert (settings.port, settings.publisher_keys) == (9000, ["a", "b"])
    assert (settings.memory, settings.heartbeat) == (True, 2.5)
    assert config.load(None, {"PUSHHUB_PUBLISHER_KEYS": "x, y"}).publisher_keys == ["x", "y"]
    with pytest.raises(BadRequest):
        config.load(None, {"PUSHHUB_HOST": "0.0.0.0"})
    with pytest.raises(BadRequest):
        config.load(None, {"PUSHHUB_PORT": "eighty"})


def test_readme_documents_every_setting() -> None:
    import dataclasses
    import pathlib

    readme = (pathlib.Path(__file__).parent.parent / "README.md").read_text()
    for field in dataclasses.fields(config.Settings):
        assert f"`PUSHHUB_{field.name.upper()}`" in readme, field.name
        flag = config._flag(field.name)
        assert f"`{flag}`" in readme or f"`{flag} " in readme, field.name


def test_stats_rates_between_samples() -> None:
    from pushhub.stats import Stats

    stats = Stats(clock=lambda: 0.0)
    stats.sample(10.0)
    stats.published, stats.delivered = 5, 500
    stats.sample(12.0)
    assert stats.rates() == [{"time": 12.0, "published": 2.5, "delivered": 250.0}]


def test_numbers_from_untrusted_text() -> None:
    from pushhub.numbers import is_decimal

    assert is_decimal("0") and is_decimal("1234")
    assert not is_decimal("²") and not is_decimal("") and not is_decimal("-1") and not is_decimal("\u0661")


def test_bounded_numbers_never_parse_past_their_bound() -> None:
    from pushhub.numbers import bounded

    assert bounded("0" * 5000 + "42", 100) == 42
    assert bounded("9" * 5000, 100) == bounded("101", 100) == bounded("1000", 100) == 101
    assert bounded("100", 100) == 100 and bounded("0", 100) == 0
    assert bounded("", 100) is None and bounded("1e3", 100) is None and bounded("²", 100) is None


def test_time_outside_the_years_datetime_holds() -> None:
    from pushhub.errors import BadEvent
    from pushhub.events import parse_time

    assert parse_time("9999-12-31T23:59:59+00:00") == "9999-12-31T23:59:59.000Z"
    for value in ("9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+00:01"):
        with pytest.raises(BadEvent, match="years 1-9999"):
            parse_time(value)


def test_readme_documents_every_disconnect_code() -> None:
    import pathlib

    from pushhub import disconnect

    readme = (pathlib.Path(__file__).parent.parent / "README.md").read_text()
    for code in disconnect.ALL:
        assert f"| {code.code} | `{code.reason}` | {'yes' if code.reconnect else 'no'} |" in readme, code


def test_generated_event_ids_sort_in_the_order_they_were_made() -> None:
    times = [0.0, 0.001, 1.0, 1_700_000_000.0, 1_700_000_000.001, 4_102_444_800.0]  # to 2100
    ids = [new_event_id(t) for t in times]
    assert sorted(ids) == ids and len(set(ids)) == len(ids)
    assert all(i.startswith("evt_") and len(i) == 28 and i[4:].replace("-", "").replace("_", "").isalnum()
               for i in ids)
    assert new_event_id(5.0)[:12] == new_event_id(5.0)[:12] and new_event_id(5.0) != new_event_id(5.0)
    assert EventDraft.from_json({"type": "t"}, now=1.0).id[:12] == new_event_id(1.0)[:12]


def test_generated_event_ids_hold_the_millisecond_the_process_part_and_the_counter() -> None:
    unsort = bytes.maketrans(b"-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz",
                             b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    first, second, later = (base64.urlsafe_b64decode(new_event_id(t)[4:].encode().translate(unsort))
                            for t in (1_700_000_000.0011, 1_700_000_000.0019, 1_700_000_000.002))
    assert first[:6] == second[:6] == (1_700_000_000_001).to_bytes(6, "big")
    assert later[:6] == (1_700_000_000_002).to_bytes(6, "big")
    assert first[6:13] == second[6:13] == later[6:13]
    assert int.from_bytes(second[13:]) == int.from_bytes(first[13:]) + 1
