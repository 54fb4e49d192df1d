"""A real Prometheus (Debian's) scraping the session mesh, and traffic that moves it.

One Prometheus and one round of traffic for the whole tests/ops package: the metric and
dashboard tests read the same data. Prometheus scrapes every second on loopback.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.ops.traffic import Traffic, drive
from tools.devmesh import PROCESSES, Mesh, free_port
from tools.observe import Prometheus, PrometheusApi, job_name, scrape_config

SCRAPE_INTERVAL_S = 1.0
DEADLINE_S = 120.0  # generous: the first sample takes ~6 s; two trainings share the cores


@dataclass(frozen=True)
class Observed:
    prometheus: Prometheus
    traffic: Traffic
    before_unix_s: float  # every target had been scraped once, before any traffic

    def moved(self, selector: str) -> float:
        """How much the sum of `selector` grew since before the traffic (absent = 0)."""
        rows = self.prometheus.query(
            f"sum({selector}) - (sum({selector} @ {self.before_unix_s:.3f}) or vector(0))")
        return float(rows[0]["value"][1]) if rows else 0.0

    def wait_scraped_since(self, unix_s: float) -> None:
        """Waits until every target has been scraped after `unix_s` (e.g. after calls)."""
        deadline = time.monotonic() + DEADLINE_S
        while True:
            rows = self.prometheus.query('timestamp(up{job=~"cadenza-.+"})')
            if len(rows) == len(PROCESSES) and min(float(r["value"][1]) for r in rows) > unix_s:
                return
            if time.monotonic() > deadline:
                pytest.fail(f"targets not scraped again within {DEADLINE_S:g} s")
            time.sleep(SCRAPE_INTERVAL_S / 2)

    def query_until(self, promql: str, deadline: float) -> list[dict]:
        """Polls until the query has a result or time.monotonic() passes `deadline`
        (scrapes lag the traffic a little); raises ValueError on a bad query."""
        while True:
            rows = self.prometheus.query(promql)
            if rows or time.monotonic() > deadline:
                return rows
            time.sleep(SCRAPE_INTERVAL_S)

    def wait_for(self, promql: str, check: str = "non-empty") -> list[dict]:
        """The query's result once it has one; fails after DEADLINE_S without."""
        rows = self.query_until(promql, time.monotonic() + DEADLINE_S)
        if not rows:
            pytest.fail(f"no result for {promql!r} ({check}) after {DEADLINE_S:g} s")
        return rows


def wait_all_up(prometheus: PrometheusApi) -> None:
    deadline = time.monotonic() + DEADLINE_S
    jobs = {job_name(p) for p in PROCESSES}
    while True:
        up = {r["metric"]["job"] for r in prometheus.query("up == 1")}
        if up >= jobs:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"targets not up after {DEADLINE_S:g} s: {sorted(jobs - up)}")
        time.sleep(0.5)


@pytest.fixture(scope="package")
def observed(mesh: Mesh, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Observed]:
    home = tmp_path_factory.mktemp("prometheus")
    config = home / "prometheus.yml"
    config.write_text(scrape_config(mesh.endpoints.metrics_ports, SCRAPE_INTERVAL_S))
    try:
        prometheus = Prometheus(config, home / "data", free_port(), home / "prometheus.log")
    except FileNotFoundError as error:
        pytest.fail(str(error))
    try:
        prometheus.wait_ready()
        wait_all_up(prometheus)
        before = time.time()
        seen = Observed(prometheus, drive(mesh.endpoints.address("gateway")), before)
        seen.wait_scraped_since(time.time())
        yield seen
    finally:
        prometheus.stop()
