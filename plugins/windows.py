"""Windows guests: converted by virt-v2v, which installs the VirtIO drivers from the virtio-win ISO.

The settings' ``virtio_win`` (``VMWAVE_VIRTIO_WIN``) names that ISO or its
unpacked directory inside the conversion image, where virt-v2v-in-place runs
(the worker cannot look there); without it a converted Windows guest cannot
boot from a virtio disk, so the conversion says what it needs and the wave is
refused before anything changes.
"""

from __future__ import annotations

from vmwave import hookimpl
from vmwave.domain.records import SourceVM
from vmwave.hookspecs import Conversion
from vmwave.settings import Settings

DRIVERS = ("the VirtIO drivers for Windows (virtio-win.iso from Fedora's virtio-win project, or its unpacked "
           "directory): set VMWAVE_VIRTIO_WIN to its path in the conversion image (VMWAVE_CONVERSION_IMAGE)")


@hookimpl
def vmwave_conversion(vm: SourceVM, config: Settings | None) -> Conversion | None:
    if vm.guest_family != "windows":
        return None
    why = "Windows guest: virt-v2v installs the VirtIO drivers and the guest agent"
    drivers = config.virtio_win if config else None
    if drivers is None:
        return Conversion("virt-v2v", why, needs=DRIVERS)
    return Conversion("virt-v2v", why, env={"VIRTIO_WIN": str(drivers)})


@hookimpl
def vmwave_smoke_checks(vm: SourceVM) -> list[dict]:
    if vm.guest_family != "windows":
        return []
    return [{"agent": "os", "expect": {"id": "^mswindows$"}, "why": "the guest agent reports Windows"}]
