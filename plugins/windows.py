"""Windows guests, desktop and server: virt-v2v with the VirtIO drivers, Hyper-V enlightenments, the source's firmware.

virt-v2v installs the VirtIO drivers from the virtio-win ISO or directory that
the settings' ``virtio_win`` (``VMWAVE_VIRTIO_WIN``) names inside the
conversion image; without it a converted guest cannot boot from a virtio disk,
so the wave is refused before anything changes, unless the plan asks for
compatibility mode (``convert: copy`` + ``compatibility: true``): then the guest
is not converted and boots on SATA disks and an e1000e NIC, which Windows has
drivers for. Each edition vSphere knows gets its kubevirt/common-instancetypes
preference (``windows.2k22.virtio``, or ``windows.2k22`` in compatibility mode,
which prefers SATA and e1000e) with its Hyper-V enlightenments and clock. The
firmware, Secure Boot (with SMM) and a vTPM come from the source only: Windows
Server 2022 may not boot with a vTPM it did not have (Forklift, MTV-2014).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from vmwave import hookimpl
from vmwave.domain.concerns import INFO, WARNING, Concern
from vmwave.domain.manifests import Target
from vmwave.domain.preferences import HYPERV, prefer
from vmwave.domain.records import SourceVM
from vmwave.domain.conversion import Conversion
from vmwave.settings import Settings

DRIVERS = (
    "the VirtIO drivers for Windows (virtio-win.iso from Fedora's virtio-win project, or its unpacked "
    "directory): set VMWAVE_VIRTIO_WIN to its path in the conversion image (VMWAVE_CONVERSION_IMAGE), or "
    "boot it unconverted on SATA and e1000e with `convert: copy` and `compatibility: true` in the plan"
)
GRACE_SECONDS = 3600  # as the Windows preferences: updates can make a shutdown take long
VALUES = {**HYPERV, "terminationGracePeriodSeconds": GRACE_SECONDS}


@dataclass(frozen=True)
class Edition:
    """A Windows generation as vSphere names it, with its preference and its folder on the virtio-win ISO."""

    pattern: str  # on the vSphere guest id
    preference: str  # kubevirt/common-instancetypes, without the .virtio suffix
    drivers: str  # the virtio-win directory of its drivers (viostor\<drivers>\amd64)
    desktop: bool  # a client edition: Fast Startup is on by default


EDITIONS = (  # vSphere calls each newer Windows the previous one plus "Next" (Forklift's osmap says the same)
    Edition(r"^windows2022srvNext", "windows.2k25", "2k25", False),
    Edition(r"^windows2019srvNext", "windows.2k22", "2k22", False),
    Edition(r"^windows2019srv_", "windows.2k19", "2k19", False),
    Edition(r"^windows(9Server|2016srv)", "windows.2k16", "2k16", False),
    Edition(r"^windows8Server", "windows.2k12", "2k12R2", False),
    Edition(r"^windows7Server", "windows.2k8", "2k8R2", False),
    Edition(r"^windows1[12]_", "windows.11", "w11", True),
    Edition(r"^windows9(_64)?Guest", "windows.10", "w10", True),
    Edition(r"^windows8(_64)?Guest", "windows.10", "w8.1", True),  # common-instancetypes has no windows.8
    Edition(r"^windows7(_64)?Guest", "windows.7", "w7", True),
)


def edition(vm: SourceVM) -> Edition | None:
    return (
        next((e for e in EDITIONS if re.match(e.pattern, vm.guest_id)), None) if vm.guest_family == "windows" else None
    )


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
def vmwave_virtual_machine(vm: SourceVM, manifest: dict, target: Target) -> None:
    if vm.guest_family != "windows":
        return
    found = edition(vm)
    name = None if found is None else found.preference + ("" if target.compatibility else ".virtio")
    prefer(manifest, target, name, VALUES)


@hookimpl
def vmwave_concerns(vm: SourceVM) -> list[Concern]:
    if vm.guest_family != "windows":
        return []
    found = []
    if "tpm" in vm.devices:
        found.append(
            Concern(
                "windows_bitlocker_vtpm",
                WARNING,
                "has a vTPM, whose keys do not move: BitLocker bound to it asks for the recovery key "
                "after cutover, and virt-v2v cannot convert an encrypted C:",
                "suspend BitLocker before cutover (manage-bde -protectors -disable C: -RebootCount 3) "
                "and keep the recovery key at hand",
            )
        )
    if (found_edition := edition(vm)) is not None and found_edition.desktop:
        found.append(
            Concern(
                "windows_fast_startup",
                WARNING,
                "is a Windows client edition, where Fast Startup is on by default: a shutdown leaves "
                "C: hibernated and virt-v2v refuses to convert it",
                "turn Fast Startup and hibernation off in the guest (powercfg /h off) before cutover",
            )
        )
    if len(vm.disks) > 1:
        found.append(
            Concern(
                "windows_dynamic_disks",
                INFO,
                f"has {len(vm.disks)} disks: a system volume spanned or mirrored across them is on "
                "dynamic disks, which virt-v2v cannot convert",
                "check Disk Management shows the system disk as Basic; convert it, or move the VM "
                "with `convert: copy` and its drivers installed beforehand",
            )
        )
    return found


@hookimpl
def vmwave_preparation(vm: SourceVM) -> list[str]:
    if vm.guest_family != "windows":
        return []
    steps = ["turn off Fast Startup and hibernation: powercfg /h off (virt-v2v refuses a hibernated C:)"]
    if "tpm" in vm.devices:
        steps.append("suspend BitLocker: manage-bde -protectors -disable C: -RebootCount 3")
    if vm.attributes.get("vmwave.convert", "").strip() == "copy":  # not converted: the drivers must be there
        found = edition(vm)
        folder = found.drivers if found else "<version>"
        steps += [
            f"with virtio-win.iso mounted as E: install the disk drivers: pnputil /add-driver "
            f"E:\\viostor\\{folder}\\amd64\\*.inf /install (and E:\\vioscsi\\{folder}\\amd64\\*.inf)",
            f"install the network driver: pnputil /add-driver E:\\NetKVM\\{folder}\\amd64\\*.inf /install",
            "install the QEMU guest agent: msiexec /i E:\\guest-agent\\qemu-ga-x86_64.msi /qn",
        ]
    return steps


@hookimpl
def vmwave_smoke_checks(vm: SourceVM) -> list[dict]:
    if vm.guest_family != "windows":
        return []
    return [
        {"agent": "os", "expect": {"id": "^mswindows$"}, "why": "the guest agent reports Windows"},
        {"tcp": 3389, "why": "Remote Desktop answers"},
    ]
