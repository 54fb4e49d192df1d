"""Starts the edge (Envoy under its supervisor) for a test, on free ports."""

from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import sys

from tools.devmesh import free_port, wait_serving

ROOT = pathlib.Path(__file__).resolve().parents[2]


class Edge:
    """A running `python -m gateway.edge` and where it listens."""

    def __init__(self, run_dir: pathlib.Path, **settings: object) -> None:
        self.port, self.admin_port = free_port(), free_port()
        self.data_dir = run_dir
        env = dict(os.environ)
        env.update({"CADENZA_EDGE_PORT": str(self.port),
                    "CADENZA_EDGE_METRICS_PORT": str(self.admin_port),
                    "CADENZA_EDGE_DATA_DIR": str(run_dir),
                    "CADENZA_EDGE_METERING_FLUSH_S": "0.1",
                    "CADENZA_EDGE_CONCURRENCY": "1"})
        env.update({f"CADENZA_EDGE_{k.upper()}": str(v) for k, v in settings.items()})
        run_dir.mkdir(parents=True, exist_ok=True)
        self.log = run_dir / "edge.log"
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "gateway.edge"], cwd=ROOT,
                                         env=env, stdout=log, stderr=subprocess.STDOUT)

    @property
    def address(self) -> str:
        """host:port of the public listener."""
        return f"127.0.0.1:{self.port}"

    def envoy_pid(self) -> int:
        """The pid of the Envoy the supervisor runs now."""
        return int((self.data_dir / "envoy.pid").read_text())

    def wait_ready(self, service: str = "cadenza.gateway.v1.GatewayService",
                   timeout_s: float = 30, ca_file: pathlib.Path | None = None) -> None:
        """Waits until Envoy routes a health check for `service` and it says SERVING
        (over TLS trusting ca_file, when given)."""
        def check_alive() -> None:
            if self.proc.poll() is not None:
                raise RuntimeError(f"edge exited: {self.log.read_text()[-2000:]}")

        try:
            wait_serving(self.address, timeout_s, check_alive, ca_file, service)
        except TimeoutError as error:
            raise TimeoutError(f"edge not ready: {self.log.read_text()[-2000:]}") from error

    def stop(self) -> None:
        """SIGTERM to the supervisor, which stops Envoy."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
