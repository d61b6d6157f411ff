"""A 50-VM wave on the lab, with 64 MiB of real data per disk, against plain qemu-img on the same disks.

    .venv/bin/python benchmarks/wave_50.py [--vms 50] [--data-mb 64]

Last line:
    vms=N succeeded=<n> wave_seconds=<t> overhead_per_vm_s=<o> convert_mb_s=<m> baseline_qemu_img_mb_s=<b>
overhead: wave wall time beyond the baseline's data work, per VM; convert_mb_s: bytes the convert steps read
(downloaded from the lab vCenter and converted) divided by the wall time during which any convert step ran,
against plain `qemu-img convert` of the same disks one after another in the same run.
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
from vmwave.adapters.files import load_maps, load_policy, write_plan
from vmwave.domain.plan import make_plan
from vmwave.plugins import planned_tool
from vmwave.settings import Settings
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


def busy_seconds(spans: list[tuple]) -> float:
    """Wall time during which at least one of the spans ran (the convert stage's own clock)."""
    total, end = 0.0, None
    for start, finish in sorted(spans):
        if end is None or start > end:
            total += (finish - start).total_seconds()
            end = finish
        elif finish > end:
            total += (finish - end).total_seconds()
            end = finish
    return total


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
            target = Settings.load().need_vcenter()
            records = inventory(target)
            doc = make_plan(records, load_policy(wave_size=args.vms, per_host=10), load_maps(settings["VMWAVE_MAPS"]),
                            target.url, convert=planned_tool)
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
            all_rows = Ledger(Settings.load().ledger).rows(wave["id"])
            rows = [r for r in all_rows if r["step"] == "convert"]
            span = busy_seconds([(r["started_at"], r["finished_at"]) for r in rows])
            converted = sum(r["bytes"] for r in rows)
            per_step: dict[str, list[float]] = {}
            for r in all_rows:
                per_step.setdefault(r["step"], []).append((r["finished_at"] - r["started_at"]).total_seconds())
        finally:
            lab.down(work / "lab")
    print("mean seconds per step: " + ", ".join(f"{k} {sum(v) / len(v):.2f}" for k, v in per_step.items()))
    print(f"wave {wave['id']}: {len(wave['vms'])} VMs, {report['succeeded']} succeeded in {wave_seconds:.1f}s; "
          f"baseline qemu-img of the same {len(disks)} disks {baseline:.1f}s")
    print(f"vms={len(wave['vms'])} succeeded={report['succeeded']} wave_seconds={wave_seconds:.1f} "
          f"overhead_per_vm_s={(wave_seconds - baseline) / max(len(wave['vms']), 1):.2f} "
          f"convert_mb_s={converted / 1e6 / span:.0f} baseline_qemu_img_mb_s={data_bytes / 1e6 / baseline:.0f}")


if __name__ == "__main__":
    main()
