"""Writes the data directory of release c5059d1 (the last before the package rename) that
``tests/test_upgrade.py`` opens with the current code.

Run from the repository root: ``python tests/data/c5059d1/make.py``. It unpacks that commit with
``git archive``, runs its hub (``python -m hub serve``), publishes events (one with an
``Idempotency-Key``), ingests a webhook (a dedupe record), registers a webhook endpoint that cannot
be reached (pending deliveries, each tried once; then the endpoint is disabled), stops the hub with
SIGTERM and copies ``pushhub.db``, ``dedupe.db`` and ``manifest.json`` (what was written, and the
answers the old hub gave) here.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import httpx

COMMIT = "c5059d1"
HERE = pathlib.Path(__file__).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        src, data = pathlib.Path(tmp, "src"), pathlib.Path(tmp, "data")
        src.mkdir()
        archive = subprocess.run(["git", "archive", COMMIT], check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(src)], input=archive, check=True)
        ingest = pathlib.Path(tmp, "ingest.toml")
        ingest.write_text('[sources.backend]\nscheme = "none"\nchannel = "backend"\nid = "header:X-Request-Id"\n')
        port = free_port()
        hub = subprocess.Popen(
            [sys.executable, "-m", "hub", "serve", "--port", str(port), "--data-dir", str(data),
             "--ingest-config", str(ingest), "--webhook-allow-network", "127.0.0.0/8"],
            cwd=src, env={**os.environ, "PYTHONPATH": str(src)})
        url = f"http://127.0.0.1:{port}"
        try:
            manifest = write(url, free_port())
        finally:
            hub.send_signal(signal.SIGTERM)
            hub.wait(30)
        for name in ("pushhub.db", "dedupe.db"):
            assert not pathlib.Path(data, name + "-wal").exists(), "the old hub did not checkpoint on exit"
            shutil.copy(data / name, HERE / name)
        (HERE / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")


def write(url: str, closed_port: int) -> dict[str, object]:
    with httpx.Client(base_url=url, timeout=10) as c:
        for _ in range(100):
            try:
                if c.get("/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        endpoint = c.post("/v1/webhooks/endpoints", json={
            "url": f"http://127.0.0.1:{closed_port}/hook", "channels": ["orders"], "retry_schedule": "1h"}).json()
        published = [c.post("/v1/channels/orders/events", json={"type": "order.created", "data": {"n": n}}).json()
                     for n in range(1, 4)]
        keyed_body = '{"type":"order.paid","data":{"n":4}}'  # a retry must repeat these exact bytes
        keyed = c.post("/v1/channels/orders/events", content=keyed_body, headers={"idempotency-key": "pay-4"}).json()
        batch_body = '{"events":[{"type":"news","data":0},{"type":"news","data":1}]}'
        batch = c.post("/v1/channels/news/events", content=batch_body, headers={"idempotency-key": "news-1"}).json()
        ingested = c.post("/v1/ingest/backend", json={"event": "x"}, headers={"x-request-id": "req-1"}).json()
        cursor = published[1]["cursor"]  # a cursor handed out before the upgrade, in the middle of the log
        for _ in range(100):
            deliveries = c.get("/v1/webhooks/deliveries").json()["data"]
            if len(deliveries) == 4 and all(d["attempts"] >= 1 for d in deliveries):
                break
            time.sleep(0.1)
        # Disabled, so that no hub sends them again: the deliveries stay pending, as they were.
        c.patch(f"/v1/webhooks/endpoints/{endpoint['id']}", json={"enabled": False}).raise_for_status()
        history = {ch: c.get(f"/v1/channels/{ch}/events").json()["events"] for ch in ("orders", "news", "backend")}
        states = {ch: c.get(f"/v1/channels/{ch}").json() for ch in ("orders", "news", "backend")}
    return {"commit": COMMIT, "endpoint": endpoint, "published": published, "keyed": keyed,
            "keyed_body": keyed_body, "batch": batch, "batch_body": batch_body, "ingested": ingested, "cursor": cursor,
            "deliveries": deliveries, "history": history, "states": states}


if __name__ == "__main__":
    main()
