"""The browser client is an npm package: ``npm pack`` accepts clients/js, the tarball holds the
module, its types and its licence (nothing else), and Node imports the packed copy by name."""

from __future__ import annotations

import json
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from .utils import TIMEOUT

PACKAGE = Path(__file__).resolve().parent.parent / "clients" / "js"

CHECK = """
import * as client from "pushhub-client";
console.log(JSON.stringify({
  resolved: import.meta.resolve("pushhub-client"),
  exports: Object.keys(client).sort(),
  delay: client.backoffDelay(0, { jitter: 0 }),
  error: new client.PushHubError("x", "bad_cursor").code,
}));
"""


@pytest.mark.skipif(shutil.which("npm") is None or shutil.which("node") is None,
                    reason="needs Node.js and npm (scripts/test installs them)")
def test_npm_pack_and_import_the_packed_module(tmp_path: Path) -> None:
    done = subprocess.run(["npm", "pack", "--json", "--pack-destination", str(tmp_path)], cwd=PACKAGE,
                          capture_output=True, text=True, timeout=12 * TIMEOUT)
    assert done.returncode == 0, done.stderr
    [packed] = json.loads(done.stdout)
    assert sorted(f["path"] for f in packed["files"]) == [
        "LICENSE", "README.md", "package.json", "pushhub.d.ts", "pushhub.js"]

    app = tmp_path / "app"
    installed = app / "node_modules" / "pushhub-client"
    installed.mkdir(parents=True)
    with tarfile.open(tmp_path / packed["filename"]) as tar:
        for member in tar.getmembers():
            assert member.name.startswith("package/")
            member.name = member.name.removeprefix("package/")
            tar.extract(member, installed, filter="data")
    manifest = json.loads((installed / "package.json").read_text())
    assert manifest["type"] == "module"
    assert (installed / manifest["exports"]["."]["types"]).is_file()

    (app / "check.mjs").write_text(CHECK)
    ran = subprocess.run(["node", "check.mjs"], cwd=app, capture_output=True, text=True, timeout=4 * TIMEOUT)
    assert ran.returncode == 0, ran.stderr
    result = json.loads(ran.stdout)
    assert result["resolved"] == (installed / "pushhub.js").as_uri()
    assert result["exports"] == ["PushHubError", "PushHubEventSource", "PushHubSocket", "backoffDelay",
                                 "shouldReconnect"]
    assert result["delay"] == 250
    assert result["error"] == "bad_cursor"
