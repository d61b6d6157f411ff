"""Disk conversion with the real tools: ``qemu-img convert`` for a copy, ``virt-v2v`` for a guest conversion.

virt-v2v runs on the downloaded disks (``-i libvirtxml``: one domain that
lists every disk, so multi-disk guests convert as one) or, against a real
vCenter, reads the VM itself (``-ic vpx://`` with ``-ip`` a password file,
and ``-it vddk`` when a VDDK library is configured). libguestfs runs its
appliance directly (``LIBGUESTFS_BACKEND=direct``); ``VMWAVE_V2V_ACCEL=tcg``
forces TCG where KVM cannot boot a kernel (``accel`` below, from the settings).
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlparse
from xml.sax.saxutils import escape, quoteattr

from vmwave.domain.records import SourceVM
from vmwave.errors import VmwaveError

LOG_TAIL = 1500


class ConversionFailed(VmwaveError):
    """qemu-img or virt-v2v refused or failed; the message carries the tool's own last words."""

    cause = "conversion-failed"


@dataclass(frozen=True)
class VddkSettings:
    libdir: str
    thumbprint: str  # SHA-1 of the vCenter certificate, as virt-v2v's vddk input wants it


def _run(argv: list[str], log: Path, what: str, fix: str, env: dict[str, str] | None = None,
         timeout: float | None = None) -> None:
    with open(log, "ab") as out:
        try:
            result = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    env={**os.environ, **(env or {})}, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise ConversionFailed(f"{what} did not finish within {timeout:.0f}s (log: {log})", fix) from None
        except FileNotFoundError:
            raise ConversionFailed(f"{argv[0]} is not installed", f"apt-get install -y {PACKAGES[argv[0]]}") from None
    if result.returncode != 0:
        tail = log.read_text(errors="replace")[-LOG_TAIL:].strip().splitlines()[-6:]
        raise ConversionFailed(f"{what} failed (exit {result.returncode}): {' | '.join(tail)} (log: {log})", fix)


PACKAGES = {"qemu-img": "qemu-utils", "virt-v2v": "virt-v2v libguestfs-tools nbdkit libnbd-bin linux-image-amd64"}


def copy(source: Path, target: Path, log: Path) -> None:
    """The disk as it is, to qcow2 (the guest already boots on virtio)."""
    _run(["qemu-img", "convert", "-q", "-O", "qcow2", str(source), str(target)], log, f"qemu-img convert {source.name}",
         "check the disk in vCenter (consolidate snapshots) and the free space in the work directory")


def libvirt_xml(vm: SourceVM, disks: list[Path]) -> str:
    """A libvirt domain describing the downloaded disks, for ``virt-v2v -i libvirtxml``."""
    firmware = " firmware='efi'" if vm.firmware == "efi" else ""
    lines = [f"<domain type='kvm'>", f"  <name>{escape(vm.name)}</name>",
             f"  <memory unit='MiB'>{vm.memory_mb}</memory>", f"  <vcpu>{vm.cpus}</vcpu>",
             f"  <os{firmware}><type arch='x86_64'>hvm</type></os>", "  <devices>"]
    for index, disk in enumerate(disks):
        fmt = "vmdk" if disk.suffix == ".vmdk" else "raw"
        lines += ["    <disk type='file' device='disk'>", f"      <driver name='qemu' type='{fmt}'/>",
                  f"      <source file={quoteattr(str(disk))}/>",
                  f"      <target dev='sd{chr(ord('a') + index)}' bus='scsi'/>", "    </disk>"]
    lines += ["  </devices>", "</domain>", ""]
    return "\n".join(lines)


def image_info(image: Path) -> dict:
    """``qemu-img info`` of an image: its ``virtual-size``, ``actual-size`` and ``format``."""
    result = subprocess.run(["qemu-img", "info", "--output=json", str(image)], capture_output=True, text=True)
    if result.returncode != 0:
        raise ConversionFailed(f"qemu-img cannot read {image}: {result.stderr.strip()}",
                               "the conversion wrote no usable image; run the step again")
    return json.loads(result.stdout)


def v2v_env(extra: dict[str, str], accel: str | None = None) -> dict[str, str]:
    env = {"LIBGUESTFS_BACKEND": os.environ.get("LIBGUESTFS_BACKEND", "direct"), **extra}
    if accel == "tcg":
        env["LIBGUESTFS_BACKEND_SETTINGS"] = "force_tcg"
    return env


def output_disks(out: Path, name: str, count: int) -> list[Path]:
    """virt-v2v ``-o local`` names the converted disks ``NAME-sda``, ``NAME-sdb``, ..."""
    found = [out / f"{name}-sd{chr(ord('a') + i)}" for i in range(count)]
    missing = [p.name for p in found if not p.exists()]
    if missing:
        raise ConversionFailed(f"virt-v2v finished but wrote no {', '.join(missing)} in {out}",
                               "read the virt-v2v log in the work directory")
    return found


def v2v_local(vm: SourceVM, disks: list[Path], out: Path, log: Path, options: tuple[str, ...] = (),
              env: dict[str, str] | None = None, timeout: float | None = None, accel: str | None = None) -> list[Path]:
    """Convert downloaded disks; returns the qcow2 files in disk order."""
    domain = out / "source.xml"
    domain.write_text(libvirt_xml(vm, disks))
    name = "guest"
    _run(["virt-v2v", "-i", "libvirtxml", str(domain), "-o", "local", "-os", str(out), "-of", "qcow2", "-on", name,
          *options], log, f"virt-v2v of {vm.name}",
         "see the log: an unsupported guest OS, a damaged file system, or no space in the work directory",
         v2v_env(env or {}, accel), timeout)
    return output_disks(out, name, len(disks))


def vpx_argv(vm: SourceVM, vcenter_url: str, user: str, password_file: Path, out: Path,
             vddk: VddkSettings | None = None, options: tuple[str, ...] = ()) -> list[str]:
    """virt-v2v reading the VM from vCenter itself; the password only ever sits in ``password_file``."""
    host = urlparse(vcenter_url).hostname
    path = "/".join(quote(part, safe="") for part in (vm.datacenter, vm.cluster, vm.host) if part)
    argv = ["virt-v2v", "-ic", f"vpx://{quote(user, safe='')}@{host}/{path}?no_verify=0", "-ip", str(password_file)]
    if vddk:
        argv += ["-it", "vddk", "-io", f"vddk-libdir={vddk.libdir}", "-io", f"vddk-thumbprint={vddk.thumbprint}"]
    return [*argv, vm.name, "-o", "local", "-os", str(out), "-of", "qcow2", "-on", "guest", *options]


def v2v_vpx(vm: SourceVM, vcenter_url: str, user: str, password: str, out: Path, log: Path,
            vddk: VddkSettings | None = None, options: tuple[str, ...] = (), env: dict[str, str] | None = None,
            timeout: float | None = None, accel: str | None = None) -> list[Path]:
    password_file = out / ".password"
    fd = os.open(password_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, password.encode())
        os.close(fd)
        _run(vpx_argv(vm, vcenter_url, user, password_file, out, vddk, options), log, f"virt-v2v of {vm.name} from vCenter",
             "see the log: the VM must be powered off, and the vCenter user needs the privileges virt-v2v lists",
             v2v_env(env or {}, accel), timeout)
    finally:
        password_file.unlink(missing_ok=True)
    return output_disks(out, "guest", len(vm.disks))
