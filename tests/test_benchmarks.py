"""The benchmarks work: their counting on plain frames, and the scripts themselves at tiny sizes
against real servers (pushhub, nginx+Nchan, the bare uvicorn app). Nothing here is timed: the
figures are the scripts' business; these tests check that every run completes and loses nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from benchmarks import comparisons, nchan, report, workers
from benchmarks.loadgen import NCHAN, PUSHHUB, SSESubscriber, Stats, WSSubscriber, events_body, ws_client_frame

from .utils import TIMEOUT

ROOT = Path(__file__).resolve().parent.parent
needs_nchan = pytest.mark.skipif(nchan.missing() is not None,
                                 reason=f"needs nginx with Nchan ({nchan.INSTALL}; scripts/test installs them)")


class Transport:
    def __init__(self) -> None:
        self.written = bytearray()

    def write(self, data: bytes) -> None:
        self.written += data

    def close(self) -> None:
        pass


def server_frame(payload: bytes) -> bytes:
    assert len(payload) < 126
    return bytes([0x81, len(payload)]) + payload


def data(seq: int) -> bytes:
    return b'{"t":%.6f,"s":%d}' % (1.5, seq)


async def test_sse_counts_by_sequence_number_in_any_order_and_split_anywhere() -> None:
    stats = Stats()
    sub = SSESubscriber(stats, b"")
    sub.connection_made(Transport())  # type: ignore[arg-type]
    stream = (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n: hi\n\n"
              + b"".join(b"id: 1:%d\ndata: %s\n\n" % (n, data(n)) for n in (1, 3, 2, 3)))
    for start in range(0, len(stream), 7):
        sub.data_received(stream[start : start + 7])
    assert sub.ready.done()
    assert (sub.received, sub.distinct, sub.duplicated) == (4, 3, 1)


async def test_sse_reads_pushhub_frames_inside_chunks() -> None:
    sub = SSESubscriber(Stats(), b"")
    sub.connection_made(Transport())  # type: ignore[arg-type]
    event = b'{"id":"evt_1","channel":"c","type":"bench.tick","data":%s}' % data(1)
    frame = b"id: e.1\ndata: %s\n\n" % event
    preamble = b"retry: 1000\nid: e.0\n\n"
    sub.data_received(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
                      b"%x\r\n%s\r\n%x\r\n%s\r\n" % (len(preamble), preamble, len(frame), frame))
    assert sub.ready.done()
    assert (sub.received, sub.distinct) == (1, 1)


async def test_websocket_ready_at_upgrade_for_nchan_and_at_subscribed_for_pushhub() -> None:
    upgrade = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n"
    plain = WSSubscriber(Stats(), b"", b"", False)
    plain.connection_made(Transport())  # type: ignore[arg-type]
    plain.data_received(upgrade + server_frame(data(1)) + server_frame(data(2))[:3])
    assert plain.ready.done()
    assert plain.distinct == 1
    plain.data_received(server_frame(data(2))[3:])
    assert plain.distinct == 2

    transport = Transport()
    subscribe = ws_client_frame(b'{"op":"subscribe","id":1,"channel":"c"}')
    hub = WSSubscriber(Stats(), b"", subscribe, True)
    hub.connection_made(transport)  # type: ignore[arg-type]
    hub.data_received(upgrade)
    assert transport.written == subscribe
    assert not hub.ready.done()
    hub.data_received(server_frame(b'{"op":"subscribed","id":1}')
                      + server_frame(b'{"op":"event","cursor":"e.1","data":%s}' % data(7)))
    assert hub.ready.done()
    assert (hub.distinct, hub.duplicated) == (1, 0)

    url = WSSubscriber(Stats(), b"", b"", True)  # pushhub subscribed by the URL: the reply comes with the 101
    url.connection_made(Transport())  # type: ignore[arg-type]
    url.data_received(upgrade[:-2])
    assert not url.ready.done()
    url.data_received(b"\r\n" + server_frame(b'{"op":"subscribed","id":null}'))
    assert url.ready.done()


def test_events_body_numbers_every_event() -> None:
    message = json.loads(events_body(NCHAN, 5))
    assert sorted(message) == ["s", "t"] and message["s"] == 5
    batch = json.loads(events_body(PUSHHUB, 10, 3))
    assert [event["data"]["s"] for event in batch["events"]] == [10, 11, 12]
    with pytest.raises(ValueError, match="one message per publish"):
        events_body(NCHAN, 1, 2)


def test_redis_commands_are_told_apart_by_who_sent_them_not_by_name() -> None:
    """``HGET`` is sent by the hub's webhook store and run inside the publish script: only the
    monitor's source says which (a command-name list counted the script's trims as round trips)."""
    lines = ['OK',
             '1764700000.000001 [3 127.0.0.1:50412] "evalsha" "4f1c" "2" "meta" "log"',
             '1764700000.000002 [3 lua] "hget" "ids" "evt_1"',
             '1764700000.000003 [3 lua] "HDEL" "ids" "evt_1"',
             '1764700000.000004 [3 127.0.0.1:50412] "hget" "webhook:cursors" "orders"',
             '1764700000.000005 [0 127.0.0.1:50999] "info" "commandstats"',
             '1764700000.000006 [3 unix:/tmp/redis.sock] "get" "version"']
    assert workers.monitored_commands(lines, 3) == {("client", "evalsha"): 1, ("lua", "hget"): 1, ("lua", "hdel"): 1,
                                                    ("client", "hget"): 1, ("client", "get"): 1}


def test_interleave_rotates_who_goes_first() -> None:
    order: list[str] = []
    runs = report.interleave(("a", "b", "c"), 4, lambda name: {"name": name, "n": order.append(name) or len(order)})
    assert order == ["a", "b", "c", "b", "c", "a", "c", "a", "b", "a", "b", "c"]
    assert [r["n"] for r in runs["a"]] == [1, 6, 8, 10]


def test_spread_and_ratio() -> None:
    ours, theirs = report.spread([3.0, 1.0, 2.0]), report.spread([4.0, 4.0, 8.0])
    assert ours == {"median": 2.0, "min": 1.0, "max": 3.0}
    assert report.ratio(ours, theirs) == 0.5
    assert report.ratio(ours, None) is None
    assert report.spread([]) is None


def bench(*args: str, timeout: float = 60 * TIMEOUT) -> list[dict[str, Any]]:
    """Run ``python -m benchmarks.…`` and return the JSON lines it printed."""
    done = subprocess.run([sys.executable, "-m", *args, "--no-save"], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


@needs_nchan
def test_peer_runs_both_servers_without_loss() -> None:
    records = bench("benchmarks.peer", "--quick", "--runs", "1", "--duration", "0.5", "--patience", str(TIMEOUT),
                    "--only", "fanout-ws-1000x100", "--only", "connect-sse-5000", "--only", "publish",
                    "--only", "per-user-sse-2000")
    assert [r["scenario"] for r in records] == ["fanout-ws-1000x100", "connect-sse-5000", "publish",
                                                "per-user-sse-2000"]
    clean = {"lost": 0, "duplicated": 0, "publish_errors": 0, "failed": 0, "connect_failed": 0}
    for record in records:
        assert record["losses"]["pushhub"] == clean, record["scenario"]
        nchan_losses = dict(record["losses"]["nchan"])
        if record["scenario"] == "publish":
            # Flat out, Nchan's 1000-message buffer outruns its one subscriber: what falls out of
            # it is lost, by Nchan's design, and counted (1 258 751 in a 10 s run); the pushhub
            # subscriber is pushed every event.
            nchan_losses["lost"] = 0
        assert nchan_losses == clean, record["scenario"]
    fanout, connect, publish, per_user = (r["figures"] for r in records)
    assert fanout["delivered_per_s"]["pushhub"]["median"] > 0 and fanout["delivered_per_s"]["nchan"]["median"] > 0
    for server in ("pushhub", "nchan"):  # every core's busy time holds the server's and the generator's too
        machine = fanout["machine_us_per_delivery"][server]["median"]
        assert machine > fanout["hub_us_per_delivery"][server]["median"], server
    assert connect["seconds"]["ratio"] is not None
    assert publish["publish_rate"]["ratio"] is not None
    assert per_user["hub_us_per_delivery"]["ratio"] is not None and per_user["p99_ms"]["ratio"] is not None


@needs_nchan
def test_nchan_command_stops_its_nginx_when_terminated() -> None:
    with subprocess.Popen([sys.executable, "-m", "benchmarks.nchan"], cwd=ROOT, stdout=subprocess.PIPE,
                          text=True) as command:
        assert command.stdout is not None
        started = command.stdout.readline()  # "nginx PID serving Nchan at URL ..."
        master = int(started.split()[1])
        command.terminate()
        assert command.wait(TIMEOUT) == 0
    with pytest.raises(ProcessLookupError):  # reaped by the command: no zombie left either
        os.kill(master, 0)


@needs_nchan
def test_nchan_listens_on_loopback_from_its_own_prefix() -> None:
    server = nchan.Nchan().start()
    try:
        assert server.prefix is not None
        with open(Path(server.prefix) / "nginx.conf") as f:
            config = f.read()
        assert f"listen 127.0.0.1:{server.port};" in config
        assert (Path(server.prefix) / "nginx.pid").read_text().strip() == str(server.pid)
        prefix = server.prefix
    finally:
        server.stop()
    assert not Path(prefix).exists()


def test_stack_floor_runs_every_contender() -> None:
    [record] = bench("benchmarks.floor", "stack", "--runs", "1", "--duration", "0.5")
    assert set(record["publish_rate"]) == {"bare", "http11", "http11-sqlite", "pushhub-memory", "pushhub-sqlite"}
    assert record["errors"] == {"bare": 0, "http11": 0, "http11-sqlite": 0, "pushhub-memory": 0, "pushhub-sqlite": 0}
    assert all(spread["median"] > 0 for spread in record["publish_rate"].values())


def test_stack_floor_paces_its_publishes_over_channels_when_given_a_rate() -> None:
    [record] = bench("benchmarks.floor", "stack", "--runs", "1", "--duration", "0.5", "--rate", "200",
                     "--channels", "10", "--in-flight", "2")
    assert (record["rate"], record["channels"]) == (200, 10)
    assert record["errors"] == {"bare": 0, "http11": 0, "http11-sqlite": 0, "pushhub-memory": 0, "pushhub-sqlite": 0}
    assert all(spread["median"] < 300 for spread in record["publish_rate"].values())  # paced, not flat out
    assert set(record["cpu_to_bare"]) == {"http11", "http11-sqlite", "pushhub-memory", "pushhub-sqlite"}


def test_client_floor_runs_every_contender() -> None:
    [record] = bench("benchmarks.floor", "client", "--runs", "1", "--requests", "50")
    assert set(record["per_s"]) == {"aiohttp", "httpx", "pushhub"}
    assert all(spread["median"] > 0 for spread in record["per_s"].values())


def test_client_floor_measures_a_base_commit_beside_this_tree() -> None:
    [record] = bench("benchmarks.floor", "client", "--runs", "1", "--requests", "50", "--base", "HEAD")
    assert set(record["per_s"]) == {"aiohttp", "httpx", "pushhub", "base"}
    assert record["base"] == "HEAD" and record["pushhub_ratio"]["base"] is not None


def test_mixed_measures_a_base_commit_beside_this_tree_and_delivers_every_webhook() -> None:
    records = bench("benchmarks.mixed", "--runs", "1", "--endpoints", "2", "--base", "HEAD", "--subscribers", "5",
                    "--duration", "0.5", "--rate", "20", "--procs", "1")
    runs, summary = records[:-1], records[-1]
    assert sorted((r["tree"], r["label"]) for r in runs) == [("base", "with"), ("base", "without"),
                                                            ("pushhub", "with"), ("pushhub", "without")]
    assert all(r["lost"] == 0 for r in runs)
    assert summary["base"] == "HEAD" and summary["webhooks_missing"] == summary["base_webhooks_missing"] == [0]
    assert summary["p99_ratio_median"] > 0 and summary["base_p99_ratio_median"] > 0


def test_sender_share_counts_the_statements_of_every_delivery_beside_a_base_commit() -> None:
    (record,) = bench("benchmarks.sender_share", "--runs", "1", "--endpoints", "2", "--batch", "5", "--events", "20",
                      "--base", "HEAD")
    assert set(record["main_thread_us_per_delivery"]) == {"pushhub", "base"}
    for statements in record["statements_per_delivery"].values():  # each delivery inserted, sent and recorded
        assert statements["INSERT webhook_deliveries"] == statements["INSERT webhook_attempts"] == 1.0
        assert statements["UPDATE webhook_deliveries"] == 1.0 and statements["COMMIT"] > 0


def test_paths_publish_through_every_way_without_error() -> None:
    (record,) = bench("benchmarks.paths", "--runs", "1", "--duration", "0.3", "--in-flight", "2", "--batch", "5")
    assert set(record["events_per_s"]) == {"single", "batch", "websocket", "ingest"}
    assert all(figure["median"] > 0 for figure in record["events_per_s"].values())
    assert record["errors"] == {"single": 0, "batch": 0, "websocket": 0, "ingest": 0}


def test_metrics_cost_runs_both_trees_without_loss() -> None:
    (record,) = bench("benchmarks.metrics_cost", "--rounds", "1", "--requests", "50", "--subscribers", "3",
                      "--duration", "0.5", "--rate", "10")
    assert set(record["figures"]["publishes_per_s"]) == {"metrics", "no-metrics"}
    assert all(run["lost"] == 0 and run["duplicated"] == 0 for runs in record["records"].values() for run in runs)


def test_send_floor() -> None:
    [record] = bench("benchmarks.floor", "send", "--sockets", "20", "--rounds", "5")
    assert record["sockets"] == 20 and record["us_per_send"] >= 0



def test_comparisons_tables_come_from_the_latest_saved_runs() -> None:
    def spread(median: float) -> dict[str, float]:
        return {"median": median, "min": median - 1, "max": median + 1}

    def peer(date: str, ours: float) -> dict[str, Any]:
        zero = {"lost": 0, "duplicated": 0, "publish_errors": 0, "failed": 0, "connect_failed": 0}
        return {"benchmark": "peer", "scenario": "publish", "date": date, "commit": "abc1234", "runs": 3,
                "figures": {"publish_rate": {"better": "higher", "pushhub": spread(ours), "nchan": spread(20000),
                                             "ratio": ours / 20000}},
                "losses": {"pushhub": zero, "nchan": zero},
                "records": {"pushhub": [{"loadavg_start": 2.0}], "nchan": [{"loadavg_start": 3.5}]}}

    stack = {"benchmark": "floor-stack", "date": "2026-12-01T16:30:00+00:00", "commit": "abc1234", "runs": 3,
             "in_flight": 32, "publish_rate": {"bare": spread(20000), "pushhub-memory": spread(5000),
                                               "pushhub-sqlite": spread(2500)},
             "records": {"bare": [{"loadavg": 1.0}]}}
    text = comparisons.markdown([peer("2026-12-01T15:00:00+00:00", 1000), peer("2026-12-01T16:20:00+00:00", 5000),
                                 {**peer("2026-12-01T16:25:00+00:00", 7), "quick": True}, stack])
    assert "| publish | publishes/s (higher is better) | 5 000 [4 999-5 001] | 20 000 [19 999-20 001] | 0.25 |" in text
    assert "2026-12-01 16:20 UTC, commit abc1234, 3 runs, load average 2.0-3.5" in text
    assert "| pushhub, SQLite log | 2 500 [2 499-2 501] | 0.12 |" in text
    assert "1 000 [" not in text


def test_connect_beside_the_bare_stack_and_a_base_commit() -> None:
    floor = bench("benchmarks.connect_floor", "--transport", "ws", "--connections", "50", "--runs", "1")
    assert [(r["tree"], r["connected"], r["failed"]) for r in floor] == [("bare", 50, 0), ("this", 50, 0)]
    based = bench("benchmarks.connect", "--transport", "sse", "--connections", "50", "--base", "HEAD")
    assert [(r["tree"], r["connected"], r["failed"]) for r in based] == [("base HEAD", 50, 0), ("this", 50, 0)]


@pytest.mark.parametrize("transport", ["ws", "sse"])
def test_connect_python_answers_every_connect_of_both_trees(transport: str) -> None:
    records = bench("benchmarks.connect_python", "--transport", transport, "--connections", "200", "--runs", "1",
                    "--base", "HEAD")
    assert [(r["tree"], r["connections"], r["answered"]) for r in records] == [("base HEAD", 200, 200),
                                                                              ("this", 200, 200)]
    assert all(r["us_per_connect"] > 0 for r in records)


@pytest.mark.parametrize("storage", ["sqlite", "memory"])
def test_publish_python_answers_every_publish_of_both_trees(storage: str) -> None:
    records = bench("benchmarks.publish_python", "--storage", storage, "--rounds", "20", "--runs", "1",
                    "--base", "HEAD")
    assert [(r["tree"], r["publishes"], r["accepted"]) for r in records] == [("base HEAD", 640, 640),
                                                                            ("this", 640, 640)]
    assert all(r["us_per_publish"] > 0 for r in records)
