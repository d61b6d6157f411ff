"""Inventory read from the real lab vCenter: every field, for every kind of VM in the small estate."""

from vmwave.adapters.vsphere import inventory


def test_every_vm_and_template_is_read_once(records, lab):
    assert len(records) == lab.info["vms"] == 18
    assert len({r.moref for r in records}) == len(records)
    assert all(r.instance_uuid and r.bios_uuid for r in records)


def test_paging_gives_the_same_records_as_one_page(target):
    assert inventory(target, page_size=3) == inventory(target, page_size=1000)  # both fresh: other tests change VMs


def test_a_wave_reads_only_its_own_vms_as_the_whole_inventory_has_them(target, records):
    every = {r.moref: r for r in inventory(target)}
    wanted = [records[3].moref, records[0].moref, "vm-999999"]  # the last is gone since it was planned
    these = inventory(target, page_size=1, only=wanted)
    assert sorted(r.moref for r in these) == sorted(wanted[:2])
    assert all(r == every[r.moref] for r in these)  # placement, networks, tags: the same record


def test_identity_and_placement(by_name):
    db = by_name["db-01"]
    assert db.moref.startswith("vm-")
    assert (db.datacenter, db.cluster, db.host, db.folder) == ("dc-lab", "cl-prod", "cl-prod-esx02", "prod/db")
    assert by_name["batch-old-01"].folder == "infra"
    assert by_name["App_01"].folder == ""
    assert by_name["batch-old-01"].cluster == "cl-legacy"


def test_hardware_firmware_and_guest(by_name):
    db = by_name["db-01"]
    assert (db.cpus, db.memory_mb, db.firmware, db.secure_boot, db.cbt) == (8, 32768, "efi", False, True)
    win = by_name["win-app-01"]
    assert (win.guest_id, win.firmware, win.secure_boot) == ("windows2019srv_64Guest", "efi", True)
    assert win.devices == ("tpm",)
    assert (win.guest_family, db.guest_family, by_name["gpu-render-01"].guest_family) == ("windows", "linux", "unknown")
    assert by_name["web-01"].firmware == "bios"


def test_disks_on_several_controllers(by_name):
    db = by_name["db-01"]
    assert [(d.controller, d.bus, d.unit) for d in db.disks] == [("pvscsi", 0, 0), ("pvscsi", 1, 0)]
    assert [d.capacity_bytes for d in db.disks] == [100 * 1024**3, 500 * 1024**3]
    assert [d.thin for d in db.disks] == [True, False]
    assert db.disks[0].file == "[ds-ssd-01] db-01/db-01_0.vmdk" and db.disks[0].datastore == "ds-ssd-01"
    assert by_name["batch-old-01"].disks[0].controller == "sata"
    assert by_name["gpu-render-01"].disks[0].controller == "nvme"
    assert by_name["app-01"].disks[0].controller == "ide"
    assert by_name["win-app-01"].disks[0].controller == "lsilogic-sas"
    assert len(by_name["app-many-disks"].disks) == 9
    units = [d.unit for d in by_name["app-many-disks"].disks]
    assert 7 not in units  # SCSI unit 7 belongs to the controller


def test_shared_and_independent_disks(by_name):
    one, two = by_name["sql-node-1"], by_name["sql-node-2"]
    assert [d.sharing for d in one.disks] == ["none", "multiwriter"]
    assert one.disks[1].file == two.disks[1].file == "[ds-ssd-01] shared/sql-quorum.vmdk"
    assert [d.mode for d in by_name["Legacy_FileServer.corp"].disks] == ["persistent", "independent_persistent"]


def test_nics_with_mac_portgroup_and_vlan(by_name):
    db = by_name["db-01"]
    assert [(n.mac, n.adapter, n.portgroup, n.vlan, n.distributed) for n in db.nics] == [
        ("00:50:56:aa:00:10", "vmxnet3", "pg-vlan200", 200, True),
        (db.nics[1].mac, "e1000e", "pg-backup", 300, False),
    ]
    assert by_name["batch-old-01"].nics[0].portgroup == "VM Network"
    assert by_name["batch-old-01"].nics[0].vlan == 0


def test_power_tools_and_ips(by_name):
    db = by_name["db-01"]
    assert (db.power_state, db.tools, db.ips) == ("poweredOn", "running", ("10.200.0.10", "10.200.0.11", "10.30.0.10"))
    assert (by_name["batch-old-01"].power_state, by_name["batch-old-01"].ips) == ("poweredOff", ())
    assert by_name["app-many-disks"].power_state == "suspended"
    assert by_name["gpu-render-01"].tools == "not_running"
    assert by_name["Legacy_FileServer.corp"].tools == "not_installed"


def test_each_nics_addresses_their_origin_and_the_guests_gateway_and_dns(by_name):
    """guest.net[].ipConfig by MAC and guest.ipStack, as VMware Tools reports them: what keeps static IPs."""
    win, static = by_name["win-app-01"], by_name["static-1"]
    assert (win.nics[0].addresses, win.nics[0].address_origin) == (("10.100.0.50/24",), "manual")
    assert (win.gateway, win.dns) == ("10.100.0.1", ("10.100.0.2", "10.100.0.3"))
    assert [(n.addresses, n.address_origin) for n in by_name["db-01"].nics] == [
        (("10.200.0.10/24", "10.200.0.11/24"), "manual"),
        (("10.30.0.10/24",), "manual"),
    ]
    assert (static.nics[0].addresses, static.nics[0].address_origin, static.gateway) == (
        ("10.100.0.61/24",),
        "dhcp",
        "",
    )
    assert by_name["gpu-render-01"].nics[0].addresses == ()  # VMware Tools does not run: nothing is known


def test_snapshots_templates_devices_and_attributes(by_name):
    legacy = by_name["Legacy_FileServer.corp"]
    assert [s.name for s in legacy.snapshots] == ["before-patch", "after-patch"]
    assert all(s.created for s in legacy.snapshots)
    assert legacy.devices == ("floppy", "serial", "usb")
    assert by_name["gpu-render-01"].devices == ("passthrough",)
    assert by_name["tpl-rhel8"].template and not by_name["web-01"].template
    assert by_name["db-01"].attributes == {
        "app": "shop",
        "tier": "db",
        "criticality": "critical",
        "owner": "dba-team",
        "vmwave.convert": "copy",
    }  # the lab's mark: no OS on its disks
    assert "vmwave.convert" not in by_name["debian-12"].attributes  # a real guest: the Linux plugin decides


def test_records_round_trip_through_a_file(records):
    from vmwave.domain.records import SourceVM

    assert [SourceVM.from_dict(r.to_dict()) for r in records] == records


def test_vsphere_tags_from_the_rest_api(by_name):
    assert by_name["web-01"].tags == ("app/shop",)
    assert by_name["static-1"].tags == ("exposure/public", "role/stateless")
    assert by_name["win-app-01"].tags == ("criticality/high", "os/windows")
    assert by_name["db-01"].tags == ()


def test_rest_api_refuses_a_wrong_password(target, by_name, caplog):
    from vmwave.adapters.vsphere import _verified, password
    from vmwave.adapters.vsphere_tags import read_tags

    moref = by_name["web-01"].moref
    assert read_tags(target.url, target.user, password(target), _verified(target), [moref]) == {moref: ("app/shop",)}
    assert read_tags(target.url, target.user, "wrong", _verified(target), [moref]) == {}
    assert "REST API answered 401" in caplog.text
