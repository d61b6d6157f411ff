"""Bootable lab guests: a tiny Linux disk whose guest agent and smoke service are real.

The disk holds an MBR, an ext2 partition with EXTLINUX, the host's Debian
kernel and a busybox initramfs. Its init loads the virtio modules, takes a
DHCP address, serves a page over HTTP on TCP 8080 (the smoke test) and answers the
QEMU guest-agent commands vmwave uses (guest-sync, guest-ping,
guest-get-osinfo, guest-network-get-interfaces) on the
org.qemu.guest_agent.0 port. Built as root through a loop device; cached by
its recipe, so a second build costs nothing.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import shutil
import struct
import subprocess
import tempfile
from pathlib import Path

from vmwave_lab.process import LabError

MODULES = [
    "drivers/virtio/virtio_ring",
    "drivers/virtio/virtio",
    "drivers/virtio/virtio_pci_modern_dev",
    "drivers/virtio/virtio_pci_legacy_dev",
    "drivers/virtio/virtio_pci",
    "drivers/char/virtio_console",
    "net/core/failover",
    "drivers/net/net_failover",
    "drivers/net/virtio_net",
]
PACKAGES = "linux-image-amd64 extlinux syslinux-common busybox-static qemu-system-x86"
DISK_MB = 64
SMOKE_PORT = 8080

INIT = r"""#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
for m in MODULES; do insmod /lib/modules/$m.ko 2>/dev/null; done
hostname vmwave-tiny
ip link set lo up; ip link set eth0 up
udhcpc -i eth0 -q -n -t 10 -s /bin/dhcp-script >/dev/null 2>&1
mkdir -p /www; echo "vmwave-tiny ok" > /www/index.html; httpd -p SMOKE_PORT -h /www
for p in /sys/class/virtio-ports/*; do
  [ "$(cat $p/name 2>/dev/null)" = org.qemu.guest_agent.0 ] && port=/dev/$(basename $p)
done
echo "vmwave-tiny: agent on $port" > /dev/console
while true; do  # the host may connect and disconnect as often as it likes
exec 3<>"$port"
while read -r line <&3; do
  case "$line" in
    *guest-sync*) id=$(echo "$line" | sed 's/.*"id": *\([0-9]*\).*/\1/'); echo "{\"return\": $id}" >&3 ;;
    *guest-ping*) echo '{"return": {}}' >&3 ;;
    *guest-get-osinfo*) echo "{\"return\": {\"id\": \"vmwave-tiny\", \"name\": \"vmwave tiny\", \"pretty-name\": \"vmwave tiny 1\", \"version\": \"1\", \"version-id\": \"1\", \"kernel-release\": \"$(uname -r)\", \"machine\": \"$(uname -m)\"}}" >&3 ;;
    *guest-network-get-interfaces*)
      mac=$(cat /sys/class/net/eth0/address)
      ip=$(ip -4 addr show eth0 | sed -n 's/.*inet \([0-9.]*\).*/\1/p')
      echo "{\"return\": [{\"name\": \"eth0\", \"hardware-address\": \"$mac\", \"ip-addresses\": [{\"ip-address-type\": \"ipv4\", \"ip-address\": \"$ip\", \"prefix\": 24}]}]}" >&3 ;;
    *) echo '{"error": {"class": "CommandNotFound", "desc": "not in the tiny agent"}}' >&3 ;;
  esac
