"""Every Linux guest: converted by virt-v2v (virtio drivers into the initramfs, fstab and network names fixed).

This is the generic Linux plugin: the conversion and smoke checks of every
Linux family, and the generic ``linux`` (``linux.efi`` for EFI guests)
preference when no family plugin (RHEL, Debian/Ubuntu, SUSE) gave a closer
one; its ``vmwave_virtual_machine`` runs last for that.
"""

from __future__ import annotations

from vmwave import hookimpl
from vmwave.domain.manifests import Target
from vmwave.domain.preferences import RNG, prefer
from vmwave.domain.records import SourceVM
from vmwave.hookspecs import Conversion


@hookimpl
def vmwave_conversion(vm: SourceVM) -> Conversion | None:  # needs no setting: takes no ``config``
    if vm.guest_family != "linux":
        return None
    return Conversion("virt-v2v", "Linux guest: virt-v2v puts the virtio drivers into its initramfs")


@hookimpl(trylast=True)
def vmwave_virtual_machine(vm: SourceVM, manifest: dict, target: Target) -> None:
    if vm.guest_family == "linux":
        prefer(manifest, target, "linux.efi" if vm.firmware == "efi" else "linux", RNG)


@hookimpl
def vmwave_smoke_checks(vm: SourceVM) -> list[dict]:
    if vm.guest_family != "linux":
        return []
    return [{"agent": "os", "expect": {"id": "^(?!mswindows$).+", "kernelRelease": "."},
             "why": "the guest agent reports a running Linux kernel"},
            {"tcp": 22, "why": "SSH answers"}]
