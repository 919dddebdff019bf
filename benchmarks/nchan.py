"""nginx with the Nchan module as the reference server the benchmarks measure pushhub beside.

It runs from Debian's packages (``apt-get install nginx libnginx-mod-nchan``; this module installs
nothing) with the configuration kept in ``benchmarks/nchan.conf``: a fresh prefix directory per run
holds the configuration, the PID file, the error log and nginx's temporary files; it listens on a
free loopback port only, and is stopped by the PID of its master process.

    python -m benchmarks.nchan        # start one and print its URL until interrupted
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import tempfile

from benchmarks.loadgen import NCHAN, ROOT, ServerProcess, free_port

NGINX = "/usr/sbin/nginx"
MODULE = "/usr/lib/nginx/modules/ngx_nchan_module.so"
CONFIG = os.path.join(ROOT, "benchmarks", "nchan.conf")
INSTALL = "apt-get install nginx libnginx-mod-nchan"


def missing() -> str | None:
    """Why nginx with Nchan cannot run here, or None."""
    for path in (NGINX, MODULE):
        if not os.path.exists(path):
            return f"{path} is missing ({INSTALL})"
    return None


def render(port: int, workers: int) -> str:
    with open(CONFIG) as f:
        return f.read().replace("__PORT__", str(port)).replace("__WORKERS__", str(workers))


class Nchan(ServerProcess):
    """An nginx master process (and its ``workers``) serving Nchan on a free loopback port."""

    dialect = NCHAN

    def __init__(self, workers: int = 1) -> None:
        self.workers = workers
        self.port = free_port()
        self.prefix: str | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> Nchan:
        if self.process is not None:
            return self
        reason = missing()
        if reason:
            raise RuntimeError(reason)
        self.prefix = tempfile.mkdtemp(prefix="pushhub-nchan-")
        os.mkdir(os.path.join(self.prefix, "tmp"))
        config = os.path.join(self.prefix, "nginx.conf")
        with open(config, "w") as f:
            f.write(render(self.port, self.workers))
        try:
            with open(os.path.join(self.prefix, "stderr.log"), "wb") as log:
                self.launch([NGINX, "-p", self.prefix, "-c", config, "-e", os.path.join(self.prefix, "error.log")],
                            self.url + "/pub?channel=ready", "nginx", log)
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}: {self.log()}") from None
        return self

    def log(self) -> str:
        if self.prefix is None:
            return ""
        text = []
        for name in ("stderr.log", "error.log"):
            path = os.path.join(self.prefix, name)
            if os.path.exists(path):
                with open(path, errors="replace") as f:
                    text.append(f.read()[-2000:])
        return "\n".join(text)

    def stop(self) -> None:
        super().stop()
        if self.prefix is not None:
            shutil.rmtree(self.prefix, ignore_errors=True)
            self.prefix = None


def main() -> int:
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))  # stop nginx too (the finally below)
    server = Nchan().start()
    print(f"nginx {server.pid} serving Nchan at {server.url} (publish: POST /pub?channel=NAME, "
          f"subscribe: GET /sub?channel=NAME); Ctrl-C stops it")
    try:
        signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
