"""`make observe`: Prometheus beside a running mesh, found through its mesh.json."""

from __future__ import annotations

import pathlib
import subprocess
import sys
import time

from tests.ops.conftest import DEADLINE_S, wait_all_up
from tools import observe
from tools.devmesh import PROCESSES, Mesh, alive, free_port
from tools.observe import PrometheusApi

ROOT = observe.ROOT


def test_committed_scrape_config_is_the_generators_for_make_up_ports() -> None:
    assert observe.COMMITTED_CONFIG.read_text() == observe.committed_config()
    check = subprocess.run(["promtool", "check", "config", "--syntax-only",
                            str(observe.COMMITTED_CONFIG)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


def observe_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tools.observe", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def test_observe_starts_prometheus_on_the_running_mesh_and_stops_it(mesh: Mesh) -> None:
    port = free_port()
    run_dir = str(mesh.run_dir)
    started = observe_cli("--run-dir", run_dir, "--port", str(port))
    assert started.returncode == 0, started.stdout + started.stderr
    assert f"http://127.0.0.1:{port}" in started.stdout
    pid = int((mesh.run_dir / "prometheus" / "prometheus.pid").read_text())
    try:
        client = PrometheusApi(f"http://127.0.0.1:{port}")
        wait_all_up(client)
        expected = {observe.job_name(p) for p in PROCESSES} | {observe.job_name("edge")}
        deadline = time.monotonic() + DEADLINE_S
        while (jobs := {r["metric"]["job"] for r in client.query("up == 1")}) != expected:
            assert time.monotonic() < deadline, jobs
            time.sleep(0.5)
        # Envoy's own stats arrive beside ours: its view of each backend cluster.
        clusters = {r["metric"]["envoy_cluster_name"] for r in client.query(
            'envoy_cluster_membership_healthy{job="cadenza-edge"} == 1')}
        assert clusters >= {"retrieval", "recommend", "generate"}
        again = observe_cli("--run-dir", run_dir, "--port", str(port))
        assert again.returncode == 0 and "already running" in again.stdout
    finally:
        stopped = observe_cli("--stop", "--run-dir", run_dir)
    assert stopped.returncode == 0, stopped.stderr
    deadline = time.monotonic() + DEADLINE_S
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not alive(pid)


def test_observe_says_to_start_the_mesh_first(tmp_path: pathlib.Path) -> None:
    result = observe_cli("--run-dir", str(tmp_path))
    assert result.returncode == 1 and "make up" in result.stderr
