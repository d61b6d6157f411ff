"""Changes vmwave makes to source VMs: a named snapshot, a clean shutdown, power on again.

Waits follow vCenter's PropertyCollector (WaitForUpdatesEx) until a property
has the wanted value or a deadline passes: no polling, and no lazy attribute
reads (govmomi's simulator drops the connection on unset properties).
"""

from __future__ import annotations

import time
import weakref
from datetime import datetime
from typing import Any, Callable

from pyVmomi import vim, vmodl

from vmwave.errors import VmwaveError


_contents: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def service_content(si: vim.ServiceInstance) -> vim.ServiceInstanceContent:
    """The session's ServiceInstanceContent, read once per connection: ``si.content`` is a round trip on every
    access (251 in a 50-VM wave, 11 ms of CPU each)."""
    found = _contents.get(si._stub)
    if found is None:
        found = _contents[si._stub] = si.content
    return found


def property_collector(si: vim.ServiceInstance) -> vmodl.query.PropertyCollector:
    return service_content(si).propertyCollector


def vm_ref(si: vim.ServiceInstance, moref: str) -> vim.VirtualMachine:
    return vim.VirtualMachine(moref, si._stub)


def read(si: vim.ServiceInstance, obj: Any, *paths: str) -> dict[str, Any]:
    pc = vmodl.query.PropertyCollector
    spec = pc.FilterSpec(
        objectSet=[pc.ObjectSpec(obj=obj)], propSet=[pc.PropertySpec(type=type(obj), pathSet=list(paths))]
    )
    try:
        result = property_collector(si).RetrieveContents([spec])
    except vmodl.fault.ManagedObjectNotFound:
        raise VmwaveError(
            f"{obj._moId} no longer exists in vCenter", "re-plan: the VM was removed or re-registered"
        ) from None
    return {p.name: p.val for p in result[0].propSet} if result else {}


def wait_for(
    si: vim.ServiceInstance, obj: Any, path: str, done: Callable[[Any], bool], timeout: float, what: str
) -> Any:
    """Wait until ``done(value of path)`` using a property filter and WaitForUpdatesEx."""
    pc = vmodl.query.PropertyCollector
    collector = property_collector(si).CreatePropertyCollector()
    spec = pc.FilterSpec(objectSet=[pc.ObjectSpec(obj=obj)], propSet=[pc.PropertySpec(type=type(obj), pathSet=[path])])
    collector.CreateFilter(spec, partialUpdates=False)
    deadline = time.monotonic() + timeout
    version, value = "", None
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise VmwaveError(
                    f"{obj._moId}: {what} did not happen within {timeout:.0f}s (last {path}: {value})",
                    "see the task list of this VM in vCenter",
                )
            update = collector.WaitForUpdatesEx(version, pc.WaitOptions(maxWaitSeconds=max(1, int(left))))
            if update is None:
                continue
            version = update.version
            for filter_set in update.filterSet:
                for change in filter_set.objectSet:
                    for prop in change.changeSet:
                        if prop.name == path:
                            value = prop.val
            if done(value):
                return value
    finally:
        collector.Destroy()


class TaskFailed(VmwaveError):
    """A vCenter task ended in error."""

    cause = "vcenter-task-failed"


def run_task(si: vim.ServiceInstance, task: vim.Task, timeout: float, what: str) -> Any:
    """Wait for a vCenter task (pyVmomi's WaitForTask trips on some of the simulator's tasks)."""
    state = wait_for(si, task, "info.state", lambda s: s in ("success", "error"), timeout, what)
    if state == "error":
        error = read(si, task, "info.error").get("info.error")
        raise TaskFailed(
            f"{what} failed in vCenter: {getattr(error, 'msg', '') or type(error).__name__}",
            "see the task in vCenter; the step is retried when run again",
        )
    return read(si, task, "info.result").get("info.result")


def snapshots(si: vim.ServiceInstance, vm: vim.VirtualMachine) -> list[str]:
    info = read(si, vm, "snapshot").get("snapshot")
    found, todo = [], list(info.rootSnapshotList) if info else []
    while todo:
        snap = todo.pop(0)
        found.append(snap.name)
        todo.extend(snap.childSnapshotList or ())
    return found


