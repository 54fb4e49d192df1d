"""A throwaway Redis server (Debian's redis-server) on a free loopback port."""

from __future__ import annotations

import pathlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator

import pytest

from tools.devmesh import free_port

BINARY = shutil.which("redis-server") or "/usr/bin/redis-server"


class Redis:
    """redis-server with no persistence; stop() and start() for fault tests."""

    def __init__(self) -> None:
        if not pathlib.Path(BINARY).exists():
            pytest.skip("no redis-server (`make install` as root installs it)")
        self.dir = pathlib.Path(tempfile.mkdtemp(prefix="cadenza-redis-"))
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    @property
    def url(self) -> str:
        """The server's URL."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Starts the server and waits until it answers PING."""
        self.proc = subprocess.Popen(
            [BINARY, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.dir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError("redis-server did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        """Kills the server (as a crash would)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)

    def remove(self) -> None:
        """Stops the server and deletes its directory."""
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def redis_server() -> Iterator[Redis]:
    """A Redis server for one test."""
    server = Redis()
    yield server
    server.remove()


@pytest.fixture
def redis_url(redis_server: Redis) -> str:
    """The URL of a Redis server for one test."""
    return redis_server.url
