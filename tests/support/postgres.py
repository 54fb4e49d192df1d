"""A throwaway PostgreSQL 15 server (Debian's binaries) on a free loopback port, started
as a non-root user because initdb refuses root, with trust auth.

Fixtures (import them into a test module or conftest.py):
    postgres      the running `Postgres` (session): `.database_url(name)` makes a fresh
                  database, `.stop()` / `.start()` take it down and up mid-test.
    postgres_url  the URL of its default database (session).
"""

from __future__ import annotations

import os
import pathlib
import pwd
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator

import pytest

from tools.devmesh import free_port

BIN = pathlib.Path("/usr/lib/postgresql/15/bin")
USER = "cadenza-pg"


def _server_user() -> str | None:
    """The user to run the server as: None when not root, else a system user."""
    if os.getuid() != 0:
        return None
    try:
        pwd.getpwnam(USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell",
                        "/usr/sbin/nologin", USER], check=True, capture_output=True)
    return USER


def _run(args: list[str], user: str | None, check: bool = True) -> None:
    command = args if user is None else ["runuser", "-u", user, "--", *args]
    done = subprocess.run(command, capture_output=True, text=True)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:2])} failed ({done.returncode}):\n"
                           f"{done.stdout}\n{done.stderr}")


class Postgres:
    """initdb in a temp dir, then pg_ctl start/stop on a free port."""

    def __init__(self) -> None:
        missing = [n for n in ("initdb", "pg_ctl", "postgres", "psql")
                   if not (BIN / n).exists()]
        if missing:
            pytest.skip(f"PostgreSQL 15 binaries missing in {BIN}: {', '.join(missing)} "
                        "(apt-get install postgresql-15)")
        self.user = _server_user()
        self.dir = pathlib.Path(tempfile.mkdtemp(prefix="cadenza-pg-"))
        self.data = self.dir / "data"
        self.port = free_port()
        if self.user is not None:
            shutil.chown(self.dir, self.user)
        _run([str(BIN / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres",
              "--no-sync", "-E", "UTF8"], self.user)
        self.start()

    @property
    def url(self) -> str:
        """The server's URL (database postgres)."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def database_url(self, name: str = "") -> str:
        """The URL of a fresh, empty database (named name, or a unique name)."""
        name = name or "t" + uuid.uuid4().hex[:16]
        _run([str(BIN / "psql"), self.url, "-q", "-v", "ON_ERROR_STOP=1", "-c",
              f'CREATE DATABASE "{name}"'], None)
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"

    def start(self) -> None:
        """Starts the server and waits until it accepts connections."""
        options = (f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 "
                   "-c fsync=off -c max_connections=200")
        _run([str(BIN / "pg_ctl"), "-D", str(self.data), "-w", "-t", "60", "-l",
              str(self.dir / "log"), "-o", options, "start"], self.user)
        deadline = time.monotonic() + 60
        while subprocess.run([str(BIN / "pg_isready"), "-h", "127.0.0.1", "-p",
                              str(self.port)], capture_output=True).returncode != 0:
            if time.monotonic() > deadline:
                raise TimeoutError(f"PostgreSQL did not start; see {self.dir / 'log'}")
            time.sleep(0.1)

    def stop(self) -> None:
        """Stops the server at once (in-flight work is lost, as in a crash)."""
        _run([str(BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"],
             self.user, check=False)

    def remove(self) -> None:
        """Stops the server and deletes its files."""
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """One PostgreSQL server for the session; tests make their own databases."""
    server = Postgres()
    try:
        yield server
    finally:
        server.remove()


@pytest.fixture(scope="session")
def postgres_url(postgres: Postgres) -> str:
    """The URL of the session server's default database (make a fresh one per test with
    `postgres.database_url()` when tests must not see each other's rows)."""
    return postgres.url
