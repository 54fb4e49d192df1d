"""Fixtures shared by the whole suite: the real mesh, started the way `make up` starts it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tools.devmesh import Endpoints, Mesh


@pytest.fixture(scope="session")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    """The four processes on free ports, SERVING; stopped with SIGTERM at the end."""
    running = Mesh(tmp_path_factory.mktemp("mesh"), Endpoints.free())
    try:
        running.start(timeout_s=120)
    except BaseException:
        running.stop()
        raise
    yield running
    running.stop()
