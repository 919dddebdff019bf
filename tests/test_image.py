"""The container image, built and run: a Debian bookworm base made with debootstrap (no registry is
reachable here) imported into podman, ``podman build --isolation chroot --format docker`` of
deploy/Dockerfile on it, then ``buildah run`` of ``pushhub --version`` and of a short ``pushhub
serve`` answering ``/healthz`` inside the image (``podman run`` cannot set rlimits in this sandbox).

Slow (a minute or more) and needs root, debootstrap, podman and buildah: it runs only with
``PUSHHUB_IMAGE_TEST=1``, as its own step of ``.ci/run``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pushhub import __version__

from .utils import TIMEOUT, free_port

ROOT = Path(__file__).resolve().parent.parent
MIRROR = os.environ.get("PUSHHUB_DEBIAN_MIRROR", "http://deb.debian.org/debian")
BUILD_TIMEOUT = 120 * TIMEOUT

pytestmark = pytest.mark.skipif(os.environ.get("PUSHHUB_IMAGE_TEST") != "1",
                                reason="builds a container image: set PUSHHUB_IMAGE_TEST=1 (a step of .ci/run)")


def run(*command: str, timeout: float = BUILD_TIMEOUT, stdin: bytes | None = None) -> str:
    result = subprocess.run(command, input=stdin, capture_output=True, timeout=timeout, cwd=ROOT)
    assert result.returncode == 0, (command, result.stderr.decode(errors="replace")[-3000:])
    return result.stdout.decode()


def pip_cert_options() -> list[str]:
    """This machine reaches PyPI through a proxy whose CA pip is configured with: lend it to the build."""
    configured = subprocess.run([sys.executable, "-m", "pip", "config", "get", "global.cert"], capture_output=True,
                                text=True, timeout=4 * TIMEOUT).stdout.strip()
    cert = os.environ.get("PIP_CERT") or configured
    if not cert or not Path(cert).is_file():
        return []
    return ["--volume", f"{cert}:/etc/pushhub-build-ca.crt:ro", "--build-arg", "PIP_CERT=/etc/pushhub-build-ca.crt"]


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    for tool in ("debootstrap", "podman", "buildah"):
        assert shutil.which(tool), f"{tool} is not installed (scripts/test-image installs it)"
    root = tmp_path_factory.mktemp("base") / "root"
    run("debootstrap", "--variant=minbase", "--include=python3,python3-venv", "bookworm", str(root), MIRROR)
    base, tag = "localhost/pushhub-test-base:bookworm", "localhost/pushhub-test:latest"
    archive = subprocess.run(["tar", "-C", str(root), "-c", "."], capture_output=True, check=True).stdout
    run("podman", "import", "-", base, stdin=archive)
    run("podman", "build", "--isolation", "chroot", "--format", "docker", "--build-arg", f"BASE={base}",
        *pip_cert_options(), "-f", "deploy/Dockerfile", "-t", tag, ".")
    try:
        yield tag
    finally:
        subprocess.run(["podman", "rmi", "-f", tag, base], capture_output=True, timeout=BUILD_TIMEOUT)


@pytest.fixture
def container(image: str) -> Iterator[str]:
    name = run("buildah", "from", image).strip()
    try:
        yield name
    finally:
        subprocess.run(["buildah", "rm", name], capture_output=True, timeout=BUILD_TIMEOUT)


def test_the_image_config(image: str) -> None:
    (config,) = json.loads(run("podman", "image", "inspect", image))
    assert config["Config"]["User"] == "pushhub"
    assert "/data" in config["Config"]["Volumes"]
    assert config["Healthcheck"]["Test"][:2] == ["CMD", "python"]  # podman shows it beside Config
    assert "PUSHHUB_DATA_DIR=/data" in config["Config"]["Env"]


def test_pushhub_runs_inside_the_image(container: str) -> None:
    assert run("buildah", "run", "--isolation", "chroot", container, "--", "pushhub", "--version").strip() == (
        f"pushhub {__version__}")
    port = free_port()
    script = (f"PUSHHUB_HOST=127.0.0.1 PUSHHUB_PORT={port} PUSHHUB_PUBLISHER_KEYS=k pushhub serve & hub=$!; "
              f"for i in $(seq 100); do python -c \"import urllib.request as u; "
              f"print(u.urlopen('http://127.0.0.1:{port}/healthz').read().decode())\" 2>/dev/null && break; "
              "sleep 0.1; done; kill $hub; wait $hub; whoami")
    out = run("buildah", "run", "--isolation", "chroot", container, "--", "sh", "-c", script, timeout=8 * TIMEOUT)
    lines = out.strip().splitlines()
    assert json.loads(lines[0])["status"] == "ok"
    assert lines[-1] == "pushhub"
