"""The seed's estate rehearsed whole: `vmwave rehearse` of examples/estate-2000.yaml with 2 workers and the seed's
failures, its waves on weekly windows compressed a day to a second.

    .venv/bin/python benchmarks/rehearse_2000.py [--workers 2] [--clock 1d=1s] [--estate FILE]

Last line:
    vms=2000 waves=<n> workers=2 succeeded=<n> injected=<n> attributed=<n> wall_seconds=<s> overhead_per_vm_s=<o>
    peak_rss_mb=<m>
overhead_per_vm_s: the rehearsal's wall time beyond what its calendar forces (its last wave's start on the
rehearsal clock), per VM. peak_rss_mb: the largest peak resident memory (VmHWM) of any one process the rehearsal
ran (its own, the Prefect server, PostgreSQL, each worker and flow run, the lab), sampled every second.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import yaml

from vmwave.domain.classes import DEFAULT_RULES

REPO = Path(__file__).resolve().parents[1]
VMWAVE = str(Path(sys.executable).parent / "vmwave")


def descendants(root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = set(), [root]
    while todo:
        pid = todo.pop()
        found.add(pid)
        todo += children.get(pid, [])
    return found


def peak_kb(pid: int) -> int:
    try:
        line = next(row for row in Path(f"/proc/{pid}/status").read_text().splitlines() if row.startswith("VmHWM:"))
        return int(line.split()[1])
    except (OSError, StopIteration):
        return 0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--clock", default="1d=1s")
    parser.add_argument("--estate", default=str(REPO / "examples" / "estate-2000.yaml"))
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="vmwave-rehearse-"))
    start = (datetime.now(timezone.utc) + timedelta(days=1)).replace(hour=22, minute=0, second=0, microsecond=0)
    rules = {
        **yaml.safe_load(DEFAULT_RULES),
        "schedule": {"start": start.isoformat(), "every": "7d", "length": "6h"},
    }  # Saturday nights, weekly
    (work / "rules.yaml").write_text(yaml.safe_dump(rules, sort_keys=False))
    maps = yaml.safe_load((Path(args.estate).with_name(Path(args.estate).stem + ".maps.yaml")).read_text())
    maps["images"] = {
        "linux": "docker://registry.lab/rhel8:latest",  # P2 rebuilds boot from these
        "windows": "docker://registry.lab/windows2019:latest",
    }
    (work / "maps.yaml").write_text(yaml.safe_dump(maps, sort_keys=False))
    argv = [
        VMWAVE,
        "rehearse",
        "--estate",
        args.estate,
        "--maps",
        str(work / "maps.yaml"),
        "--rules",
        str(work / "rules.yaml"),
        "--workers",
        str(args.workers),
        "--clock",
        args.clock,
        "--out",
        str(work / "out"),
    ]
    began = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    peaks: dict[int, int] = {}
    done = threading.Event()

    def sample() -> None:
        while not done.wait(1.0):
            for pid in descendants(proc.pid):
                peaks[pid] = max(peaks.get(pid, 0), peak_kb(pid))

    threading.Thread(target=sample, daemon=True).start()
    out, _ = proc.communicate()
    done.set()
    wall = time.monotonic() - began
    figures = dict(pair.split("=", 1) for pair in out.strip().splitlines()[-1].split())
    vms = int(figures["vms"])
    overhead = (wall - float(figures["calendar_seconds"])) / max(vms, 1)
    print(f"report: {work / 'out' / 'estate-report.md'}; rehearse exited {proc.returncode}")
    print(
        f"vms={vms} waves={figures['waves']} workers={args.workers} succeeded={figures['succeeded']} "
        f"injected={figures['injected']} attributed={figures['attributed']} wall_seconds={wall:.0f} "
        f"overhead_per_vm_s={overhead:.3f} peak_rss_mb={max(peaks.values(), default=0) / 1024:.0f}"
    )


if __name__ == "__main__":
    main()
