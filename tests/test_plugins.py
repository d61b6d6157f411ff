"""Guest-OS plugins choose the conversion and add smoke checks; the operator's attribute beats them."""

import pytest

from vmwave import hookimpl
from vmwave.domain.records import SourceVM
from vmwave.errors import VmwaveError
from vmwave.plugins import Conversion, conversion, manager, smoke_checks


def vm(family: str, **attributes: str) -> SourceVM:
    return SourceVM(name=f"{family}-vm", moref="vm-1", instance_uuid="u-1", guest_family=family, attributes=attributes)


def test_built_in_plugins_come_through_the_entry_point_group():
    names = {name for name, _ in manager().list_name_plugin()}
    assert {"linux", "windows"} <= names


def test_linux_is_converted_by_virt_v2v_and_unknown_guests_are_copied():
    assert conversion(vm("linux")).tool == "virt-v2v"
    assert conversion(vm("other")).tool == "copy"
    assert conversion(vm("unknown")).tool == "copy"


def test_the_vcenter_attribute_overrides_the_plugin():
    assert conversion(vm("linux", **{"vmwave.convert": "copy"})) == Conversion("copy", "custom attribute vmwave.convert=copy")
    assert conversion(vm("other", **{"vmwave.convert": "virt-v2v"})).tool == "virt-v2v"
    with pytest.raises(VmwaveError, match="is not one of copy, virt-v2v") as bad:
        conversion(vm("linux", **{"vmwave.convert": "v2v"}))
    assert "clear it" in bad.value.fix


def test_windows_needs_the_virtio_drivers(monkeypatch, tmp_path):
    monkeypatch.delenv("VMWAVE_VIRTIO_WIN", raising=False)
    with pytest.raises(VmwaveError, match="VMWAVE_VIRTIO_WIN is not set") as missing:
        conversion(vm("windows"))
    assert "virtio-win.iso" in missing.value.fix
    iso = tmp_path / "virtio-win.iso"
    iso.write_bytes(b"")
    monkeypatch.setenv("VMWAVE_VIRTIO_WIN", str(iso))
    chosen = conversion(vm("windows"))
    assert chosen.tool == "virt-v2v" and chosen.env == {"VIRTIO_WIN": str(iso)}


def test_plugins_add_smoke_checks_by_guest_family():
    assert smoke_checks(vm("windows")) == [{"agent": "os", "expect": {"id": "^mswindows$"},
                                            "why": "the guest agent reports Windows"}]
    assert [c["agent"] for c in smoke_checks(vm("linux"))] == ["os"]
    assert smoke_checks(vm("other")) == []


def test_a_third_party_plugin_answers_first():
    class Appliance:
        @hookimpl(tryfirst=True)
        def vmwave_conversion(self, vm):
            return Conversion("copy", "appliance images boot on virtio") if vm.name.startswith("appl") else None

        @hookimpl
        def vmwave_smoke_checks(self, vm):
            return [{"tcp": 443}]

    plugin = Appliance()
    manager().register(plugin, "appliance")
    try:
        assert conversion(SourceVM(name="appl-1", moref="vm-2", instance_uuid="u-2", guest_family="linux")).tool == "copy"
        assert conversion(vm("linux")).tool == "virt-v2v"
        assert {"tcp": 443} in smoke_checks(vm("linux"))
    finally:
        manager().unregister(plugin)
