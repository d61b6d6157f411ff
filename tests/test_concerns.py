"""Each concern rule fires on the lab VM built to show it, and not on a clean VM."""

from dataclasses import replace

import pytest

from vmwave.domain.concerns import RULES, assess
from vmwave.domain.maps import parse_maps
from vmwave.domain.records import ClusterVM, Disk, GuestDisk
from vmwave_lab.estate import load
from helpers import REPO


MAPS = parse_maps(__import__("yaml").safe_load((REPO / "lab/estates/small.maps.yaml").read_text()), "maps.yaml")


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
    "hot_plug": "sql-node-1",
    "cpu_affinity": "gpu-render-01",
    "numa_affinity": "gpu-render-01",
    "sriov_nic": "gpu-render-01",
    "disk_cbt_off": "app-many-disks",
    "disk_enable_uuid": "app-many-disks",
    "fault_tolerance": "gpu-render-01",
    "consolidation_needed": "gpu-render-01",
    "no_guest_ip": "app-01",
    "default_hostname": "sql-node-1",
    "host_unavailable": "Legacy_FileServer.corp",
    "cluster_drs_dpm": "batch-old-01",
    "vm_host_affinity": "db-01",
    "guest_disk_space": "sql-node-1",
    "static_ip_not_kept": "db-01",
    "dhcp_address": "static-1",
}


def test_there_are_at_least_15_rules_each_with_a_fix():
    assert len(RULES) >= 15
    assert len({r.id for r in RULES}) == len(RULES)
    assert all(r.severity in ("critical", "warning", "info") and len(r.fix) > 20 for r in RULES)


@pytest.mark.parametrize("rule_id,vm", sorted(EXPECTED.items()))
def test_rule_fires_on_its_vm(found, rule_id, vm):
    concern = found[vm][rule_id]
    assert concern.message and concern.fix


def test_a_shared_disk_is_a_warning_only_when_vmwave_can_move_it(estate):
    maps = parse_maps(__import__("yaml").safe_load((REPO / "lab/estates/small.maps.yaml").read_text()), "maps.yaml")
    nodes = [vm for vm in estate if vm.shared_disks]
    assert len(nodes) == 2

    def severity(vms, maps):
        return {c.severity for vm, cs in assess(vms, maps) for c in cs if c.id == "shared_disk"}

    assert severity(nodes, maps) == {"warning"}  # both in the inventory, a ReadWriteMany Block class
    assert severity(nodes[:1], maps) == {"critical"}  # the other VM is not in this inventory
    filesystem = replace(maps, storage=tuple(replace(m, volume_mode="Filesystem") for m in maps.storage))
    assert severity(nodes, filesystem) == {"critical"}


def test_every_rule_is_covered_by_the_lab_or_a_record():
    assert {r.id for r in RULES} - set(EXPECTED) == {
        "rdm_disk",
        "no_disks",
        "disk_unusable",
        "cluster_mac_clash",
        "cluster_name_clash",
        "already_migrated",
        "disk_serial_lost",
    }  # records


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
    ((_, concerns),) = assess([rdm])
    assert [c.id for c in concerns if c.severity == "critical"] == ["rdm_disk"]
    ((_, concerns),) = assess([replace(web, disks=())])
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
        return (
            [
                getattr(r, f)
                for f in (
                    "guest_id",
                    "guest_family",
                    "power_state",
                    "tools",
                    "cpus",
                    "memory_mb",
                    "firmware",
                    "secure_boot",
                    "cbt",
                    "ips",
                    "devices",
                    "tags",
                    "attributes",
                    "datacenter",
                    "cluster",
                    "host",
                    "folder",
                    "template",
                )
            ],
            [
                (d.file, d.datastore, d.capacity_bytes, d.controller, d.bus, d.unit, d.sharing, d.mode, d.thin, d.uuid)
                for d in r.disks
            ],
            [(n.mac, n.adapter, n.portgroup, n.vlan, n.distributed, n.addresses, n.address_origin) for n in r.nics],
            [s.name for s in r.snapshots],
            r.gateway,
            r.dns,
        )

    assert concerns(estate) == concerns(records)
    assert {r.name: shape(r) for r in estate} == {r.name: shape(r) for r in records}


