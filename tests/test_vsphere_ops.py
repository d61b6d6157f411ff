"""Snapshot, shutdown and power-on against the lab vCenter, each waited for through the PropertyCollector."""

from vmwave.adapters.vsphere import connect
from vmwave.adapters.vsphere_ops import ensure_snapshot, power_on, power_state, shut_down, snapshots, vm_ref


def test_snapshot_is_taken_once(target, by_name):
    moref = by_name["web-02"].moref
    with connect(target) as si:
        assert ensure_snapshot(si, moref, "vmwave-w001") is True
        assert ensure_snapshot(si, moref, "vmwave-w001") is False  # a rerun does not take a second one
        assert snapshots(si, vm_ref(si, moref)).count("vmwave-w001") == 1


def test_shutdown_then_power_on(target, by_name):
    moref = by_name["web-03"].moref
    with connect(target) as si:
        assert shut_down(si, moref, tools_running=True, timeout=60) == "guest"
        assert power_state(si, moref) == "poweredOff"
        assert shut_down(si, moref, tools_running=True, timeout=60) == "already-off"
        assert power_on(si, moref) is True and power_state(si, moref) == "poweredOn"
        assert power_on(si, moref) is False
        assert shut_down(si, moref, tools_running=False, timeout=60) == "power-off"
        power_on(si, moref)
