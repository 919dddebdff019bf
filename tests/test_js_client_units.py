"""The browser client's unit tests (clients/js/test, node:test) with scripted EventSource,
WebSocket and storage; the real ones are exercised by tests/test_browser_client.py."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from .utils import TIMEOUT

TESTS = Path(__file__).resolve().parent.parent / "clients" / "js" / "test" / "pushhub.test.mjs"


@pytest.mark.skipif(shutil.which("node") is None, reason="needs Node.js (scripts/test installs it)")
def test_js_unit_tests_pass() -> None:
    done = subprocess.run(["node", "--test", str(TESTS)], capture_output=True, text=True, timeout=4 * TIMEOUT)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "# fail 0" in done.stdout
