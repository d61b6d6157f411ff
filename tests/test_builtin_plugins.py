"""The built-in guest-OS plugins, one decision per test: Windows, the RHEL family, Debian/Ubuntu, SUSE, generic Linux.

Every VirtualMachine they shape is checked against the KubeVirt v1 OpenAPI,
with the preference referenced (the maps say the cluster has
common-instancetypes) and inline.
"""

from dataclasses import replace

import pytest
import yaml

import schema_check
from helpers import REPO, estate_records, planned_entry
from vmwave.adapters.files import load_policy
from vmwave.domain.build import SourceAccess, vm_objects
from vmwave.domain.guests import guest_os
from vmwave.domain.maps import parse_maps
from vmwave.domain.plan import make_plan, parse_plan
from vmwave.domain.preferences import CLUSTER_PREFERENCE, INLINE, preferred
from vmwave.domain.records import Disk, Nic, SourceVM
from vmwave.errors import InputError
from vmwave.plugins import UNKNOWN_GUEST, concerns, conversion, customizer, for_planning, preparation, smoke_checks
from vmwave.settings import Settings

CONFIG = Settings.load(env={})
MAPS_DOC = yaml.safe_load((REPO / "examples/estate-2000.maps.yaml").read_text())
INLINE_MAPS = parse_maps(MAPS_DOC, "maps.yaml")
CLUSTER_MAPS = parse_maps({**MAPS_DOC, "preferences": "cluster"}, "maps.yaml")
VCENTER = SourceAccess("https://vc.example/sdk", "migrator")
needs_schemas = pytest.mark.skipif(not schema_check.available(), reason="../shared/schemas is not beside the repo")


def guest(guest_id: str, **changes) -> SourceVM:
    base = SourceVM(
        name="app-01",
        moref="vm-7",
        instance_uuid="u-7",
        bios_uuid="b-7",
        datacenter="dc",
        guest_id=guest_id,
        guest_family=guest_os(guest_id).family,
        cpus=2,
        memory_mb=4096,
        power_state="poweredOn",
        tools="running",
        disks=(Disk(1, "Hard disk 1", "[ds-ssd-01] app/app.vmdk", "ds-ssd-01", 40 * 1024**3, "pvscsi", 0, 0),),
        nics=(Nic(2, "Network adapter 1", "00:50:56:aa:00:01", "vmxnet3", "VM Network", 0),),
    )
    return replace(base, **changes)


def machine(vm: SourceVM, maps=INLINE_MAPS, **entry) -> dict:
    """The VirtualMachine the builder makes for ``vm`` with every built-in plugin, as a migration would."""
    manifest = vm_objects(
        vm, planned_entry(vm, target_name="app-01", **entry), "w1", maps, VCENTER, customizer(CONFIG)
    ).virtual_machine
    if schema_check.available():
        assert schema_check.problems(manifest) == []
    return manifest


def domain(manifest: dict) -> dict:
    return manifest["spec"]["template"]["spec"]["domain"]


# --- Windows ---------------------------------------------------------------------------------------------------


@needs_schemas
@pytest.mark.parametrize(
    "guest_id,preference",
    [
        ("windows2022srvNext_64Guest", "windows.2k25"),
        ("windows2019srvNext_64Guest", "windows.2k22"),
        ("windows2019srv_64Guest", "windows.2k19"),
        ("windows9Server64Guest", "windows.2k16"),
        ("windows8Server64Guest", "windows.2k12"),
        ("windows7Server64Guest", "windows.2k8"),
        ("windows11_64Guest", "windows.11"),
        ("windows9_64Guest", "windows.10"),
        ("windows7_64Guest", "windows.7"),
    ],
)
def test_each_windows_edition_gets_its_preference_virtio_when_converted(guest_id, preference):
    converted = machine(guest(guest_id), CLUSTER_MAPS, convert="virt-v2v")
    assert converted["spec"]["preference"] == {"kind": CLUSTER_PREFERENCE, "name": f"{preference}.virtio"}
    compatible = machine(guest(guest_id), CLUSTER_MAPS, convert="copy", compatibility=True)
    assert compatible["spec"]["preference"]["name"] == preference  # the one that prefers SATA and e1000e


