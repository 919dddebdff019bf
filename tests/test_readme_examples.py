"""Every shell example of the README that talks to a hub runs as written against a running one
(only the port is the test hub's): each command exits 0 and answers no error; a streaming command
(``curl -N``, ``pushhub listen``, a command sent to the background) must start streaming."""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from .utils import TIMEOUT, HubProcess

README = Path(__file__).resolve().parent.parent / "README.md"
TALKS_TO_HUB = re.compile(r"\bcurl\b.*\b(127\.0\.0\.1|localhost):8000|^pushhub (publish|listen|endpoints|deliveries|"
                          r"attempts)\b")
STREAMING = re.compile(r"\bcurl -N\b|^pushhub listen\b|&\s*(#.*)?$")
PUBLISHER_KEY, ADMIN_KEY = "readme-publisher-key", "readme-admin-key-of-32-bytes-or-more"


def commands(block: str) -> list[str]:
    """The block's commands, continuation lines joined; comment lines dropped."""
    out: list[str] = []
    pending = ""
    for line in block.splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        pending += line
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        out.append(pending.strip())
        pending = ""
    return out


def examples() -> Iterator[tuple[int, list[str]]]:
    text = README.read_text()
    for match in re.finditer(r"^```sh\n(.*?)^```", text, flags=re.S | re.M):
        found = commands(match.group(1))
        if any(TALKS_TO_HUB.search(command) for command in found):
            yield text.count("\n", 0, match.start()) + 1, found


EXAMPLES = dict(examples())


def test_the_readme_has_hub_examples() -> None:
    assert len(EXAMPLES) >= 4


@pytest.fixture(scope="module")
def hubs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, HubProcess]]:
    """An open hub (development mode), and one with keys for the examples that present one."""
    started = {"open": HubProcess(["--data-dir", str(tmp_path_factory.mktemp("open"))]).start(),
               "keyed": HubProcess(["--data-dir", str(tmp_path_factory.mktemp("keyed")), "--publisher-key",
                                    PUBLISHER_KEY, "--admin-key", ADMIN_KEY]).start()}
    yield started
    for hub in started.values():
        hub.stop()


def started(process: subprocess.Popen[bytes]) -> None:
    """Wait until a streaming command says anything (``pushhub listen`` says it is listening on stderr,
    once the hub's subscription is live), as a person would before typing the next command."""
    assert process.stdout is not None and process.stderr is not None
    ready, _, _ = select.select([process.stdout, process.stderr], [], [], 4 * TIMEOUT)
    assert ready, "the command said nothing"
    if process.stderr in ready:
        process.stderr.readline()


def first_line(process: subprocess.Popen[bytes]) -> str:
    """The first line a streaming command printed (it must print one within the timeout)."""
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], 4 * TIMEOUT)
    return process.stdout.readline().decode() if ready else ""


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
    process.wait(timeout=4 * TIMEOUT)
    for pipe in (process.stdout, process.stderr):
        if pipe is not None:
            pipe.close()


@pytest.mark.parametrize("line", sorted(EXAMPLES))
def test_readme_example_runs_as_written(line: int, hubs: dict[str, HubProcess], tmp_path: Path) -> None:
    block = EXAMPLES[line]
    keyed = any("$KEY" in command or "$PUBLISHER_KEY" in command for command in block)
    hub = hubs["keyed" if keyed else "open"]
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "PUSHHUB_URL": hub.url,
           "KEY": PUBLISHER_KEY, "PUBLISHER_KEY": PUBLISHER_KEY, "PUSHHUB_KEY": ADMIN_KEY if keyed else ""}
    streams: list[tuple[str, subprocess.Popen[bytes]]] = []
    try:
        for command in block:
            local = re.sub(r"\b(127\.0\.0\.1|localhost):8000\b", f"127.0.0.1:{hub.port}", command)
            if STREAMING.search(local):  # runs on while the rest of the block does, as '&' would have it
                process = subprocess.Popen(["bash", "-c", local.rstrip("&").strip()], env=env,
                                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
                streams.append((command, process))
                started(process)
                continue
            result = subprocess.run(["bash", "-c", local], capture_output=True, text=True, env=env, cwd=tmp_path,
                                    timeout=4 * TIMEOUT)
            assert result.returncode == 0, (command, result.stderr)
            assert result.stdout.strip() and '"error"' not in result.stdout, (command, result.stdout)
        for command, process in streams:
            first = first_line(process)
            assert first.strip() and "error" not in first, (command, first)
    finally:
        for _, process in streams:
            stop(process)
