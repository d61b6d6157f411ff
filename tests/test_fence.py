"""A verified migration's source is fenced in vCenter, and a rollback of that VM puts it back as it was."""

from __future__ import annotations

import os
import subprocess

import pytest
import yaml
from pyVmomi import vim

from helpers import VMWAVE
from vmwave.adapters.kubernetes import Cluster
from vmwave.adapters.vsphere import connect
from vmwave.adapters.vsphere_fence import source as fence_view
from vmwave.adapters.vsphere_ops import read, vm_ref
from vmwave.domain.manifests import ANNOTATION_MIGRATED
from vmwave.domain.steps import FENCED_ATTRIBUTE
from vmwave.settings import Settings

pytestmark = pytest.mark.prefect
KV = "kubevirt.io/v1"


def source(env: dict, moref: str) -> dict:
    """The source VM as the lab vCenter has it now."""
    with connect(Settings.load(env=env).need_vcenter()) as si:
        found = fence_view(si, moref, FENCED_ATTRIBUTE)
        return {
            "name": found.name,
            "folder": read(si, vim.Folder(found.folder, si._stub), "name")["name"],
            "power": found.power_state,
            "nics": sorted(found.nics.values()),
            "attribute": found.attribute,
        }


def make_folder(env: dict, moref: str, name: str) -> None:
    with connect(Settings.load(env=env).need_vcenter()) as si:
        entity = vm_ref(si, moref)
        while not isinstance(entity, vim.Datacenter):
            entity = read(si, entity, "parent")["parent"]
        vm_folder = read(si, entity, "vmFolder")["vmFolder"]
        if si.content.searchIndex.FindChild(entity=vm_folder, name=name) is None:
            vm_folder.CreateFolder(name)


def run(env: dict, *argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([VMWAVE, *argv], env=env, capture_output=True, text=True, timeout=600)


def test_a_verified_source_is_fenced_and_its_rollback_unfences_it(
    prefect_server, wave_lab, wave_env, planned, tmp_path
):
    from prefect.settings import PREFECT_API_URL

    plan, doc, wave = planned
    wave["vms"] = wave["vms"][:1]
    entry = wave["vms"][0]
    env = {**os.environ, **wave_env, "PREFECT_API_URL": PREFECT_API_URL.value()}
    before = source(wave_env, entry["moref"])
    assert before["attribute"] == "" and all(nic == [before["power"] == "poweredOn", True] for nic in before["nics"])

    # A folder vCenter lacks is found before anything changes.
    doc["fence"] = {"folder": "migrated-sources"}
    plan.write_text(yaml.safe_dump(doc, sort_keys=False))
    refused = run(env, "migrate", "--plan", str(plan), "--wave", wave["id"], "--report-dir", str(tmp_path))
    assert refused.returncode != 0 and "no VM folder 'migrated-sources'" in refused.stderr, refused.stderr
    assert source(wave_env, entry["moref"]) == before

    make_folder(wave_env, entry["moref"], "migrated-sources")
    done = run(env, "migrate", "--plan", str(plan), "--wave", wave["id"], "--report-dir", str(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    fenced = source(wave_env, entry["moref"])
    assert fenced["name"] == f"{entry['name']}-migrated" and fenced["folder"] == "migrated-sources"
    assert fenced["power"] == "poweredOff"
    assert fenced["nics"] and all(nic == [False, False] for nic in fenced["nics"])
    assert fenced["attribute"].startswith(f"vmwave/{entry['target_name']} 20")

    # Another ledger that finds no verified VirtualMachine still finds the fenced source, and leaves it alone.
    cluster = Cluster(wave_lab["VMWAVE_KUBECONFIG"])
    marker = cluster.get(KV, "VirtualMachine", "vmwave", entry["target_name"])["metadata"]["annotations"][
        ANNOTATION_MIGRATED
    ]
    cluster.patch(
        KV, "VirtualMachine", "vmwave", entry["target_name"], {"metadata": {"annotations": {ANNOTATION_MIGRATED: None}}}
    )
    other = {**env, "VMWAVE_LEDGER": str(tmp_path / "other-ledger.db")}
    again = run(other, "migrate", "--plan", str(plan), "--wave", wave["id"], "--report-dir", str(tmp_path / "again"))
    assert again.returncode == 0, again.stdout + again.stderr
    report = (tmp_path / "again" / f"wave-{wave['id']}-report.md").read_text()
    assert "already migrated \\(its source is fenced, migrated to vmwave/" in report, report
    assert source(wave_env, entry["moref"]) == fenced
    cluster.patch(
        KV,
        "VirtualMachine",
        "vmwave",
        entry["target_name"],
        {"metadata": {"annotations": {ANNOTATION_MIGRATED: marker}}},
    )

    undone = run(env, "rollback", "--plan", str(plan), "--wave", wave["id"], "--vm", entry["name"])
    assert undone.returncode == 0, undone.stdout + undone.stderr
    assert source(wave_env, entry["moref"]) == before  # its name, folder, NICs, attribute and power
    assert cluster.get(KV, "VirtualMachine", "vmwave", entry["target_name"]) is None


def test_a_fence_that_makes_the_migrated_attribute_another_made_first_uses_that_one(target):
    """The 2000-VM rehearsal met it: two VMs fenced at once both found no `vmwave.migrated` attribute and both
    made it; vCenter answered the second DuplicateName, and that VM failed 'unexpected'."""
    from vmwave.adapters.vsphere_fence import _field_key, made_field

    name = f"vmwave.race-{os.getpid()}"
    with connect(target) as first, connect(target) as second:
        assert _field_key(first, name, create=False) is None  # the first fence finds none ...
        theirs = made_field(second, name)  # ... the second makes it ...
        assert made_field(first, name) == theirs  # ... and the first, making it too, uses the second's
        with pytest.raises(vim.fault.DuplicateName):  # what vCenter answers a second definition
            first.content.customFieldsManager.AddCustomFieldDef(name=name, moType=vim.VirtualMachine)
