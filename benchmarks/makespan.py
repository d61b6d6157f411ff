"""One wave of VMs with mixed disk sizes on several hosts and datastores, the lab CDI's link held to a rate and each
host capped, against the least time those caps allow.

    .venv/bin/python benchmarks/makespan.py [--vms 18] [--hosts 3] [--mib-per-s 4] [--per-host 2]

Last line:
    vms=<n> makespan_s=<a> lower_bound_s=<b> ratio=<a/b>
makespan: the wave's wall time. lower_bound: no order of the VMs ends the wave sooner. A copy runs at most at the
link's rate (the lab CDI's ``copy_mib_per_s``, as VDDK over one host's NBD link), a host runs at most ``per-host``
VMs at once and a datastore ``VMWAVE_PER_DATASTORE`` (10), the wave ``in_flight`` (hosts x per-host): the bound is
the most loaded host's or datastore's bytes over its cap times the rate, or all bytes over in_flight times the rate,
whichever is longest.
"""

from __future__ import annotations

import argparse
import random
import tempfile
from collections import defaultdict
from pathlib import Path

from lab_wave import lab_for, run_first_wave

SIZES_MB = (32, 64, 128, 192, 256, 384)  # data per disk: mixed, as an estate's are
PER_DATASTORE = 10


def estate(vms: int, hosts: int) -> dict:
    rng = random.Random(7)  # the same estate every run
    return {
        "version": 1,
        "nodes": [{"name": f"worker-{i}", "cpu": 64, "memory_gi": 256} for i in range(1, 5)],
        "datacenters": [
            {
                "name": "dc-bench",
                "datastores": ["ds-01", "ds-02"],
                "switches": [{"name": "dvs", "portgroups": [{"name": "pg-vlan100", "vlan": 100}]}],
                "clusters": [{"name": "cl-01", "hosts": hosts}],
            }
        ],
        "vms": [
            {
                "name": f"app{n:02d}-{{n}}",
                "count": 1,
                "guest_id": "rhel8_64Guest",
                "cpus": 2,
                "memory_mb": 2048,
                "nics": [{"portgroup": "pg-vlan100"}],
                "attributes": {"tier": "app"},
                "disks": [{"size_gb": 1, "datastore": f"ds-0{1 + n % 2}", "data_mb": rng.choice(SIZES_MB)}],
            }
            for n in range(vms)
        ],
    }


def lower_bound(
    data_mb: dict[str, int], records: dict[str, dict], mib_per_s: float, per_host: int, in_flight: int
) -> float:
    """Seconds the busiest host, datastore or the whole wave needs at its cap, from each VM's data (what VDDK
    copies: the allocated blocks)."""
    by_host, by_datastore = defaultdict(int), defaultdict(int)
    for name, mib in data_mb.items():
        by_host[records[name]["host"]] += mib
        by_datastore[records[name]["datastore"]] += mib
    return max(
        max(by_host.values()) / (per_host * mib_per_s),
        max(by_datastore.values()) / (PER_DATASTORE * mib_per_s),
        sum(data_mb.values()) / (in_flight * mib_per_s),
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--vms", type=int, default=18)
    parser.add_argument("--hosts", type=int, default=3)
    parser.add_argument("--mib-per-s", type=float, default=4.0)
    parser.add_argument("--per-host", type=int, default=2)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="vmwave-makespan-"))
    in_flight = args.hosts * args.per_host
    seed = estate(args.vms, args.hosts)
    with lab_for(
        seed,
        work,
        kube_config={"copy_mib_per_s": args.mib_per_s},
        VMWAVE_PER_HOST=str(args.per_host),
        VMWAVE_IN_FLIGHT=str(in_flight),
        VMWAVE_PER_DATASTORE=str(PER_DATASTORE),
    ):
        from vmwave.adapters.vsphere import inventory
        from vmwave.settings import Settings

        records = {
            r.name: {"host": r.host, "datastore": r.disks[0].datastore}
            for r in inventory(Settings.load().need_vcenter())
        }
        run = run_first_wave(work, args.vms)
    succeeded = run.report["succeeded"]
    data_mb = {vm["name"].replace("{n}", "1"): vm["disks"][0]["data_mb"] for vm in seed["vms"]}
    bound = lower_bound(data_mb, records, args.mib_per_s, args.per_host, in_flight)
    print(f"wave {run.wave['id']}: {succeeded} of {args.vms} succeeded; {work}")
    print(f"vms={args.vms} makespan_s={run.seconds:.1f} lower_bound_s={bound:.1f} ratio={run.seconds / bound:.3f}")


if __name__ == "__main__":
    main()
