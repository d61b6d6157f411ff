"""The rehearsal's own processes, kept running as a service manager keeps a real migration's: a Prefect worker or
the Prefect server that dies is started again where it was, and what happened is written down for the report;
and what each process cost (peak memory, CPU time), which the report gives by role.

A rehearsal is the place to find out what a killed worker or a restarted
server does to a wave; it must not end there. The waves' runs that died with
a worker are rescheduled by ``wave_runs.watch``; this keeps the processes.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path

from vmwave_lab.servers import PREFECT, PrefectServer

WAVES_PER_WORKER = 2  # wave runs one worker runs at once: more only share its CPU


class Crew:
    """N process workers on one pool and the Prefect server they share."""

    def __init__(self, server: PrefectServer, pool: str, workers: int, env: dict[str, str], cwd: Path, logs: Path):
        self.server, self.env, self.cwd, self.logs = server, env, cwd, logs
        self.argv = {
            n: [
                PREFECT,
                "worker",
                "start",
                "--pool",
                pool,
                "--type",
                "process",
                "--limit",
                str(WAVES_PER_WORKER),
                "--name",
                f"rehearsal-{n}",
            ]
            for n in range(1, workers + 1)
        }
        self.workers: dict[int, subprocess.Popen] = {}
        self.incidents: list[str] = []  # what ended unasked and was started again, in order
        self.began = time.monotonic()
        self._stop = threading.Event()
        self._keeper = threading.Thread(target=self._keep, name="vmwave-crew", daemon=True)

    def __enter__(self) -> "Crew":
        self.logs.mkdir(exist_ok=True)
        for n in self.argv:
            self._start_worker(n)
        self._keeper.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._keeper.join()
        for proc in self.workers.values():
            proc.terminate()
        for proc in self.workers.values():
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()

    def _start_worker(self, n: int) -> None:
        with open(self.logs / f"worker-{n}.log", "a") as log:
            self.workers[n] = subprocess.Popen(
                self.argv[n], env=self.env, cwd=self.cwd, stdout=log, stderr=subprocess.STDOUT
            )

    def _keep(self) -> None:
        """On its own thread, as a service manager: whoever waits on the server must not be what restarts it."""
        while not self._stop.wait(1.0):
            self.mind()

    def mind(self) -> None:
        """Start again whatever ended: the server first, since the workers need it."""
        if not self.server.running():
            self.note(f"the Prefect server ended ({_how(self.server.process.returncode)}); started again")
            self.server.start()
        for n, proc in self.workers.items():
            if proc.poll() is not None:
                self.note(f"worker rehearsal-{n} ended ({_how(proc.returncode)}); started again")
                self._start_worker(n)

    def note(self, what: str) -> None:
        """Write down, with the rehearsal's time, something that happened to it unasked."""
        self.incidents.append(f"{time.monotonic() - self.began:.0f} s: {what}")


def _how(code: int | None) -> str:
    return f"signal {-code}" if code is not None and code < 0 else f"exit {code}"


ROLES = (
    ("prefect server start", "Prefect server"),
    ("prefect worker start", "worker"),
    ("prefect.engine", "wave run"),
    ("postgres", "PostgreSQL"),
    ("vmwave_lab.kube", "lab Kubernetes"),
    ("vcsim", "lab vCenter"),
    ("prometheus", "Prometheus"),
    ("vmwave exporter", "exporter"),
    ("qemu", "QEMU guest"),
    ("vmwave rehearse", "the rehearsal"),
)


class Usage:
    """What each process under this one cost, sampled every second: its largest resident memory (VmHWM) and the
    CPU time it had used when last seen, by role."""

    def __init__(self, root: int):
        self.root, self.peaks, self.cpu, self.roles = root, {}, {}, {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="vmwave-usage", daemon=True)

    def __enter__(self) -> "Usage":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while True:
            for pid, line in _descendants(self.root).items():
                role = next((name for part, name in ROLES if part in line), None)
                kb, cpu = _peak_kb(pid), _cpu_seconds(pid)
                if role and kb:
                    self.peaks[pid], self.roles[pid] = max(self.peaks.get(pid, 0), kb), role
                    self.cpu[pid] = max(self.cpu.get(pid, 0.0), cpu)
            if self._stop.wait(1.0):
                return

    def by_role(self) -> dict[str, tuple[int, float, float]]:
        """Role -> (processes seen, the largest peak of one of them in MiB, their CPU seconds together)."""
        found: dict[str, tuple[int, float, float]] = {}
        for pid, kb in self.peaks.items():
            count, peak, cpu = found.get(self.roles[pid], (0, 0.0, 0.0))
            found[self.roles[pid]] = (count + 1, max(peak, kb / 1024), cpu + self.cpu[pid])
        return found


def _descendants(root: int) -> dict[int, str]:
    """pid -> command line of every process under ``root`` and of ``root`` itself."""
    parents, lines = {}, {}
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            lines[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, ValueError, IndexError):
            continue
    children: dict[int, list[int]] = {}
    for pid, parent in parents.items():
        children.setdefault(parent, []).append(pid)
    found, todo = {}, [root]
    while todo:
        pid = todo.pop()
        found[pid] = lines.get(pid, "")
        todo += children.get(pid, [])
    return found


def _peak_kb(pid: int) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    return next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:")), 0)


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime
