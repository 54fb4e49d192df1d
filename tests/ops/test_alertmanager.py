"""Alertmanager routing and inhibition (deploy/prometheus/alertmanager.yml), checked with
amtool and against a real Alertmanager (Debian's prometheus-alertmanager)."""

from __future__ import annotations

import json
import pathlib
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator

import pytest
import yaml

from tools.devmesh import free_port

ROOT = pathlib.Path(__file__).resolve().parents[2]
CONFIG = ROOT / "deploy" / "prometheus" / "alertmanager.yml"
ALERTMANAGER = "/usr/bin/prometheus-alertmanager"
DEADLINE_S = 60.0
SERVICE = "cadenza.retrieval.v1.RetrievalService"


def tool(name: str) -> str:
    path = shutil.which(name) or (name if pathlib.Path(name).exists() else None)
    if path is None:
        pytest.fail(f"{name} is missing: tools/system-deps.sh installs "
                    "prometheus-alertmanager (Debian)")
    return path


def test_config_passes_amtool_check_config() -> None:
    result = subprocess.run([tool("amtool"), "check-config", str(CONFIG)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(("labels", "receiver"), [
    (["severity=page", "alertname=CadenzaTargetDown"], "pager"),
    (["severity=ticket", "alertname=CadenzaRecommendModelStale"], "tickets"),
    (["alertname=SomethingUnlabelled"], "tickets"),
])
def test_pages_go_to_the_pager_and_the_rest_to_tickets(labels: list[str],
                                                       receiver: str) -> None:
    result = subprocess.run(
        [tool("amtool"), "config", "routes", "test", f"--config.file={CONFIG}", *labels],
        capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.split() == [receiver]


@pytest.fixture(scope="module")
def alertmanager(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Alertmanager on loopback with our config; group_wait 0 so it acts at once."""
    home = tmp_path_factory.mktemp("alertmanager")
    config = yaml.safe_load(CONFIG.read_text())
    config["route"]["group_wait"] = "0s"
    for route in config["route"]["routes"]:
        route["group_wait"] = "0s"
    (home / "alertmanager.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    with (home / "alertmanager.log").open("w") as log:
        process = subprocess.Popen(
            [tool(ALERTMANAGER), f"--config.file={home / 'alertmanager.yml'}",
             f"--storage.path={home / 'data'}", f"--web.listen-address=127.0.0.1:{port}",
             "--cluster.listen-address="], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + DEADLINE_S
        while True:
            try:
                urllib.request.urlopen(f"{url}/-/ready", timeout=2).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("alertmanager did not start:\n"
                                + (home / "alertmanager.log").read_text()[-2000:])
                time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def post_alerts(url: str, alerts: list[dict[str, str]]) -> None:
    body = json.dumps([{"labels": labels} for labels in alerts]).encode()
    request = urllib.request.Request(f"{url}/api/v2/alerts", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
    urllib.request.urlopen(request, timeout=5).close()


def inhibited_alerts(url: str, expected: int) -> dict[str, bool]:
    """name -> inhibited?, once Alertmanager holds `expected` alerts with settled status."""
    deadline = time.monotonic() + DEADLINE_S
    while True:
        with urllib.request.urlopen(f"{url}/api/v2/alerts", timeout=5) as response:
            alerts = json.load(response)
        status = {a["labels"]["name"]: bool(a["status"]["inhibitedBy"]) for a in alerts}
        if len(status) == expected and any(status.values()):
            return status
        if time.monotonic() > deadline:
            pytest.fail(f"alertmanager holds {status}, expected {expected} alerts")
        time.sleep(0.2)


def test_real_alertmanager_inhibits_what_a_louder_alert_explains(alertmanager: str) -> None:
    def alert(name: str, alertname: str, severity: str, **labels: str) -> dict[str, str]:
        return {"name": name, "alertname": alertname, "severity": severity, **labels}

    retrieval, gateway, generate = "cadenza-retrieval", "cadenza-gateway", "cadenza-generate"
    post_alerts(alertmanager, [
        alert("down", "CadenzaTargetDown", "page", job=retrieval),
        alert("retrieval-fast", "CadenzaErrorBudgetBurnFast", "page", job=retrieval,
              grpc_service=SERVICE),
        alert("gateway-fast", "CadenzaErrorBudgetBurnFast", "page", job=gateway,
              grpc_service=SERVICE),
        alert("gateway-slow", "CadenzaErrorBudgetBurnSlow", "ticket", job=gateway,
              grpc_service=SERVICE),
        alert("gateway-latency-slow", "CadenzaLatencyBudgetBurnSlow", "ticket", job=gateway,
              grpc_service=SERVICE),
        alert("saturated", "CadenzaGenerateSaturated", "ticket", job=generate),
        alert("queue", "CadenzaGenerateQueueGrowing", "ticket", job=generate,
              model="cadenza-poly"),
    ])
    assert inhibited_alerts(alertmanager, 7) == {
        "down": False,
        "retrieval-fast": True,  # its target is down: that page says it
        "gateway-fast": False,  # another job: the gateway's view still pages
        "gateway-slow": True,  # the fast burn of the same service already pages
        "gateway-latency-slow": False,  # no latency page to explain it
        "saturated": False,
        "queue": True,  # full slots explain the queue
    }
