"""Windows guests: converted by virt-v2v, which installs the VirtIO drivers from the virtio-win ISO.

``VMWAVE_VIRTIO_WIN`` names that ISO (or its unpacked directory); without it
a converted Windows guest cannot boot from a virtio disk, so the conversion
refuses to start.
"""

from __future__ import annotations

import os

from vmwave import hookimpl
from vmwave.domain.records import SourceVM
from vmwave.errors import VmwaveError
from vmwave.plugins import Conversion


@hookimpl
def vmwave_conversion(vm: SourceVM) -> Conversion | None:
    if vm.guest_family != "windows":
        return None
    drivers = os.environ.get("VMWAVE_VIRTIO_WIN", "")
    if not drivers or not os.path.exists(drivers):
        raise VmwaveError(f"{vm.name} is a Windows guest and VMWAVE_VIRTIO_WIN is {drivers or 'not set'}",
                          "download virtio-win.iso (Fedora's virtio-win project) and set VMWAVE_VIRTIO_WIN to its path")
    return Conversion("virt-v2v", "Windows guest: virt-v2v installs the VirtIO drivers and the guest agent",
                      env={"VIRTIO_WIN": drivers})


@hookimpl
def vmwave_smoke_checks(vm: SourceVM) -> list[dict]:
    if vm.guest_family != "windows":
        return []
    return [{"agent": "os", "expect": {"id": "^mswindows$"}, "why": "the guest agent reports Windows"}]
