"""Prometheus beside the local mesh: `make observe` and the tests' real Prometheus.

`python -m tools.observe [--stop]` reads the endpoints `make up` wrote (.run/mesh.json),
writes a scrape config with the alert rules of deploy/prometheus/rules/ under
.run/prometheus/, starts Debian's /usr/bin/prometheus on 127.0.0.1:9090 and prints its
address. `--stop` (and `make down`) stops it.

Job names are the ones dashboards, alert rules and the Kubernetes ServiceMonitors share:
cadenza-gateway, cadenza-retrieval, cadenza-recommend, cadenza-generate.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from typing import Any

from tools.devmesh import Endpoints, alive, terminate

ROOT = pathlib.Path(__file__).resolve().parent.parent
RULES_DIR = ROOT / "deploy" / "prometheus" / "rules"
COMMITTED_CONFIG = ROOT / "deploy" / "prometheus" / "prometheus.yml"
PROMETHEUS = "/usr/bin/prometheus"
DEFAULT_PORT = 9090
JOB_PREFIX = "cadenza-"


def job_name(process: str) -> str:
    """The Prometheus job name of a mesh process (cadenza-<process>)."""
    return JOB_PREFIX + process


EDGE_METRICS_PATH = "/stats/prometheus"


def scrape_config(metrics_ports: Mapping[str, int], interval_s: float = 5.0,
                  rule_glob: str = "", edge_admin_port: int | None = None) -> str:
    """prometheus.yml (as text) scraping each process's metrics port on loopback, and
    Envoy's stats when the edge's admin port is given."""
    lines = [
        "# Scrapes the local mesh (`make up`); written by tools/observe.py.",
        "global:",
        f"  scrape_interval: {interval_s:g}s",
        f"  evaluation_interval: {interval_s:g}s",
    ]
    if rule_glob:
        lines += ["rule_files:", f"  - {rule_glob}"]
    lines.append("scrape_configs:")
    for process, port in sorted(metrics_ports.items()):
        lines += [
            f"  - job_name: {job_name(process)}",
            "    static_configs:",
            f"      - targets: ['127.0.0.1:{port}']",
        ]
    if edge_admin_port is not None:
        lines += [
            f"  - job_name: {job_name('edge')}",
            f"    metrics_path: {EDGE_METRICS_PATH}",  # Envoy's admin interface
            "    static_configs:",
            f"      - targets: ['127.0.0.1:{edge_admin_port}']",
        ]
    return "\n".join(lines) + "\n"


def committed_config() -> str:
    """deploy/prometheus/prometheus.yml: the default `make up` ports, rules beside it."""
    defaults = Endpoints.defaults()
    return scrape_config(defaults.metrics_ports, rule_glob="rules/*.yml",
                         edge_admin_port=defaults.edge_admin_port)


class PrometheusApi:
    """A small client for a Prometheus server's HTTP API (urllib: no extra dependency)."""

    def __init__(self, url: str) -> None:
        self.url = url

    def ready(self) -> bool:
        """Whether the server answers /-/ready."""
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as reply:
                return bool(reply.status == 200)
        except (urllib.error.URLError, ConnectionError):
            return False

    def query(self, promql: str, at_unix_s: float | None = None) -> list[dict[str, Any]]:
        """The instant query's result list; raises ValueError with Prometheus's message."""
        params = {"query": promql}
        if at_unix_s is not None:
            params["time"] = f"{at_unix_s:.3f}"
        url = f"{self.url}/api/v1/query?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=30) as reply:
                body = json.loads(reply.read())
        except urllib.error.HTTPError as error:  # 400/422: the query is bad
            body = json.loads(error.read())
        if body.get("status") != "success":
            raise ValueError(f"{promql}: {body.get('errorType')}: {body.get('error')}")
        return list(body["data"]["result"])


class Prometheus(PrometheusApi):
    """Debian's Prometheus server as a child process on loopback."""

    def __init__(self, config: pathlib.Path, storage: pathlib.Path, port: int,
                 log: pathlib.Path) -> None:
        super().__init__(f"http://127.0.0.1:{port}")
        binary = shutil.which("prometheus") or PROMETHEUS
        if not os.path.exists(binary):
            raise FileNotFoundError(
                "prometheus is not installed: run `make system-deps` (Debian package "
                "'prometheus', which also brings promtool)")
        storage.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(
                [binary, f"--config.file={config}", f"--storage.tsdb.path={storage}",
                 f"--web.listen-address=127.0.0.1:{port}"],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True)

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        """Waits until the server is ready; raises with its log when it exits first."""
        deadline = time.monotonic() + timeout_s
        while not self.ready():
            if self.proc.poll() is not None:
                raise RuntimeError(f"prometheus exited with {self.proc.returncode}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"prometheus not ready at {self.url} after {timeout_s:g} s")
            time.sleep(0.2)

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stops the server: SIGTERM, then SIGKILL past the timeout."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start(run_dir: pathlib.Path, port: int = DEFAULT_PORT) -> int:
    """Starts Prometheus for the mesh in run_dir and prints its address."""
    mesh_file = run_dir / "mesh.json"
    if not mesh_file.exists():
        print("the mesh is not running: `make up` first", file=sys.stderr)
        return 1
    home = run_dir / "prometheus"
    pid_file = home / "prometheus.pid"
    if pid_file.exists() and alive(int(pid_file.read_text())):
        print(f"Prometheus already running: {(home / 'prometheus.url').read_text()}")
        return 0
    home.mkdir(parents=True, exist_ok=True)
    endpoints = json.loads(mesh_file.read_text())
    config = home / "prometheus.yml"
    config.write_text(scrape_config(endpoints["metrics_ports"], rule_glob=str(RULES_DIR / "*.yml"),
                                    edge_admin_port=endpoints.get("edge_admin_port")))
    server = Prometheus(config, home / "data", port, home / "prometheus.log")
    try:
        server.wait_ready()
    except (RuntimeError, TimeoutError) as error:
        server.stop()
        print(f"Prometheus failed to start ({error}); see {home / 'prometheus.log'}",
              file=sys.stderr)
        return 1
    pid_file.write_text(str(server.proc.pid))
    (home / "prometheus.url").write_text(server.url)
    jobs = ", ".join(sorted(endpoints["metrics_ports"]))
    print(f"Prometheus: {server.url}  (scraping {jobs}; rules from "
          f"{RULES_DIR.relative_to(ROOT)}/; stop with `make down`)")
    return 0


def stop(run_dir: pathlib.Path) -> int:
    """Stops the Prometheus that `start` left running."""
    pid_file = run_dir / "prometheus" / "prometheus.pid"
    if not pid_file.exists():
        return 0
    pid = int(pid_file.read_text())
    if alive(pid):
        terminate([pid])
        print("Prometheus stopped")
    pid_file.unlink()
    return 0


def main() -> None:
    """The `python -m tools.observe [--stop]` entry point."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stop", action="store_true", help="stop the Prometheus it started")
    parser.add_argument("--run-dir", type=pathlib.Path, default=ROOT / ".run")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    args = parser.parse_args()
    sys.exit(stop(args.run_dir) if args.stop else start(args.run_dir, args.port))


if __name__ == "__main__":
    main()
