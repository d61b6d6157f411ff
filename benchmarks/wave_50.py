"""A 50-VM wave on the lab, 64 MiB of real data per disk, against plain qemu-img on the same disks.

    .venv/bin/python benchmarks/wave_50.py [--vms 50] [--data-mb 64] [--https]

Last line:
    vms=N succeeded=<n> wave_seconds=<t> overhead_per_vm_s=<o> convert_mb_s=<m> baseline_qemu_img_mb_s=<b>
    worker_bytes=<w> peak_workdir_mb=<p>
overhead: wave wall time beyond the baseline's data work, per VM. convert_mb_s: the disks' data over the wall
time during which any disk's bytes moved (CDI reading it from the lab vCenter into its PVC, from ImportInProgress
to Succeeded as the import step saw it) or any in-place conversion ran,
against plain `qemu-img convert` of the same flat disk files from the datastore into one raw file each, one
after another, in the same run. worker_bytes: bytes of the disk files (datastore, volumes, the work directory but
its logs) that the worker process opened or handed to a child process. peak_workdir_mb: the largest size of
VMWAVE_WORKDIR during the wave. --https reads the disks over the datastore's /folder URL instead of VDDK.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

from lab_wave import busy_seconds, lab_for, run_first_wave


def estate(vms: int, data_mb: int) -> dict:
    return {
        "version": 1,
        "nodes": [{"name": f"worker-{i}", "cpu": 64, "memory_gi": 256} for i in range(1, 5)],
        "datacenters": [
            {
                "name": "dc-bench",
                "datastores": ["ds-01", "ds-02"],
                "switches": [{"name": "dvs", "portgroups": [{"name": "pg-vlan100", "vlan": 100}]}],
                "clusters": [{"name": "cl-01", "hosts": 5}],
            }
        ],
        "vms": [
            {
                "name": "app-{n:03d}",
                "count": vms,
                "guest_id": "rhel8_64Guest",
                "cpus": 2,
                "memory_mb": 2048,
                "disks": [{"size_gb": 1, "datastore": "ds-01", "data_mb": data_mb}],
                "nics": [{"portgroup": "pg-vlan100"}],
                "attributes": {"tier": "app"},
            }
        ],
    }


class DiskWatch:
    """Which disk files this process touches (an audit hook on open and subprocess), and the work directory's peak."""

    def __init__(self, disk_roots: list[Path], workdir: Path):
        self.roots, self.workdir = [str(r) for r in disk_roots + [workdir]], workdir
        self.touched: set[str] = set()
        self.peak = 0
        self._stop = threading.Event()

    def _audit(self, event: str, args: tuple) -> None:
        names = [args[0]] if event == "open" else list(args[1] or []) if event == "subprocess.Popen" else []
        for name in names:
            if (
                isinstance(name, (str, os.PathLike))
                and any(str(name).startswith(r) for r in self.roots)
                and not str(name).endswith(".log")
            ):
                self.touched.add(str(name))

    def _sample(self) -> None:
        while not self._stop.wait(0.1):
            files = [f for f in self.workdir.rglob("*") if f.is_file()] if self.workdir.exists() else []
            self.peak = max(self.peak, sum(f.stat().st_blocks * 512 for f in files))

    def start(self) -> None:
        sys.addaudithook(self._audit)  # for the rest of the process: nothing else runs after the wave
        threading.Thread(target=self._sample, daemon=True).start()

    def worker_bytes(self) -> int:
        self._stop.set()
        return sum(Path(f).stat().st_blocks * 512 for f in self.touched if Path(f).is_file())


def data_spans(rows: list[dict]) -> list[tuple[datetime, datetime]]:
    """When disk bytes moved: each disk's copy as the import step saw CDI report it, and each in-place conversion."""
    spans = []
    for row in rows:
        if row["step"] == "cdi-import":
            spans += [
                (
                    datetime.fromtimestamp(d["copy_started"], timezone.utc),
                    datetime.fromtimestamp(d["copy_finished"], timezone.utc),
                )
                for d in (row["detail"] or {}).get("disks", [])
                if "copy_started" in d and "copy_finished" in d
            ]
        elif row["step"] == "convert" and row["status"] == "succeeded":
            spans.append(
                tuple(
                    t if t.tzinfo else t.replace(tzinfo=timezone.utc) for t in (row["started_at"], row["finished_at"])
                )
            )
    return spans


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vms", type=int, default=50)
    parser.add_argument("--data-mb", type=int, default=64)
    parser.add_argument("--https", action="store_true", help="no VDDK: CDI streams each disk from /folder")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        with lab_for(
            estate(args.vms, args.data_mb),
            work,
            VMWAVE_IN_FLIGHT="10",
            **({"VMWAVE_VDDK_IMAGE": ""} if args.https else {}),
        ):
            disks = sorted((work / "lab" / "datastores" / "dc-bench" / "ds-01").glob("app-*/app-*_0-flat.vmdk"))
            (work / "baseline").mkdir()
            started = time.perf_counter()
            for n, disk in enumerate(disks):  # one raw file each, as the wave writes one PVC each
                subprocess.run(
                    [
                        "qemu-img",
                        "convert",
                        "-f",
                        "raw",
                        "-O",
                        "raw",
                        str(disk),
                        str(work / "baseline" / f"disk{n}.raw"),
                    ],
                    check=True,
                )
            baseline = time.perf_counter() - started
            shutil.rmtree(work / "baseline")
            data_bytes = len(disks) * (args.data_mb << 20)
            watch = DiskWatch([work / "lab" / "datastores", work / "lab" / "volumes"], work / "work")
            run = run_first_wave(work, args.vms, before=watch.start)
            worker_bytes = watch.worker_bytes()
    span = busy_seconds(data_spans(run.rows))
    per_step: dict[str, list[float]] = {}
    for r in run.rows:
        per_step.setdefault(r["step"], []).append((r["finished_at"] - r["started_at"]).total_seconds())
    vms = len(run.wave["vms"])
    print("mean seconds per step: " + ", ".join(f"{k} {sum(v) / len(v):.2f}" for k, v in per_step.items()))
    print(
        f"wave {run.wave['id']}: {vms} VMs, {run.report['succeeded']} succeeded in {run.seconds:.1f}s; "
        f"baseline qemu-img of the same {len(disks)} disks {baseline:.1f}s"
    )
    print(
        f"vms={vms} succeeded={run.report['succeeded']} wave_seconds={run.seconds:.1f} "
        f"overhead_per_vm_s={(run.seconds - baseline) / max(vms, 1):.2f} "
        f"convert_mb_s={data_bytes / 1e6 / span:.0f} baseline_qemu_img_mb_s={data_bytes / 1e6 / baseline:.0f} "
        f"worker_bytes={worker_bytes} peak_workdir_mb={watch.peak / 2**20:.2f}"
    )


if __name__ == "__main__":
    main()