@needs_schemas
def test_windows_without_cluster_preferences_gets_the_same_values_inline():
    manifest = machine(guest("windows2019srvNext_64Guest"))
    assert "preference" not in manifest["spec"]
    assert manifest["spec"]["template"]["metadata"]["annotations"][INLINE] == "windows.2k22.virtio"
    d = domain(manifest)
    assert d["clock"] == {
        "utc": {},
        "timer": {
            "hpet": {"present": False},
            "pit": {"tickPolicy": "delay"},
            "rtc": {"tickPolicy": "catchup"},
            "hyperv": {},
        },
    }
    assert d["features"]["hyperv"]["spinlocks"] == {"spinlocks": 8191} and "synictimer" in d["features"]["hyperv"]
    assert manifest["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 3600
    assert "tpm" not in d["devices"]  # inline: nothing to switch off


@needs_schemas
def test_compatibility_mode_keeps_windows_on_sata_and_e1000e_without_conversion():
    d = domain(machine(guest("windows2019srv_64Guest"), convert="copy", compatibility=True))
    assert [disk["disk"]["bus"] for disk in d["devices"]["disks"]] == ["sata"]
    assert [nic["model"] for nic in d["devices"]["interfaces"]] == ["e1000e"]
    assert conversion(guest("windows2019srv_64Guest"), CONFIG, "copy").needs == ""  # no drivers asked for
    converted = domain(machine(guest("windows2019srv_64Guest"), convert="virt-v2v"))
    assert converted["devices"]["disks"][0]["disk"]["bus"] == "virtio"
    assert converted["devices"]["interfaces"][0]["model"] == "virtio"


def test_without_drivers_windows_is_refused_with_both_ways_out():
    needs = conversion(guest("windows2019srv_64Guest"), CONFIG, "virt-v2v").needs
    assert "VMWAVE_VIRTIO_WIN" in needs and "`convert: copy` and `compatibility: true`" in needs


def test_the_plan_allows_compatibility_mode_only_for_an_unconverted_guest():
    doc = make_plan(estate_records(), load_policy(), None, "estate", **for_planning())
    entry = doc["waves"][0]["vms"][0]
    entry.update(convert="copy", compatibility=True)
    assert parse_plan(doc, "plan.yaml").waves[0].vms[0].compatibility is True
    entry["convert"] = "virt-v2v"
    with pytest.raises(InputError, match="compatibility") as refused:
        parse_plan(doc, "plan.yaml")
    assert "convert: copy" in refused.value.fix


@needs_schemas
@pytest.mark.parametrize("maps", [INLINE_MAPS, CLUSTER_MAPS], ids=["inline", "cluster"])
def test_windows_firmware_secure_boot_and_vtpm_come_from_the_source(maps):
    plain = domain(machine(guest("windows2019srvNext_64Guest"), maps))
    assert plain["firmware"]["bootloader"] == {"bios": {}} and "smm" not in plain.get("features", {})
    assert plain["devices"].get("tpm", {"enabled": False}) == {"enabled": False}  # windows.2k22 prefers one: off
    secure = domain(
        machine(guest("windows2019srvNext_64Guest", firmware="efi", secure_boot=True, devices=("tpm",)), maps)
    )
    assert secure["firmware"]["bootloader"]["efi"] == {"secureBoot": True, "persistent": True}
    assert secure["features"]["smm"] == {"enabled": True}
    assert secure["devices"]["tpm"] == {"persistent": True}


def test_windows_concerns_are_what_breaks_conversion():
    ids = lambda vm: [c.id for c in concerns(vm)]  # noqa: E731
    assert ids(guest("windows2019srv_64Guest")) == []
    assert ids(guest("windows2019srv_64Guest", devices=("tpm",))) == ["windows_bitlocker_vtpm"]
    assert ids(guest("windows11_64Guest")) == ["windows_fast_startup"]  # a client edition: on by default
    two = guest("windows2019srv_64Guest", disks=guest("x").disks * 2)
    assert ids(two) == ["windows_dynamic_disks"]
    assert all(c.fix for c in concerns(guest("windows11_64Guest", devices=("tpm",))))


def test_windows_preparation_names_the_seeds_driver_steps_when_it_is_not_converted():
    steps = preparation(guest("windows2019srv_64Guest"))
    assert steps == ["turn off Fast Startup and hibernation: powercfg /h off (virt-v2v refuses a hibernated C:)"]
    copied = preparation(guest("windows2019srv_64Guest", devices=("tpm",), attributes={"vmwave.convert": "copy"}))
    assert "suspend BitLocker: manage-bde -protectors -disable C: -RebootCount 3" in copied
    assert any(r"E:\viostor\2k19\amd64\*.inf" in step for step in copied)
    assert any(r"pnputil /add-driver E:\NetKVM\2k19\amd64\*.inf /install" in step for step in copied)
    assert any(r"msiexec /i E:\guest-agent\qemu-ga-x86_64.msi /qn" in step for step in copied)


# --- Linux families --------------------------------------------------------------------------------------------


@needs_schemas
@pytest.mark.parametrize(
    "guest_id,guest_name,preference",
    [
        ("rhel9_64Guest", "", "rhel.9"),
        ("rhel8_64Guest", "", "rhel.8"),
        ("rhel10_64Guest", "", "rhel.10"),
        ("centos7_64Guest", "", "rhel.7"),
        ("centos9_64Guest", "", "centos.stream9"),
        ("oracleLinux8_64Guest", "", "oraclelinux"),
        ("rockylinux_64Guest", "Rocky Linux 9.3 (Blue Onyx)", "rhel.9"),
        ("almalinux_64Guest", "", "linux"),  # no release known: the generic preference
        ("debian12_64Guest", "", "debian"),
        ("ubuntu64Guest", "", "ubuntu"),
        ("sles15_64Guest", "", "sles"),
        ("opensuse64Guest", "", "opensuse.leap"),
        ("other5xLinux64Guest", "", "linux"),
    ],
)
def test_each_linux_family_gets_its_preference(guest_id, guest_name, preference):
    vm = guest(guest_id, guest_name=guest_name)
    assert machine(vm, CLUSTER_MAPS)["spec"]["preference"] == {"kind": CLUSTER_PREFERENCE, "name": preference}
    inline = machine(vm)
    assert preferred(inline) == preference and domain(inline)["devices"]["rng"] == {}
    assert conversion(vm, CONFIG).tool == "virt-v2v"


@needs_schemas
def test_an_efi_linux_guest_no_family_knows_gets_linux_efi():
    assert preferred(machine(guest("other5xLinux64Guest", firmware="efi"), CLUSTER_MAPS)) == "linux.efi"


@pytest.mark.parametrize(
    "guest_id,guest_name,cpu_model,flagged",
    [
        ("rhel9_64Guest", "", "Penryn", True),
        ("rhel10_64Guest", "", "qemu64", True),
        ("rockylinux_64Guest", "Rocky Linux 9.3", "kvm64", True),
        ("oracleLinux9_64Guest", "", "Conroe", True),
        ("rhel8_64Guest", "", "Penryn", False),
        ("rhel9_64Guest", "", "", False),
        ("rhel9_64Guest", "", "Cascadelake-Server", False),
        ("debian12_64Guest", "", "qemu64", False),
    ],
)
def test_rhel_9_and_later_need_an_x86_64_v2_cpu_model(guest_id, guest_name, cpu_model, flagged):
    maps = parse_maps({**MAPS_DOC, "cpu_model": cpu_model}, "maps.yaml")
    found = [c for c in concerns(guest(guest_id, guest_name=guest_name), maps) if c.id == "x86_64_v2_cpu"]
    assert bool(found) == flagged
    if flagged:
        assert found[0].severity == "critical" and cpu_model in found[0].message and "Nehalem" in found[0].fix
        assert domain(machine(guest(guest_id), maps))["cpu"]["model"] == cpu_model  # what the concern is about


def test_debian_and_ubuntu_say_the_interface_name_changes_and_how_to_keep_it():
    debian, ubuntu = guest("debian12_64Guest"), guest("ubuntu64Guest")
    renamed = [c for c in concerns(debian) if c.id == "interface_renamed"]
    assert len(renamed) == 1 and "Network adapter 1 (vmxnet3)" in renamed[0].message
    assert "/etc/network/interfaces" in renamed[0].message and "netplan" in next(
        c.message for c in concerns(ubuntu) if c.id == "interface_renamed"
    )
    assert "MACAddress=" in preparation(debian)[0] and "macaddress" in preparation(ubuntu)[0]
    assert preparation(guest("debian12_64Guest", nics=())) == [] and concerns(guest("rhel9_64Guest")) == []


def test_linux_smoke_checks_are_the_agent_and_ssh():
    checks = smoke_checks(guest("sles15_64Guest"))
    assert {"tcp": 22, "why": "SSH answers"} in checks and checks[0]["agent"] == "os"


# --- no plugin -------------------------------------------------------------------------------------------------


def test_a_guest_no_plugin_knows_is_a_critical_concern_and_goes_to_p5():
    found = [c for c in concerns(guest("solaris11_64Guest", guest_family="other")) if c.id == UNKNOWN_GUEST]
    assert found and found[0].severity == "critical"
    assert found[0].fix.startswith("install a plugin for it or set vmwave.convert")
    told = guest("otherGuest", attributes={"vmwave.convert": "copy"})
    assert [c for c in concerns(told) if c.id == UNKNOWN_GUEST] == []  # the operator said how to move it
    assert [c for c in concerns(guest("rhel9_64Guest")) if c.id == UNKNOWN_GUEST] == []
    doc = make_plan([guest("otherGuest")], load_policy(), None, "estate", **for_planning())
    entry = doc["waves"][0]["vms"][0]
    assert entry["class"] == "P5" and UNKNOWN_GUEST in [c["id"] for c in entry["concerns"]]


def test_maps_say_whether_the_cluster_has_preferences_and_the_cpu_model():
    assert (INLINE_MAPS.preferences, CLUSTER_MAPS.preferences, INLINE_MAPS.cpu_model) == ("inline", "cluster", "")
    with pytest.raises(InputError, match="preferences") as bad:
        parse_maps({**MAPS_DOC, "preferences": "yes"}, "maps.yaml")
    assert "inline, cluster" in bad.value.fix
