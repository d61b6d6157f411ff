"""Real servers a rehearsal or a test starts for itself: PostgreSQL (Debian's postgresql-15), a Prefect server
and Prometheus.

PostgreSQL refuses to run as root, so as root its commands run as the
``postgres`` user the Debian package creates, in a folder of its own under the
system's temporary directory (pytest's are private to root).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
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
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-l",
            str(self.folder / "server.log"),
            "-w",
            "-o",
            f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c max_connections=200",
            "start",
        )
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


class PrefectServer:
    """`prefect server start` on a database, on a port of its own that it keeps across restarts: a rehearsal
    restarts it where it died, as systemd would, and its clients reconnect to the same address."""

    def __init__(self, database_url: str, home: Path, settings: dict[str, str] | None = None):
        self.home, self.port = home, free_port()
        self.api = f"http://127.0.0.1:{self.port}/api"
        self.env = {
            **os.environ,
            "PREFECT_HOME": str(home),
            "PREFECT_API_DATABASE_CONNECTION_URL": database_url,
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_UI_ENABLED": "false",
            **(settings or {}),
        }
        self.env.pop("PREFECT_API_URL", None)
        self.process: subprocess.Popen | None = None

    def start(self) -> "PrefectServer":
        self.home.mkdir(parents=True, exist_ok=True)
        with open(self.home / "server.log", "a") as log:
            self.process = subprocess.Popen(
                [PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(self.port)],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        if not wait_for(lambda: self.running() and _healthy(self.api), time.monotonic() + 180, poll=0.5):
            self.stop()
            raise RuntimeError(f"the Prefect server did not start: {(self.home / 'server.log').read_text()[-2000:]}")
        return self

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        if self.running():
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@contextmanager
def prefect_server_on(database_url: str, home: Path, settings: dict[str, str] | None = None) -> Iterator[PrefectServer]:
    """A Prefect server on ``database_url`` (with ``settings``, PREFECT_* variables), once it answers its health
    check; its API URL is ``.api``."""
    server = PrefectServer(database_url, home, settings).start()
    try:
        yield server
    finally:
        server.stop()


def _healthy(api: str) -> bool:
    try:
        with urllib.request.urlopen(f"{api}/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


class Prometheus:
    """A real Prometheus (Debian's) scraping ``targets`` every ``interval``, its data in ``folder``; ``query_range``
    asks it what it recorded."""

    def __init__(self, folder: Path, targets: dict[str, str], interval: str = "2s"):
        self.folder, self.port = folder, free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        folder.mkdir(parents=True, exist_ok=True)
        scrapes = [{"job_name": job, "static_configs": [{"targets": [address]}]} for job, address in targets.items()]
        (folder / "prometheus.yml").write_text(
            json.dumps(
                {  # JSON is YAML
                    "global": {"scrape_interval": interval, "scrape_timeout": interval},
                    "scrape_configs": scrapes,
                }
            )
        )
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> "Prometheus":
        with open(self.folder / "prometheus.log", "w") as log:
            self.process = subprocess.Popen(
                [
                    "prometheus",
                    f"--config.file={self.folder / 'prometheus.yml'}",
                    f"--storage.tsdb.path={self.folder / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--log.level=warn",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        if not wait_for(lambda: self.process.poll() is None and self._ready(), time.monotonic() + 60, poll=0.2):
            self.__exit__()
            raise RuntimeError(f"Prometheus did not start: {(self.folder / 'prometheus.log').read_text()[-2000:]}")
        return self

    def __exit__(self, *exc: object) -> None:
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.base}/-/ready", timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    def query_range(self, query: str, start: float, end: float, step: float) -> list[tuple[float, float]]:
        """(time, value) of the query's first series, or [] when it has none."""
        params = urllib.parse.urlencode({"query": query, "start": start, "end": end, "step": step})
        with urllib.request.urlopen(f"{self.base}/api/v1/query_range?{params}", timeout=60) as answer:
            series = json.loads(answer.read())["data"]["result"]
        return [(float(t), float(v)) for t, v in series[0]["values"]] if series else []
