"""Each concern rule fires on the lab VM built to show it, and not on a clean VM."""

from dataclasses import replace

import pytest

from vmwave.domain.concerns import RULES, assess
from vmwave.domain.maps import parse_maps
from vmwave.domain.records import Disk
from vmwave_lab.estate import load
from helpers import REPO


@pytest.fixture(scope="module")
def found(estate):
    maps = parse_maps(__import__("yaml").safe_load((REPO / "lab/estates/small.maps.yaml").read_text()), "maps.yaml")
    return {vm.name: {c.id: c for c in concerns} for vm, concerns in assess(estate, maps)}


EXPECTED = {
    "shared_disk": "sql-node-1",
    "independent_disk": "Legacy_FileServer.corp",
    "snapshots_present": "Legacy_FileServer.corp",
    "passthrough_device": "gpu-render-01",
    "usb_device": "Legacy_FileServer.corp",
    "vtpm": "win-app-01",
    "secure_boot": "win-app-01",
    "unsupported_guest_os": "Legacy_FileServer.corp",
    "unknown_guest_os": "gpu-render-01",
    "tools_not_running": "gpu-render-01",
    "tools_not_installed": "Legacy_FileServer.corp",
    "invalid_k8s_name": "Legacy_FileServer.corp",
    "name_collision": "App_01",
    "duplicate_mac": "gpu-render-01",
    "unmapped_datastore": "Legacy_FileServer.corp",
    "unmapped_network": "app-many-disks",
    "large_disk": "Legacy_FileServer.corp",
    "many_disks": "app-many-disks",
    "template": "tpl-rhel8",
    "suspended": "app-many-disks",
    "cbt_disabled": "win-app-01",
    "legacy_devices": "Legacy_FileServer.corp",
}


def test_there_are_at_least_15_rules_each_with_a_fix():
    assert len(RULES) >= 15
    assert len({r.id for r in RULES}) == len(RULES)
    assert all(r.severity in ("critical", "warning", "info") and len(r.fix) > 20 for r in RULES)


@pytest.mark.parametrize("rule_id,vm", sorted(EXPECTED.items()))
def test_rule_fires_on_its_vm(found, rule_id, vm):
    concern = found[vm][rule_id]
    assert concern.message and concern.fix


def test_every_rule_is_covered_by_the_lab_or_a_record():
    assert {r.id for r in RULES} - set(EXPECTED) == {"rdm_disk", "no_disks"}


def test_a_clean_vm_has_no_warnings(found):
    assert {c.severity for c in found["web-01"].values()} <= {"info"}
    assert found["web-01"] == {}


def test_invalid_name_says_what_it_becomes(found):
    assert "'legacy-fileserver-corp'" in found["Legacy_FileServer.corp"]["invalid_k8s_name"].message


def test_duplicate_mac_names_the_mac(found):
    assert "00:50:56:aa:00:01" in found["App_01"]["duplicate_mac"].message
    assert "duplicate_mac" not in found["db-01"]


def test_mapping_concerns_need_a_maps_file(estate):
    without = {vm.name: {c.id for c in cs} for vm, cs in assess(estate)}
    assert "unmapped_datastore" not in without["Legacy_FileServer.corp"]


def test_rdm_and_diskless_vms(estate_by_name):
    """The simulator crashes on RDM backings, so these two are checked on records."""
    web = estate_by_name["web-01"]
    rdm = replace(web, disks=(Disk(**{**web.disks[0].__dict__, "rdm": "physical"}),))
    (_, concerns), = assess([rdm])
    assert [c.id for c in concerns if c.severity == "critical"] == ["rdm_disk"]
    (_, concerns), = assess([replace(web, disks=())])
    assert "no_disks" in {c.id for c in concerns}


def test_small_estate_file_is_what_the_lab_served(records, estate):
    """The fast tier's records from the estate file say what the lab vCenter says, rule for rule and field for field.

    Device keys and labels are the simulator's own (``disk-202-0``) and are left out.
    """
    assert len(load(str(REPO / "lab/estates/small.yaml"))["vms"]) == len(records) == len(estate)
    maps = parse_maps(__import__("yaml").safe_load((REPO / "lab/estates/small.maps.yaml").read_text()), "maps.yaml")

    def concerns(vms):
        return {vm.name: sorted((c.id, c.severity) for c in cs) for vm, cs in assess(vms, maps)}

    def shape(r):
        return ([getattr(r, f) for f in ("guest_id", "guest_family", "power_state", "tools", "cpus", "memory_mb",
                                         "firmware", "secure_boot", "cbt", "ips", "devices", "tags", "attributes",
                                         "datacenter", "cluster", "host", "folder", "template")],
                [(d.file, d.datastore, d.capacity_bytes, d.controller, d.bus, d.unit, d.sharing, d.mode, d.thin)
                 for d in r.disks],
                [(n.mac, n.adapter, n.portgroup, n.vlan, n.distributed) for n in r.nics], [s.name for s in r.snapshots])

    assert concerns(estate) == concerns(records)
    assert {r.name: shape(r) for r in estate} == {r.name: shape(r) for r in records}
