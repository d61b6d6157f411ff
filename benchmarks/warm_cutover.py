"""Downtime of one VM with 1 GiB of real data, migrated cold, then warm with 32 MiB written before the cutover.

Downtime is what the ledger records: from the source's shutdown until the
guest agent of the migrated VM answers. The cold run copies the whole disk
while the source is down; the warm run copies it while the source runs
(precopy), then, at the cutover, only the 32 MiB the guest wrote after the
first round. Both runs go through `migrate_wave` on the lab, with the lab
CDI's vddk reads held to ``--link-mib-s`` (default 100 MiB/s, VDDK over NBD on
a 1 GbE host link; Forklift's published 80-VM run moved 1,173 MiB/s from 8
hosts): on the lab's local disk a copy takes no time a network would.

    .venv/bin/python benchmarks/warm_cutover.py [--link-mib-s 100]

Last line: disk_mb=1024 changed_mb=32 cold_downtime_s=<a> warm_downtime_s=<b> downtime_ratio=<b/a>
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from lab_wave import lab_for  # noqa: E402

DATA_MB, CHANGED_MB = 1024, 32
ESTATE = {
    "version": 1,
    "datacenters": [
        {
            "name": "dc-lab",
            "datastores": ["ds-01"],
            "switches": [{"name": "dvs-lab", "portgroups": [{"name": "pg-vlan100", "vlan": 100}]}],
            "clusters": [{"name": "cl-01", "hosts": 1}],
        }
    ],
    "vms": [
        {
            "name": "erp-01",
            "cluster": "cl-01",
            "guest_id": "rhel8_64Guest",
            "cpus": 2,
            "memory_mb": 4096,
            "cbt": True,
            "disks": [{"size_gb": 4, "datastore": "ds-01", "data_mb": DATA_MB}],
            "nics": [{"portgroup": "pg-vlan100"}],
            "attributes": {"tier": "erp"},
        }
    ],
}


def plan_with(work: Path, wave: str, migration: str) -> str:
    """`vmwave plan`'s entry for the VM in one wave that moves it ``migration``: how a person cuts a test wave."""
    from vmwave.adapters.files import load_maps, load_policy, write_plan
    from vmwave.adapters.vsphere import inventory
    from vmwave.domain.plan import make_plan
    from vmwave.plugins import for_planning
    from vmwave.settings import Settings

    target = Settings.load().need_vcenter()
    doc = make_plan(
        inventory(target), load_policy(), load_maps(os.environ["VMWAVE_MAPS"]), target.url, **for_planning()
    )
    vm = {**doc["waves"][0]["vms"][0], "mode": "cold"}
    doc["waves"] = [
        {
            "id": wave,
            "class": "P3",
            "mode": "cold",
            "migration": migration,
            "precopy_interval": "1h",
            "vms": [{**vm, "migration": migration}],
        }
    ]
    write_plan(doc, work / f"plan-{wave}.yaml")
    return str(work / f"plan-{wave}.yaml")


def downtime(wave: str) -> float:
    from vmwave.adapters.ledger import Ledger
    from vmwave.settings import Settings

    agent = next(r for r in Ledger(Settings.load().ledger).rows(wave) if r["step"] == "guest-agent")
    if agent["status"] != "succeeded":
        raise SystemExit(f"wave {wave}: the VM did not migrate: {agent['error']}")
    return agent["detail"]["downtime_seconds"]


def rounds(wave: str) -> list[dict]:
    from vmwave.adapters.ledger import Ledger
    from vmwave.settings import Settings

    row = next((r for r in Ledger(Settings.load().ledger).rows(wave) if r["step"] == "precopy"), None)
    return ((row or {}).get("detail") or {}).get("rounds", [])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--link-mib-s", type=float, default=100.0, help="the lab CDI's vddk read rate (0: unlimited)")
    args = parser.parse_args()
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    with (
        tempfile.TemporaryDirectory(prefix="vmwave-bench-") as tmp,
        lab_for(ESTATE, Path(tmp), kube_config={"copy_mib_per_s": args.link_mib_s or None}),
    ):
        from prefect.testing.utilities import prefect_test_harness

        from vmwave.adapters.ledger import Ledger
        from vmwave.settings import Settings
        from vmwave_flows.wave import migrate_wave, rollback_wave
        from vmwave_lab.changes import write_disk

        work = Path(tmp)
        with prefect_test_harness(server_startup_timeout=120):
            plan = plan_with(work, "cold1", "cold")
            migrate_wave(plan, "cold1", report_dir=tmp)
            cold = downtime("cold1")
            rollback_wave(plan, "cold1")  # the source runs again, as it did before
            plan = plan_with(work, "warm1", "warm")
            run = threading.Thread(target=migrate_wave, args=(plan, "warm1"), kwargs={"report_dir": tmp})
            run.start()
            deadline = time.monotonic() + 600
            while not rounds("warm1") and run.is_alive() and time.monotonic() < deadline:
                time.sleep(0.2)
            first = rounds("warm1")
            write_disk(work / "lab", "erp-01", 0, DATA_MB // 2, CHANGED_MB)  # the running guest writes
            Ledger(Settings.load().ledger).requests.request_cutover("warm1")
            run.join()
            warm = downtime("warm1")
            final = next(r for r in Ledger(Settings.load().ledger).rows("warm1") if r["step"] == "cdi-import")
    print(
        f"link_mib_s={args.link_mib_s:g} first_round_mb={first[0]['bytes'] >> 20} "
        f"first_round_s={first[0]['seconds']:.2f} final_delta_mb={final['bytes'] >> 20}"
    )
    print(
        f"disk_mb={DATA_MB} changed_mb={CHANGED_MB} cold_downtime_s={cold:.2f} warm_downtime_s={warm:.2f} "
        f"downtime_ratio={warm / cold:.3f}"
    )


if __name__ == "__main__":
    main()
