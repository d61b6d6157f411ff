"""A 50-VM wave on the lab, with 64 MiB of real data per disk, against plain qemu-img on the same disks.

    .venv/bin/python benchmarks/wave_50.py [--vms 50] [--data-mb 64]

Last line:
    vms=N succeeded=<n> wave_seconds=<t> overhead_per_vm_s=<o> convert_mb_s=<m> baseline_qemu_img_mb_s=<b>
overhead: wave wall time beyond the baseline's data work, per VM; convert_mb_s: bytes the convert steps read
divided by the time those steps took (summed: throughput per step, as the baseline's is per disk).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
from pathlib import Path

import yaml

from vmwave.adapters.ledger import Ledger
from vmwave.adapters.vsphere import inventory
from vmwave.planning import load_maps, load_policy, make_plan, write_plan
from vmwave.settings import vcenter_target
from vmwave_lab import lab


def estate(vms: int, data_mb: int) -> dict:
    return {"version": 1, "nodes": [{"name": f"worker-{i}", "cpu": 64, "memory_gi": 256} for i in range(1, 5)],
            "datacenters": [{
        "name": "dc-bench", "datastores": ["ds-01", "ds-02"],
        "switches": [{"name": "dvs", "portgroups": [{"name": "pg-vlan100", "vlan": 100}]}],
        "clusters": [{"name": "cl-01", "hosts": 5}]}],
        "vms": [{"name": "app-{n:03d}", "count": vms, "guest_id": "rhel8_64Guest", "cpus": 2, "memory_mb": 2048,
                 "disks": [{"size_gb": 1, "datastore": "ds-01", "data_mb": data_mb}], "nics": [{"portgroup": "pg-vlan100"}],
                 "attributes": {"tier": "app"}}]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vms", type=int, default=50)
    parser.add_argument("--data-mb", type=int, default=64)
    args = parser.parse_args()
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    from prefect.testing.utilities import prefect_test_harness

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "bench.yaml").write_text(yaml.safe_dump(estate(args.vms, args.data_mb)))
        settings = lab.up(work / "bench.yaml", state_dir=work / "lab")
        try:
            os.environ.update(settings, VMWAVE_LEDGER=str(work / "ledger.db"), VMWAVE_WORKDIR=str(work / "work"),
                              VMWAVE_IN_FLIGHT="10")
            target = vcenter_target()
            records = inventory(target)
            doc = make_plan(records, load_policy(wave_size=args.vms, per_host=10), load_maps(settings["VMWAVE_MAPS"]),
                            target.url)
            write_plan(doc, work / "plan.yaml")
            wave = doc["waves"][0]

            disks = sorted((work / "lab" / "datastores" / "dc-bench" / "ds-01").glob("app-*/app-*_0.vmdk"))  # the seeded disks
            data_bytes = 0
            started = time.perf_counter()
            for disk in disks:
                subprocess.run(["qemu-img", "convert", "-O", "qcow2", str(disk), str(work / "baseline.qcow2")], check=True)
                data_bytes += args.data_mb << 20
            baseline = time.perf_counter() - started
            (work / "baseline.qcow2").unlink()

            from vmwave_flows.wave import migrate_wave

            with prefect_test_harness(server_startup_timeout=120):
                started = time.perf_counter()
                report = migrate_wave(str(work / "plan.yaml"), wave["id"], report_dir=str(work))
                wave_seconds = time.perf_counter() - started
            rows = [r for r in Ledger(str(work / "ledger.db")).rows(wave["id"]) if r["step"] == "convert"]
            span = sum((r["finished_at"] - r["started_at"]).total_seconds() for r in rows)
            converted = sum(r["bytes"] for r in rows)
        finally:
            lab.down(work / "lab")
    print(f"wave {wave['id']}: {len(wave['vms'])} VMs, {report['succeeded']} succeeded in {wave_seconds:.1f}s; "
          f"baseline qemu-img of the same {len(disks)} disks {baseline:.1f}s")
    print(f"vms={len(wave['vms'])} succeeded={report['succeeded']} wave_seconds={wave_seconds:.1f} "
          f"overhead_per_vm_s={(wave_seconds - baseline) / max(len(wave['vms']), 1):.2f} "
          f"convert_mb_s={converted / 1e6 / span:.0f} baseline_qemu_img_mb_s={data_bytes / 1e6 / baseline:.0f}")


if __name__ == "__main__":
    main()
