"""Linux guests: converted by virt-v2v (virtio drivers into the initramfs, fstab and network names fixed)."""

from __future__ import annotations

from vmwave import hookimpl
from vmwave.domain.records import SourceVM
from vmwave.hookspecs import Conversion


@hookimpl
def vmwave_conversion(vm: SourceVM) -> Conversion | None:  # needs no setting: takes no ``config``
    if vm.guest_family != "linux":
        return None
    return Conversion("virt-v2v", "Linux guest: virt-v2v puts the virtio drivers into its initramfs")


@hookimpl
def vmwave_smoke_checks(vm: SourceVM) -> list[dict]:
    if vm.guest_family != "linux":
        return []
    return [{"agent": "os", "expect": {"id": "^(?!mswindows$).+", "kernelRelease": "."},
             "why": "the guest agent reports a running Linux kernel"}]