def test_forklifts_vm_checks_trip_on_what_vcenter_reports_and_only_then(estate_by_name):
    """Edges of the checks read from config, extraConfig, runtime and guest info."""
    web = estate_by_name["web-01"]

    def ids(vm):
        ((_, concerns),) = assess([vm])
        return {c.id for c in concerns}

    assert "hot_plug" in ids(replace(web, hot_add=("memory",))) and "hot_plug" not in ids(web)
    assert "disk_cbt_off" not in ids(replace(web, cbt=False, extra_config={"scsi0:0.ctkEnabled": "FALSE"}))
    assert "disk_cbt_off" in ids(replace(web, cbt=True, extra_config={"scsi0:0.ctkEnabled": "false"}))
    assert "disk_enable_uuid" not in ids(replace(web, extra_config={"disk.EnableUUID": "FALSE"}))
    seen = {"disk.EnableUUID": "TRUE"}
    assert "disk_serial_lost" in ids(replace(web, extra_config=seen, disks=(replace(web.disks[0], uuid=""),)))
    assert "disk_serial_lost" not in ids(
        replace(web, extra_config=seen, disks=(replace(web.disks[0], uuid="6000C29a-1"),))
    )
    assert "default_hostname" in ids(replace(web, hostname="")) and "default_hostname" in ids(
        replace(web, hostname="localhost")
    )
    assert "default_hostname" not in ids(replace(web, hostname="", tools="not_running"))  # Tools cannot tell
    assert "no_guest_ip" not in ids(replace(web, ips=(), power_state="poweredOff"))
    zero = replace(web, disks=(replace(web.disks[0], capacity_bytes=0),))
    nowhere = replace(web, disks=(replace(web.disks[0], datastore=""),))
    assert "disk_unusable" in ids(zero) and "disk_unusable" in ids(nowhere) and "disk_unusable" not in ids(web)
    assert "host_unavailable" in ids(replace(web, host_state="disconnected")) and "host_unavailable" not in ids(web)
    assert "cluster_drs_dpm" not in ids(replace(web, cluster_features=()))
    space = lambda path, free_mb: replace(web, guest_disks=(GuestDisk(path, 10 << 30, free_mb << 20),))  # noqa: E731
    assert "guest_disk_space" in ids(space("/boot", 40)) and "guest_disk_space" not in ids(space("/boot", 60))
    assert "guest_disk_space" in ids(space("/", 99)) and "guest_disk_space" not in ids(space("/srv", 11))


def test_macs_and_names_clash_with_vms_already_in_the_cluster_but_not_with_their_own(estate_by_name):
    web = estate_by_name["web-01"]
    mac = web.nics[0].mac.upper()  # vCenter and KubeVirt may differ in case
    foreign = ClusterVM("apps", "legacy-web", (mac,))
    same_name = ClusterVM("vmwave", "web-01")
    ((_, concerns),) = assess([web], MAPS, existing=[foreign, same_name])
    found = {c.id: c for c in concerns}
    assert "apps/legacy-web" in found["cluster_mac_clash"].message and found["cluster_mac_clash"].severity == "critical"
    assert "vmwave/web-01 already exists" in found["cluster_name_clash"].message
    ours = [ClusterVM("vmwave", "web-01", (mac,), web.instance_uuid)]  # migrated before: a rerun, not a clash
    ((_, concerns),) = assess([web], MAPS, existing=ours)
    assert {"cluster_mac_clash", "cluster_name_clash", "already_migrated"}.isdisjoint(c.id for c in concerns)
    verified = [ClusterVM("vmwave", "web-01", (mac,), web.instance_uuid, "w003 2026-12-06T02:00:00+00:00 run ab12")]
    ((_, concerns),) = assess([web], MAPS, existing=verified)  # its migration is done: said, not a clash
    found = {c.id: c for c in concerns}
    assert "wave w003 2026-12-06" in found["already_migrated"].message and found["already_migrated"].severity == "info"
    ((_, concerns),) = assess([web], MAPS, existing=[ClusterVM("other-ns", "web-01")])  # another namespace: no clash
    assert "cluster_name_clash" not in {c.id for c in concerns}