def ensure_snapshot(si: vim.ServiceInstance, moref: str, name: str, timeout: float = 600) -> bool:
    """Take the named vmwave snapshot unless it exists; True when it was taken now."""
    vm = vm_ref(si, moref)
    if name in snapshots(si, vm):
        return False
    run_task(
        si,
        vm.CreateSnapshot_Task(
            name=name,
            description="taken by vmwave before migration; removed once verified",
            memory=False,
            quiesce=False,
        ),
        timeout,
        f"snapshot {name}",
    )
    return True


def power_state(si: vim.ServiceInstance, moref: str) -> str:
    return str(read(si, vm_ref(si, moref), "runtime.powerState")["runtime.powerState"])


def shut_down(si: vim.ServiceInstance, moref: str, tools_running: bool, timeout: float) -> str:
    """A clean guest shutdown when VMware Tools runs; power-off when it cannot or does not finish in time.

    Returns how the VM went down: "already-off", "guest" or "power-off".
    """
    vm = vm_ref(si, moref)
    if power_state(si, moref) == "poweredOff":
        return "already-off"
    if tools_running:
        vm.ShutdownGuest()
        try:
            wait_for(si, vm, "runtime.powerState", lambda s: str(s) == "poweredOff", timeout, "guest shutdown")
            return "guest"
        except VmwaveError:
            pass  # the guest ignored the request: fall back, and say so in the ledger
    run_task(si, vm.PowerOffVM_Task(), 300, "power off")
    return "power-off"


def power_on(si: vim.ServiceInstance, moref: str, timeout: float = 300) -> bool:
    """Power the source on again (rollback); False when it already runs."""
    if power_state(si, moref) == "poweredOn":
        return False
    run_task(si, vm_ref(si, moref).PowerOnVM_Task(), timeout, "power on")
    return True


def disk_change_ids(si: vim.ServiceInstance, moref: str) -> dict[str, str]:
    """Each disk's changeId (by its device key: a snapshot changes its file) as vCenter reports it now; "" for a
    disk it does not track."""
    devices = read(si, vm_ref(si, moref), "config.hardware.device")["config.hardware.device"]
    return {
        str(d.key): getattr(d.backing, "changeId", None) or ""
        for d in devices
        if isinstance(d, vim.vm.device.VirtualDisk)
    }


def powered_on_since(si: vim.ServiceInstance, moref: str, since: datetime) -> bool:
    """Whether vCenter's events say the VM was powered on after ``since``."""
    spec = vim.event.EventFilterSpec(
        entity=vim.event.EventFilterSpec.ByEntity(entity=vm_ref(si, moref), recursion="self"),
        eventTypeId=["VmPoweredOnEvent"],
    )
    events = service_content(si).eventManager.QueryEvents(spec)  # filtered by time here: not every vCenter honours it
    return any(e.createdTime >= since for e in events or ())


def disk_holders(si: vim.ServiceInstance, morefs: list[str], files: set[str]) -> dict[str, set[str]]:
    """For each of ``files`` (disks of the VMs ``morefs``), every VM that has it (morefs), found among the VMs on
    the datastores that hold those files: who shares a multi-writer disk, which a wave's own records cannot tell.
    One read of those VMs' devices, whatever the number of files."""
    pc = vmodl.query.PropertyCollector
    names = {file[1:].split("]", 1)[0] for file in files if file.startswith("[")}
    stores = {
        store._moId: store
        for moref in morefs
        for store in read(si, vm_ref(si, moref), "datastore").get("datastore") or []
    }
    vms = {
        vm._moId: vm
        for store in stores.values()
        if read(si, store, "name").get("name") in names
        for vm in read(si, store, "vm").get("vm") or []
    }
    spec = pc.FilterSpec(
        objectSet=[pc.ObjectSpec(obj=vm) for vm in vms.values()],
        propSet=[pc.PropertySpec(type=vim.VirtualMachine, pathSet=["config.hardware.device"])],
    )
    holders: dict[str, set[str]] = {file: set() for file in files}
    for found in property_collector(si).RetrieveContents([spec]) if vms else ():
        for prop in found.propSet:
            for device in prop.val or ():
                name = getattr(getattr(device, "backing", None), "fileName", None)
                if isinstance(device, vim.vm.device.VirtualDisk) and name in holders:
                    holders[name].add(found.obj._moId)
    return holders
