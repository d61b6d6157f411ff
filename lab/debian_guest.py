"""A real Debian 12 guest disk for the lab vCenter: what a migration moves in the field.

debootstrap (minbase) with the Debian kernel, GRUB on a serial console,
systemd-networkd taking DHCP on any ``en*`` NIC, qemu-guest-agent, OpenSSH (the
SSH smoke check of the Linux plugin has a real sshd to reach), and a
socket-activated smoke service on TCP 8080 that answers HTTP (so ``tcp`` and
``http`` smoke checks both have something real to reach). The initramfs is set to
``MODULES=dep`` with the virtio drivers listed, which keeps virt-v2v's
rebuild of it short (~2 min instead of ~10 under TCG). The ``noagent``
variant masks the guest agent: a guest whose migration must fail at the
guest-agent check. The ``static`` variant has no DHCP: a static address on
``ens192``, the name vSphere's vmxnet3 NIC gets, as a server configured by
hand has (the address is QEMU user networking's own, so the lab's port
forwards reach it); it keeps that address after cutover only if the
interface keeps its name. All are VMDKs cached under ``~/.cache/vmwave/guests``,
keyed by this recipe, so only the first build pays for debootstrap.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import stat
import subprocess
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from vmwave_lab.process import LabError

SUITE = "bookworm"
MIRROR = os.environ.get("VMWAVE_DEBIAN_MIRROR", "http://deb.debian.org/debian")
INCLUDE = (
    "systemd-sysv,udev,dbus,linux-image-amd64,grub-pc,qemu-guest-agent,iproute2,e2fsprogs,kmod,"
    "initramfs-tools,openssh-server"
)
DISK_GB = 2
START_SECTOR = 2048
SMOKE_PORT = 8080
VARIANTS = ("ok", "noagent", "static")
STATIC = {"interface": "ens192", "address": "10.0.2.15/24", "gateway": "10.0.2.2", "dns": "10.0.2.3"}
PACKAGES = "debootstrap qemu-utils grub-pc-bin e2fsprogs fdisk"

FILES = {
    "etc/hostname": "vmwave-debian\n",
    "etc/hosts": "127.0.0.1 localhost\n127.0.1.1 vmwave-debian\n",
    "etc/default/grub": 'GRUB_DEFAULT=0\nGRUB_TIMEOUT=1\nGRUB_DISTRIBUTOR=Debian\nGRUB_TERMINAL="console serial"\n'
    'GRUB_SERIAL_COMMAND="serial --speed=115200"\n'
    'GRUB_CMDLINE_LINUX_DEFAULT=""\nGRUB_CMDLINE_LINUX="console=ttyS0,115200n8"\n',
    "etc/initramfs-tools/conf.d/vmwave": "MODULES=dep\n",
    "etc/initramfs-tools/modules": "virtio_pci\nvirtio_blk\nvirtio_scsi\nsd_mod\nahci\next4\n",
    "etc/systemd/network/20-dhcp.network": "[Match]\nName=en* eth*\n\n[Network]\nDHCP=yes\n",
    "etc/systemd/system/vmwave-smoke.socket": f"[Unit]\nDescription=vmwave smoke service\n\n[Socket]\n"
    f"ListenStream={SMOKE_PORT}\nAccept=yes\n\n"
    f"[Install]\nWantedBy=sockets.target\n",
    "etc/systemd/system/vmwave-smoke@.service": "[Unit]\nDescription=vmwave smoke answer\n\n[Service]\n"
    "ExecStart=/usr/bin/printf 'HTTP/1.0 200 OK\\r\\n"
    "Content-Type: text/plain\\r\\n\\r\\nvmwave-debian ok\\n'\n"
    "StandardInput=socket\n"
    "StandardOutput=socket\n",
}
ENABLE = {  # what `systemctl enable` would link, done by hand: no systemd runs in the build chroot
    "etc/systemd/system/multi-user.target.wants/systemd-networkd.service": "/lib/systemd/system/systemd-networkd.service",  # noqa: E501 - a file's line as written
    "etc/systemd/system/sockets.target.wants/vmwave-smoke.socket": "/etc/systemd/system/vmwave-smoke.socket",
}


def recipe() -> str:
    """This file is the recipe: any change to it builds new images."""
    return hashlib.sha256(Path(__file__).read_bytes() + MIRROR.encode()).hexdigest()[:16]


def cache() -> Path:
    return Path(os.environ.get("VMWAVE_CACHE", Path.home() / ".cache" / "vmwave")) / "guests"


def image(variant: str = "ok") -> Path:
    """The cached VMDK of ``variant``; built (every variant, ~3 min) when missing."""
    if variant not in VARIANTS:
        raise LabError(f"no Debian guest variant {variant!r}; choose one of {', '.join(VARIANTS)}")
    target = cache() / f"debian12-{variant}-{recipe()}.vmdk"
    if target.exists():
        return target
    cache().mkdir(parents=True, exist_ok=True)
    with open(cache() / "debian12.lock", "w") as lock:  # one build at a time; the others reuse it
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not target.exists():
            build()
    return target


def _run(*argv: str, **kw) -> str:
    result = subprocess.run(argv, capture_output=True, text=True, **kw)
    if result.returncode != 0:
        raise LabError(f"{' '.join(argv[:3])} failed: {(result.stderr or result.stdout).strip()[-2000:]}")
    return result.stdout.strip()


def build() -> None:
    if os.geteuid() != 0:
        raise LabError("building the Debian guest needs root (debootstrap, a loop device and a mount)")
    missing = [tool for tool in ("debootstrap", "qemu-img", "grub-install", "sfdisk") if not shutil.which(tool)]
    if missing:
        raise LabError(f"building the Debian guest needs {', '.join(missing)}: apt-get install -y {PACKAGES}")
    rootfs = _rootfs()
    with tempfile.TemporaryDirectory(prefix="vmwave-debian-", dir=cache()) as tmp:
        work = Path(tmp)
        for variant in VARIANTS:
            raw = work / f"{variant}.raw"
            _disk(rootfs, raw, variant)
            vmdk = work / f"{variant}.vmdk"
            _run("qemu-img", "convert", "-q", "-f", "raw", "-O", "vmdk", str(raw), str(vmdk))
            raw.unlink()
            os.replace(vmdk, cache() / f"debian12-{variant}-{recipe()}.vmdk")
    shutil.rmtree(rootfs)
    for old in cache().glob("debian12-*.vmdk"):  # images of earlier recipes: ~1 GB each
        if not old.name.endswith(f"-{recipe()}.vmdk"):
            old.unlink()


def _rootfs() -> Path:
    """debootstrap's tree with vmwave's files; kept until every disk exists, so a failed disk step reuses it."""
    rootfs = cache() / f"debian12-rootfs-{recipe()}"
    done = rootfs / ".vmwave-complete"
    if done.exists():
        return rootfs
    shutil.rmtree(rootfs, ignore_errors=True)
    _run("debootstrap", "--variant=minbase", f"--include={INCLUDE}", SUITE, str(rootfs), MIRROR)
    for path, text in FILES.items():
        (rootfs / path).parent.mkdir(parents=True, exist_ok=True)
        (rootfs / path).write_text(text)
    for link, points_to in ENABLE.items():
        (rootfs / link).parent.mkdir(parents=True, exist_ok=True)
        (rootfs / link).unlink(missing_ok=True)
        (rootfs / link).symlink_to(points_to)
    (rootfs / "etc/machine-id").write_text("")  # each boot of a copy gets its own
    done.write_text("")
    return rootfs


@contextmanager
def _mounted(raw: Path, mnt: Path) -> Iterator[str]:
    """The partition at 1 MiB as a loop device (no partition scanning: containers have no udev), mounted.

    Mounted through a device node of our own name: GRUB's 10_linux skips
    root devices named /dev/loopN ("loop-mounted from files") and would
    write a grub.cfg without a single menu entry.
    """
    loop = _run("losetup", "-f", "--show", "-o", str(START_SECTOR * 512), str(raw))
    node = Path(f"/dev/vmwave-{Path(loop).name}")
    try:
        major, minor = (Path("/sys/class/block") / Path(loop).name / "dev").read_text().strip().split(":")
        node.unlink(missing_ok=True)
        os.mknod(node, 0o600 | stat.S_IFBLK, os.makedev(int(major), int(minor)))
        _run("mkfs.ext4", "-q", "-L", "root", str(node))
        _run("mount", str(node), str(mnt))
        try:
            yield str(node)
        finally:
            for sub in ("dev", "proc", "sys"):
                subprocess.run(["umount", "-l", str(mnt / sub)], capture_output=True)
            _run("umount", str(mnt))
    finally:
        node.unlink(missing_ok=True)
        _run("losetup", "-d", loop)


def _disk(rootfs: Path, raw: Path, variant: str) -> None:
    """One partition, ext4, the root file system copied in, GRUB written into the MBR and the gap after it.

    GRUB goes in as grub-install would put it, without grub-install: it needs
    the whole disk and its partition as devices, which a container lacks.
    """
    with open(raw, "wb") as handle:
        handle.truncate(DISK_GB << 30)
    _run("sfdisk", "-q", str(raw), input=f"label: dos\nstart={START_SECTOR}, type=83, bootable\n")
    mnt = raw.with_suffix(".mnt")
    mnt.mkdir()
    with _mounted(raw, mnt) as device:
        _run("cp", "-a", f"{rootfs}/.", str(mnt))
        (mnt / ".vmwave-complete").unlink()
        uuid = _run("blkid", "-s", "UUID", "-o", "value", device)
        (mnt / "etc/fstab").write_text(f"UUID={uuid} / ext4 errors=remount-ro 0 1\n")
        if variant == "noagent":
            (mnt / "etc/systemd/system/qemu-guest-agent.service").symlink_to("/dev/null")
        if variant == "static":
            (mnt / "etc/systemd/network/20-dhcp.network").unlink()
            (mnt / f"etc/systemd/network/20-{STATIC['interface']}.network").write_text(
                f"[Match]\nName={STATIC['interface']}\n\n[Network]\nAddress={STATIC['address']}\n"
                f"Gateway={STATIC['gateway']}\nDNS={STATIC['dns']}\n"
            )
        for sub in ("dev", "proc", "sys"):
            _run("mount", "--bind", f"/{sub}", str(mnt / sub))
        _run("chroot", str(mnt), "update-grub")
        grub_cfg = mnt / "boot/grub/grub.cfg"  # no udev here: update-grub names our device node
        grub_cfg.write_text(grub_cfg.read_text().replace(f"root={device}", f"root=UUID={uuid}"))
        if "menuentry 'Debian" not in grub_cfg.read_text():
            raise LabError(f"update-grub wrote no boot entry into {grub_cfg}")
        shutil.copytree(mnt / "usr/lib/grub/i386-pc", mnt / "boot/grub/i386-pc", dirs_exist_ok=True)
        _run(
            "chroot",
            str(mnt),
            "grub-mkimage",
            "-O",
            "i386-pc",
            "-o",
            "/boot/grub/i386-pc/core.img",
            "-p",
            "(hd0,msdos1)/boot/grub",
            "biosdisk",
            "part_msdos",
            "ext2",
        )
        core = (mnt / "boot/grub/i386-pc/core.img").read_bytes()
        boot = (mnt / "usr/lib/grub/i386-pc/boot.img").read_bytes()
    if len(core) > (START_SECTOR - 1) * 512:
        raise LabError(f"GRUB's core image ({len(core)} bytes) does not fit before the partition")
    with open(raw, "r+b") as handle:
        handle.write(boot[:440])  # boot code only: the partition table after it stays
        handle.seek(512)
        handle.write(core)  # boot.img loads sector 1; core.img's own block list covers the rest
