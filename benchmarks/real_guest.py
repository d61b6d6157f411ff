"""The real Debian 12 guest through import and in-place conversion, against plain virt-v2v of the same disk.

    .venv/bin/python benchmarks/real_guest.py

Last line:
    import_convert_seconds=<a> baseline_v2v_seconds=<b> ratio=<a/b> boot_to_agent_seconds=<c> total_seconds=<d>
import_convert: the cdi-import step (CDI reads the disk from the lab vCenter into the PVC) plus the convert
step (virt-v2v-in-place in the conversion Pod, on the PVC); baseline: plain `virt-v2v -i disk` of the same
VMDK into a local raw disk, in the same run (libguestfs as the lab's nodes run it, TCG where KVM cannot boot
a kernel). boot_to_agent: from applying the VirtualMachine to the guest agent's answer; total: the wave.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from pathlib import Path

from lab_wave import lab_for, run_first_wave
from vmwave_lab import debian_guest

ESTATE = {
    "version": 1,
    "datacenters": [
        {
            "name": "dc-bench",
            "datastores": ["ds-01"],
            "switches": [{"name": "dvs", "portgroups": [{"name": "pg-vlan100", "vlan": 100}]}],
            "clusters": [{"name": "cl-01", "hosts": 1}],
        }
    ],
    "vms": [
        {
            "name": "debian-12",
            "guest_id": "debian12_64Guest",
            "memory_mb": 1024,
            "disks": [{"image": "debian12", "datastore": "ds-01"}],
            "nics": [{"portgroup": "pg-vlan100", "mac": "00:50:56:aa:00:20"}],
        }
    ],
}


def baseline_v2v(work: Path) -> float:
    out = work / "baseline"
    out.mkdir()
    env = {**os.environ, "LIBGUESTFS_BACKEND": "direct"}
    if os.environ.get("VMWAVE_V2V_ACCEL") == "tcg":
        env["LIBGUESTFS_BACKEND_SETTINGS"] = "force_tcg"
    started = time.perf_counter()
    subprocess.run(
        ["virt-v2v", "-i", "disk", str(debian_guest.image()), "-o", "local", "-os", str(out), "-of", "raw"],
        env=env,
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - started


def seconds(row: dict) -> float:
    return (row["finished_at"] - row["started_at"]).total_seconds()


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        with lab_for(ESTATE, work):
            baseline = baseline_v2v(work)
            run = run_first_wave(work, wave_size=10)
    if run.report["succeeded"] != 1:
        raise SystemExit(f"the guest did not migrate: {run.report['rows']}")
    steps = {r["step"]: r for r in run.rows}
    ours = seconds(steps["cdi-import"]) + seconds(steps["convert"])
    boot_to_agent = (steps["guest-agent"]["finished_at"] - steps["boot"]["started_at"]).total_seconds()
    print(
        f"cdi-import {seconds(steps['cdi-import']):.1f}s, convert (virt-v2v-in-place pod) "
        f"{seconds(steps['convert']):.1f}s; plain virt-v2v -i disk of the same VMDK {baseline:.1f}s"
    )
    print(
        f"import_convert_seconds={ours:.1f} baseline_v2v_seconds={baseline:.1f} ratio={ours / baseline:.2f} "
        f"boot_to_agent_seconds={boot_to_agent:.1f} total_seconds={run.seconds:.1f}"
    )


if __name__ == "__main__":
    main()
