"""What fencing changes on a migrated source in vCenter, and what puts it back: name, NICs, a custom attribute, folder.

The fence step reads what is there (``source``) and records it before it
changes anything, so a rollback puts back exactly what it changed. The name
and the NICs change in one reconfiguration, so a fenced source costs vCenter
one task, one SetField and, with a folder, one move.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyVmomi import vim

from vmwave.adapters.vsphere_ops import read, run_task, service_content, vm_ref
from vmwave.errors import VmwaveError

NicStates = dict[str, list[bool]]  # a NIC's device key (as text, for the ledger's JSON) -> [connected, startConnected]


@dataclass(frozen=True)
class Source:
    """A source VM as fencing finds it."""

    name: str
    folder: str  # its parent folder's moref
    nics: NicStates
    attribute: str  # its value of the custom attribute asked for; "" when it has none
    power_state: str


def source(si: vim.ServiceInstance, moref: str, attribute: str) -> Source:
    found = read(si, vm_ref(si, moref), "name", "parent", "config.hardware.device", "customValue", "runtime.powerState")
    key = _field_key(si, attribute, create=False)
    return Source(
        found["name"],
        found["parent"]._moId,
        {
            str(d.key): [bool(d.connectable.connected), bool(d.connectable.startConnected)]
            for d in found["config.hardware.device"]
            if isinstance(d, vim.vm.device.VirtualEthernetCard) and d.connectable
        },
        next((v.value for v in reversed(found.get("customValue") or ()) if v.key == key), ""),
        str(found["runtime.powerState"]),
    )


def reconfigure(si: vim.ServiceInstance, moref: str, name: str, nics: NicStates, timeout: float = 120) -> None:
    """Name the VM ``name`` and set each named NIC connected and connecting at power on as ``nics`` says."""
    vm = vm_ref(si, moref)
    devices = read(si, vm, "config.hardware.device")["config.hardware.device"]
    changes = []
    for device in devices:
        if isinstance(device, vim.vm.device.VirtualEthernetCard) and str(device.key) in nics:
            connected, start = nics[str(device.key)]
            guest = device.connectable.allowGuestControl if device.connectable else True
            device.connectable = vim.vm.device.VirtualDevice.ConnectInfo(
                connected=connected, startConnected=start, allowGuestControl=guest
            )
            changes.append(vim.vm.device.VirtualDeviceSpec(operation="edit", device=device))
    run_task(
        si,
        vm.ReconfigVM_Task(spec=vim.vm.ConfigSpec(name=name, deviceChange=changes)),
        timeout,
        f"rename to {name!r} and reconnect its NICs",
    )


def _field_key(si: vim.ServiceInstance, name: str, create: bool) -> int | None:
    """The key of the custom attribute ``name`` on VMs; made when ``create`` and vCenter has none."""
    for field in service_content(si).customFieldsManager.field or ():
        if field.name == name and field.managedObjectType in (None, vim.VirtualMachine):
            return field.key
    return made_field(si, name) if create else None


def made_field(si: vim.ServiceInstance, name: str) -> int | None:
    """The attribute ``name`` made on VMs; when another VM's fence (a thread of this wave, another worker) made it
    since it was read, vCenter answers DuplicateName and that one is used."""
    try:
        return service_content(si).customFieldsManager.AddCustomFieldDef(name=name, moType=vim.VirtualMachine).key
    except vim.fault.DuplicateName:
        return _field_key(si, name, create=False)


def set_attribute(si: vim.ServiceInstance, moref: str, name: str, value: str) -> None:
    """Set custom attribute ``name`` (defined for VMs first if vCenter has no such attribute)."""
    service_content(si).customFieldsManager.SetField(
        entity=vm_ref(si, moref), key=_field_key(si, name, create=True), value=value
    )


def folder(si: vim.ServiceInstance, moref: str, path: str) -> str:
    """The folder at ``path`` below the VM's datacenter's VM folder (its moref); refused when there is none."""
    entity = vm_ref(si, moref)
    while not isinstance(entity, vim.Datacenter):
        entity = read(si, entity, "parent").get("parent")
        if entity is None:
            raise VmwaveError(f"{moref} is in no datacenter", "re-plan: the VM was removed or re-registered")
    here = read(si, entity, "vmFolder")["vmFolder"]
    for part in path.split("/"):
        here = service_content(si).searchIndex.FindChild(entity=here, name=part)
        if not isinstance(here, vim.Folder):
            raise VmwaveError(
                f"there is no VM folder {path!r} in the datacenter of {moref}",
                "create it in vCenter, or change `fence: {folder: ...}` in the plan",
            )
    return here._moId


def move(si: vim.ServiceInstance, moref: str, folder_moref: str, timeout: float = 120) -> None:
    run_task(
        si,
        vim.Folder(folder_moref, si._stub).MoveIntoFolder_Task(list=[vm_ref(si, moref)]),
        timeout,
        f"move into folder {folder_moref}",
    )
