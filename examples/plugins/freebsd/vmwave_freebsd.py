"""FreeBSD guests for vmwave: copied as they are, booted on virtio, checked over SSH.

virt-v2v does not convert FreeBSD, and it need not: the GENERIC kernel has
had virtio-blk, virtio-net and virtio-random since FreeBSD 10. What breaks is
the disk names: on vSphere (pvscsi, LSI) the disks are ``da0``, on KubeVirt's
virtio ``vtbd0``, so an ``/etc/fstab`` naming ``/dev/da0p2`` stops the boot.
"""

from __future__ import annotations

import re

from vmwave import hookimpl
from vmwave.domain.concerns import WARNING, Concern
from vmwave.domain.preferences import prefer
from vmwave.hookspecs import Conversion

VALUES = {"domain": {"devices": {"rng": {}, "autoattachSerialConsole": True}}}  # virtio_random, a serial console


def freebsd(vm) -> bool:
    return bool(re.match(r"^freebsd", vm.guest_id, re.IGNORECASE))


@hookimpl
def vmwave_conversion(vm):
    if freebsd(vm):
        return Conversion(
            "copy", "FreeBSD guest: its GENERIC kernel has the virtio drivers; virt-v2v does not convert it"
        )
    return None


@hookimpl
def vmwave_concerns(vm):
    if not freebsd(vm) or not vm.disks:
        return []
    return [
        Concern(
            "freebsd_disk_names",
            WARNING,
            "FreeBSD names its disks da0 on vSphere and vtbd0 on virtio: an /etc/fstab with /dev/da0p2 stops the boot",
            "mount by GPT label in /etc/fstab (/dev/gpt/rootfs, gpart modify -l) before cutover",
        )
    ]


@hookimpl
def vmwave_preparation(vm):
    return (
        ["label the partitions (gpart modify -l rootfs -i 2 da0) and use /dev/gpt/<label> in /etc/fstab"]
        if freebsd(vm)
        else []
    )


@hookimpl
def vmwave_virtual_machine(vm, manifest, target):
    if freebsd(vm):
        prefer(manifest, target, None, VALUES)  # common-instancetypes has no FreeBSD preference: values inline


@hookimpl
def vmwave_smoke_checks(vm):
    return [{"tcp": 22, "why": "sshd answers"}] if freebsd(vm) else []