done
exec 3<&-
sleep 0.2
done
"""

DHCP_SCRIPT = r"""#!/bin/sh
[ "$1" = bound ] || exit 0
ip addr add $ip/${mask:-24} dev $interface
[ -n "$router" ] && ip route add default via ${router%% *}
"""


def kernel() -> tuple[Path, str]:
    found = sorted(Path("/boot").glob("vmlinuz-*"))
    if not found:
        raise LabError(f"no kernel in /boot for the tiny guest; install: apt-get install -y {PACKAGES}")
    return found[-1], found[-1].name.removeprefix("vmlinuz-")


def _cpio(files: dict[str, tuple[int, bytes]]) -> bytes:
    """A newc cpio archive of {path: (mode, content)}; directories have mode 0o40755 and no content."""
    out = io.BytesIO()
    for ino, (name, (mode, data)) in enumerate(sorted(files.items()) + [("TRAILER!!!", (0, b""))], start=1):
        encoded = name.encode() + b"\0"
        header = "070701" + "".join(f"{v:08x}" for v in (ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(encoded), 0))
        out.write(header.encode() + encoded)
        out.write(b"\0" * (-out.tell() % 4))
        out.write(data)
        out.write(b"\0" * (-out.tell() % 4))
    return out.getvalue()


def initramfs(kver: str) -> bytes:
    files: dict[str, tuple[int, bytes]] = {
        d: (0o40755, b"") for d in ("bin", "dev", "proc", "sys", "lib", "lib/modules", "tmp")
    }
    files["bin/busybox"] = (0o100755, Path("/bin/busybox").read_bytes())
    files["bin/dhcp-script"] = (0o100755, DHCP_SCRIPT.encode())
    names = " ".join(m.rsplit("/", 1)[-1] for m in MODULES)
    files["init"] = (0o100755, INIT.replace("MODULES", names).replace("SMOKE_PORT", str(SMOKE_PORT)).encode())
    for module in MODULES:
        files[f"lib/modules/{module.rsplit('/', 1)[-1]}.ko"] = (
            0o100644,
            Path(f"/lib/modules/{kver}/kernel/{module}.ko").read_bytes(),
        )
    return gzip.compress(_cpio(files), compresslevel=6)


def _mbr(disk: Path, start: int, sectors: int) -> None:
    code = Path("/usr/lib/syslinux/mbr/mbr.bin").read_bytes()[:440]
    entry = struct.pack("<B3sB3sII", 0x80, b"\xfe\xff\xff", 0x83, b"\xfe\xff\xff", start, sectors)
    with open(disk, "r+b") as handle:
        handle.write(code)
        handle.seek(446)
        handle.write(entry + b"\0" * 48 + b"\x55\xaa")


def _run(*argv: str) -> str:
    result = subprocess.run(argv, capture_output=True, text=True)
    if result.returncode != 0:
        raise LabError(f"{' '.join(argv)} failed: {result.stderr.strip()}")
    return result.stdout.strip()


def tiny_guest(cache: Path) -> Path:
    """A bootable raw disk (cached): BIOS, virtio disk and NIC, guest agent, TCP 8080 smoke service."""
    vmlinuz, kver = kernel()
    recipe = hashlib.sha256((INIT + DHCP_SCRIPT + kver + str(DISK_MB)).encode()).hexdigest()[:16]
    target = cache / f"tiny-guest-{recipe}.img"
    if target.exists():
        return target
    if os.geteuid() != 0:
        raise LabError("building the tiny guest needs root (a loop device and a mount)")
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="vmwave-tiny-") as tmp:
        work = Path(tmp)
        disk = work / "disk.img"
        with open(disk, "wb") as handle:
            handle.truncate(DISK_MB << 20)
        start = 2048
        _mbr(disk, start, (DISK_MB << 20) // 512 - start)
        loop = _run("losetup", "-f", "--show", "-o", str(start * 512), str(disk))
        mnt = work / "mnt"
        mnt.mkdir()
        try:
            _run("mkfs.ext2", "-q", "-L", "tiny", loop)
            _run("mount", loop, str(mnt))
            try:
                (mnt / "boot").mkdir()
                shutil.copyfile(vmlinuz, mnt / "boot" / "vmlinuz")
                (mnt / "boot" / "initrd.gz").write_bytes(initramfs(kver))
                (mnt / "boot" / "extlinux.conf").write_text(
                    "DEFAULT tiny\nTIMEOUT 1\nPROMPT 0\nLABEL tiny\n  KERNEL /boot/vmlinuz\n"
                    "  APPEND initrd=/boot/initrd.gz console=ttyS0,115200 quiet panic=5\n"
                )
                _run("extlinux", "--install", str(mnt / "boot"))
            finally:
                _run("umount", str(mnt))
        finally:
            _run("losetup", "-d", loop)
        shutil.move(disk, target)
    return target
