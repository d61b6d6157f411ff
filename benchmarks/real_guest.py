"""One real Debian 12 guest through the whole pipeline, against plain virt-v2v on the same disk.

    .venv/bin/python benchmarks/real_guest.py [--no-baseline]

Last line:
    convert_seconds=<a> boot_to_agent_seconds=<b> total_seconds=<c>
convert: the convert step (download from the lab vCenter + virt-v2v); boot_to_agent: from applying the
VirtualMachine to the guest agent's answer (QEMU under TCG here when KVM cannot boot a kernel);
total: the whole wave. The line before it gives plain `virt-v2v` on the same VMDK, run in the same process.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
from pathlib import Path

import yaml

from vmwave.adapters.conversion import v2v_env
from vmwave.adapters.ledger import Ledger
from vmwave.adapters.vsphere import inventory
from vmwave.adapters.files import load_maps, load_policy, write_plan
from vmwave.domain.plan import make_plan
from vmwave.plugins import planned_tool
from vmwave.settings import Settings
from vmwave_lab import debian_guest, lab

ESTATE = {"version": 1, "datacenters": [{
    "name": "dc-bench", "datastores": ["ds-01"],
    "switches": [{"name": "dvs", "portgroups": [{"name": "pg-vlan100", "vlan": 100}]}],
    "clusters": [{"name": "cl-01", "hosts": 1}]}],
    "vms": [{"name": "debian-12", "guest_id": "debian12_64Guest", "memory_mb": 1024,
             "disks": [{"image": "debian12", "datastore": "ds-01"}],
             "nics": [{"portgroup": "pg-vlan100", "mac": "00:50:56:aa:00:20"}]}]}


def baseline_v2v(work: Path) -> float:
    out = work / "baseline"
    out.mkdir()
    started = time.perf_counter()
    subprocess.run(["virt-v2v", "-i", "disk", str(debian_guest.image()), "-o", "local", "-os", str(out), "-of", "qcow2"],
                   env={**os.environ, **v2v_env({}, os.environ.get("VMWAVE_V2V_ACCEL"))}, check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-baseline", action="store_true", help="skip the plain virt-v2v run")
    args = parser.parse_args()
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    from prefect.testing.utilities import prefect_test_harness

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "bench.yaml").write_text(yaml.safe_dump(ESTATE))
        settings = lab.up(work / "bench.yaml", state_dir=work / "lab")
        try:
            os.environ.update(settings, VMWAVE_LEDGER=str(work / "ledger.db"), VMWAVE_WORKDIR=str(work / "work"))
            baseline = None if args.no_baseline else baseline_v2v(work)
            target = Settings.load().need_vcenter()
            doc = make_plan(inventory(target), load_policy(), load_maps(settings["VMWAVE_MAPS"]), target.url,
                            convert=planned_tool)
            write_plan(doc, work / "plan.yaml")
            wave = doc["waves"][0]["id"]
            from vmwave_flows.wave import migrate_wave

            with prefect_test_harness(server_startup_timeout=120):
                started = time.perf_counter()
                report = migrate_wave(str(work / "plan.yaml"), wave, report_dir=str(work))
                total = time.perf_counter() - started
            steps = {r["step"]: r for r in Ledger(Settings.load().ledger).rows(wave)}
        finally:
            lab.down(work / "lab")
    if report["succeeded"] != 1:
        raise SystemExit(f"the guest did not migrate: {report['rows']}")
    convert = (steps["convert"]["finished_at"] - steps["convert"]["started_at"]).total_seconds()
    boot_to_agent = (steps["guest-agent"]["finished_at"] - steps["boot"]["started_at"]).total_seconds()
    if baseline:
        print(f"plain virt-v2v of the same disk: {baseline:.1f}s; vmwave's convert step / plain virt-v2v = "
              f"{convert / baseline:.2f} (the step also downloads the disk from vCenter)")
    print(f"convert_seconds={convert:.1f} boot_to_agent_seconds={boot_to_agent:.1f} total_seconds={total:.1f}")


if __name__ == "__main__":
    main()
