"""Every Linux guest: converted by virt-v2v (virtio drivers into the initramfs, fstab and network names fixed).

This is the generic Linux plugin: the conversion and smoke checks of every
Linux family, and the generic ``linux`` (``linux.efi`` for EFI guests)
preference when no family plugin (RHEL, Debian/Ubuntu, SUSE) gave a closer
one; its ``vmwave_virtual_machine`` runs last for that. A guest with static
addresses gets a script run in it after the conversion that keeps each
address's interface name on its MAC (``pin_nic_names.sh``), as Forklift does.
"""

from __future__ import annotations

from importlib import resources

from vmwave import hookimpl
from vmwave.domain.manifests import Target
from vmwave.domain.preferences import RNG, prefer
from vmwave.domain.records import SourceVM
from vmwave.domain.static_ips import static_ips
from vmwave.domain.conversion import Conversion

PIN_SCRIPT, PIN_DATA = "pin-nic-names.sh", "pin-nic-names.pairs"  # the script reads its data beside it


WHY = "Linux guest: virt-v2v puts the virtio drivers into its initramfs"


def pin_nic_names(vm: SourceVM) -> dict[str, str]:
    """What keeps each static address's interface name on its MAC: the script as shipped, and a data file of one
    ``MAC ADDRESS`` line per static address (both checked by ``static_ips``) for it to read."""
    pairs = "".join(f"{ip.mac} {ip.address}\n" for ip in static_ips(vm))
    return {PIN_SCRIPT: resources.files(__package__).joinpath("pin_nic_names.sh").read_text(), PIN_DATA: pairs}


@hookimpl
def vmwave_conversion(vm: SourceVM) -> Conversion | None:  # needs no setting: takes no ``config``
    if vm.guest_family != "linux":
        return None
    if not static_ips(vm):
        return Conversion("virt-v2v", WHY)
    files = pin_nic_names(vm)
    return Conversion("virt-v2v", WHY, scripts={PIN_SCRIPT: files[PIN_SCRIPT]}, data={PIN_DATA: files[PIN_DATA]})


@hookimpl(trylast=True)
def vmwave_virtual_machine(vm: SourceVM, manifest: dict, target: Target) -> None:
    if vm.guest_family == "linux":
        prefer(manifest, target, "linux.efi" if vm.firmware == "efi" else "linux", RNG)


@hookimpl
def vmwave_smoke_checks(vm: SourceVM) -> list[dict]:
    if vm.guest_family != "linux":
        return []
    return [
        {
            "agent": "os",
            "expect": {"id": "^([^m]|m[^s])", "kernelRelease": "."},  # an id, not ms(windows)
            "why": "the guest agent reports a running Linux kernel",
        },
        {"tcp": 22, "why": "SSH answers"},
    ]
