"""A real Debian 12 guest migrates end to end: CDI from vSphere, virt-v2v-in-place in a pod, a QEMU boot, its agent.

The guest has a static address on ens192 and no DHCP (lab/debian_guest.py's
``static`` variant): it answers only if the conversion kept the interface
name on its MAC, so its address after boot shows the static IP survived.

Its twin with the guest agent masked fails at the guest-agent check in the
same wave, is rolled back, and its source runs again. Both move in one wave
a person cut out of `vmwave plan`'s output, through the `vmwave migrate`
command, as an operator would run them, with a kubeconfig of the service
account that deployments/kubernetes/rbac.yaml grants what a wave needs.
"""

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from helpers import CONVERSION, VMWAVE, rbac_audit, service_account_kubeconfig
from vmwave.adapters.files import dump_plan
from vmwave.adapters.kubernetes import Cluster
from vmwave.adapters.ledger import Ledger
from vmwave.adapters.vsphere import connect
from vmwave.adapters.vsphere_ops import power_state, snapshots, vm_ref
from vmwave.settings import Settings

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.prefect,
    pytest.mark.timeout(1800),
    pytest.mark.skipif(
        not (shutil.which("virt-v2v-in-place") and shutil.which("qemu-system-x86_64") and os.geteuid() == 0),
        reason="needs root and: apt-get install -y virt-v2v libguestfs-tools nbdkit libnbd-bin qemu-system-x86",
    ),
]

GUESTS = ("debian-12", "debian-12-noagent")
RULES = """\
version: 1
smoke:
  - when: {name: "^debian-12"}
    checks: [{tcp: 8080}, {http: "http://{ip}:8080/", status: 200}]
"""


