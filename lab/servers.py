"""Real servers a rehearsal or a test starts for itself: PostgreSQL (Debian's postgresql-15) and a Prefect server.

PostgreSQL refuses to run as root, so as root its commands run as the
``postgres`` user the Debian package creates, in a folder of its own under the
system's temporary directory (pytest's are private to root).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from vmwave_lab.process import wait_for

PG_BIN = Path("/usr/lib/postgresql/15/bin")
PREFECT = str(Path(sys.executable).parent / "prefect")  # the environment's own


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Postgres:
    """A PostgreSQL server in a temporary folder, on a free loopback port, trusting local connections."""

    def __init__(self):
        self.folder, self.port = Path(tempfile.mkdtemp(prefix="vmwave-pg-")), free_port()
        self.data = self.folder / "data"

    def _run(self, tool: str, *argv: str) -> None:
        binary = shutil.which(tool) or str(PG_BIN / tool)
        as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        done = subprocess.run([*as_postgres, binary, *argv], capture_output=True, text=True, timeout=120)
        if done.returncode:
            raise RuntimeError(f"{tool} {' '.join(argv)} failed: {done.stderr or done.stdout}")

    def start(self) -> "Postgres":
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres")
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync")
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.folder / "server.log"), "-w", "-o",
                  f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c max_connections=200", "start")
        return self

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")
        shutil.rmtree(self.folder)

    def create(self, database: str) -> None:
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", database)

    def url(self, driver: str, database: str) -> str:
        return f"postgresql+{driver}://postgres@127.0.0.1:{self.port}/{database}"


@contextmanager
def postgres() -> Iterator[Postgres]:
    server = Postgres().start()
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def prefect_server_on(database_url: str, home: Path, settings: dict[str, str] | None = None) -> Iterator[str]:
    """`prefect server start` on ``database_url`` (with ``settings``, PREFECT_* variables); yields its API URL once
    it answers its health check."""
    port = free_port()
    home.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_API_DATABASE_CONNECTION_URL": database_url,
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_UI_ENABLED": "false", **(settings or {})}
    env.pop("PREFECT_API_URL", None)
    api = f"http://127.0.0.1:{port}/api"
    with open(home / "server.log", "w") as log:
        server = subprocess.Popen([PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                                  env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        if not wait_for(lambda: server.poll() is None and _healthy(api), time.monotonic() + 180, poll=0.5):
            raise RuntimeError(f"the Prefect server did not start: {(home / 'server.log').read_text()[-2000:]}")
        yield api
    finally:
        server.terminate()
        server.wait(30)


def _healthy(api: str) -> bool:
    try:
        with urllib.request.urlopen(f"{api}/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False