def test_a_real_debian_guest_migrates_and_its_broken_twin_rolls_back(
    prefect_server, lab, lab_settings, target, by_name, tmp_path
):
    worker = service_account_kubeconfig(lab_settings["VMWAVE_KUBECONFIG"], tmp_path / "vmwave-worker.kubeconfig")
    env = {
        **os.environ,
        **lab_settings,
        "VMWAVE_LEDGER": str(tmp_path / "ledger.db"),
        "VMWAVE_KUBECONFIG": str(worker),
        "VMWAVE_WORKDIR": str(tmp_path / "work"),
        "VMWAVE_TIMEOUTS": "agent=150,boot=300",
    }
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    plan = tmp_path / "plan.yaml"
    subprocess.run(
        [VMWAVE, "plan", "--rules", str(rules), "--out", str(plan)], env=env, check=True, capture_output=True
    )
    doc = yaml.safe_load(plan.read_text())
    moved = []
    for wave in doc["waves"]:  # a person moves the two guests into a wave of their own
        moved += [vm for vm in wave["vms"] if vm["name"] in GUESTS]
        wave["vms"] = [vm for vm in wave["vms"] if vm["name"] not in GUESTS]
    doc["waves"] = [w for w in doc["waves"] if w["vms"]] + [{"id": "e2e", "class": "P3", "mode": "cold", "vms": moved}]
    plan.write_text(dump_plan(doc))  # as vmwave writes plans: every value written out, no YAML aliases
    assert sorted(vm["name"] for vm in moved) == sorted(GUESTS)

    run = subprocess.run(
        [VMWAVE, "migrate", "--plan", str(plan), "--wave", "e2e", "--report-dir", str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=1500,
    )
    assert run.returncode == 1, run.stdout + run.stderr  # not every VM succeeded: the broken twin did not

    ledger: dict[str, dict] = {}
    for row in Ledger(Settings.load(env=env).ledger).rows("e2e"):  # per VM, its steps in the order they ran
        ledger.setdefault(row["vm"], {})[row["step"]] = row
    good, broken = ledger["debian-12"], ledger["debian-12-noagent"]
    assert [(name, s["status"]) for name, s in good.items()] == [
        ("snapshot", "succeeded"),
        ("cdi-import", "succeeded"),
        ("convert", "succeeded"),
        ("network-attach", "succeeded"),
        ("boot", "succeeded"),
        ("guest-agent", "succeeded"),
        ("smoke-test", "succeeded"),
        ("fence", "succeeded"),
    ]
    assert good["fence"]["detail"]["renamed"] == "debian-12-migrated"  # it cannot come back beside its copy
    denied, used = rbac_audit(lab_settings["VMWAVE_KUBECONFIG"])  # the shipped RBAC's account did all of it
    assert denied == [] and CONVERSION <= used
    converted = good["convert"]["detail"]
    assert converted["tool"] == "virt-v2v" and converted["exit_code"] == 0  # a guest conversion, not a copy
    assert converted["static_ips"] == ["00:50:56:aa:00:20:ip:10.0.2.15,10.0.2.2,24,10.0.2.3"]  # virt-v2v's --mac
    assert converted["scripts"] == ["pin-nic-names.sh"]
    assert (
        "the NIC 00:50:56:aa:00:20 keeps the interface name ens192, which holds 10.0.2.15"
        in Path(converted["log"]).read_text()
    )
    assert du(tmp_path / "work") < 1 << 20  # the worker kept a log, never a disk
    assert (
        good["guest-agent"]["detail"]["os"]["id"] == "debian"
        and good["guest-agent"]["detail"]["os"]["versionId"] == "12"
    )
    checks = [c["check"] for c in good["smoke-test"]["detail"]["checks"]]
    assert checks == [
        "tcp/8080",
        "http http://{ip}:8080/ -> 200",
        "agent os id~/^([^m]|m[^s])/,kernelRelease~/./",
        "tcp/22",
    ]  # the Linux plugin's SSH check, answered by the guest's own sshd

    cluster = Cluster(lab_settings["VMWAVE_KUBECONFIG"])
    assert cluster.get("v1", "Pod", "vmwave", converted["pod"]) is None  # the conversion pod is gone once done
    vmi = cluster.get("kubevirt.io/v1", "VirtualMachineInstance", "vmwave", "debian-12")
    assert vmi["status"]["phase"] == "Running"
    started = [
        e.message
        for e in cluster.resource("v1", "Event").get(namespace="vmwave").items
        if e.reason == "QemuStarted" and e.involvedObject.name == "debian-12"
    ]
    assert started and "accel=" in started[-1]  # a real QEMU process, and the lab says which accelerator
    nic = vmi["status"]["interfaces"][0]
    assert (nic["mac"], nic["interfaceName"], nic["ipAddress"]) == ("00:50:56:aa:00:20", "ens192", "10.0.2.15")
    assert vmi["status"]["guestOSInfo"]["prettyName"].startswith("Debian GNU/Linux 12")

    assert broken["guest-agent"]["status"] == "failed" and broken["guest-agent"]["cause"] == "guest-agent-not-connected"
    assert broken["rollback"]["status"] == "succeeded"
    assert cluster.get("kubevirt.io/v1", "VirtualMachine", "vmwave", "debian-12-noagent") is None

    with connect(target) as si:
        for name in GUESTS:  # both sources still exist, with their vmwave snapshot
            assert "vmwave-e2e" in snapshots(si, vm_ref(si, by_name[name].moref))
        assert power_state(si, by_name["debian-12-noagent"].moref) == "poweredOn"  # rolled back: running again
        assert power_state(si, by_name["debian-12"].moref) == "poweredOff"  # cut over: the source stays off

    report = (tmp_path / "wave-e2e-report.md").read_text()
    row = next(line for line in report.splitlines() if line.startswith("| debian-12 |"))
    assert "| succeeded |" in row and "convert" in row and "guest-agent" in row
    failed = next(line for line in report.splitlines() if line.startswith("| debian-12-noagent |"))
    assert "guest-agent-not-connected" in failed and "qemu-guest-agent" in failed  # the seed's cause and fix


def du(folder: Path) -> int:
    return sum(f.stat().st_blocks * 512 for f in folder.rglob("*") if f.is_file())
