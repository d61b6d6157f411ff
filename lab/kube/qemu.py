"""Real guests for the lab KubeVirt: a QEMU process per VMI whose boot disk is bootable.

Disks are the PVC files CDI filled; the NICs keep the VM's MACs on QEMU user
networking with host port forwards (for smoke tests); the guest agent is
reached on a virtio-serial port (org.qemu.guest_agent.0) through a unix socket,
QEMU itself on its QMP socket (block and balloon statistics for the metrics).
KVM is used where it boots a guest here; otherwise TCG, and the lab says so.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import socket
import tempfile
from pathlib import Path
from typing import Any


def qemu_binary() -> str | None:
    return shutil.which("qemu-system-x86_64")


def bootable(disk: Path) -> bool:
    """An MBR boot signature after real boot code: blank and synthetic disks are not bootable."""
    try:
        with open(disk, "rb") as handle:
            sector = handle.read(512)
    except OSError:
        return False
    return len(sector) == 512 and sector[510:] == b"\x55\xaa" and any(sector[:440])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def agent_call(path: str, *commands: str, timeout: float = 5.0) -> list[Any]:
    """Guest-agent commands on one connection, after a guest-sync that drops any stale replies."""
    reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(path), timeout)
    try:
        token = random.randint(1, 2**31)
        writer.write(json.dumps({"execute": "guest-sync", "arguments": {"id": token}}).encode() + b"\n")
        await writer.drain()
        while True:
            reply = json.loads(await asyncio.wait_for(reader.readline(), timeout) or b"null")
            if reply is None:
                raise ConnectionError("guest agent closed the channel")
            if reply.get("return") == token:
                break
        results = []
        for command in commands:
            writer.write(json.dumps({"execute": command}).encode() + b"\n")
            await writer.drain()
            reply = json.loads(await asyncio.wait_for(reader.readline(), timeout) or b"null")
            if not reply or "error" in reply:
                raise ConnectionError(f"guest agent: {reply}")
            results.append(reply["return"])
        return results
    finally:
        writer.close()


async def qmp_call(path: str, *commands: tuple[str, dict], timeout: float = 5.0) -> list[Any]:
    """QMP commands (name, arguments) on one connection after the capabilities handshake; events are skipped."""
    reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(path), timeout)
    try:

        async def reply() -> Any:
            while True:
                answer = json.loads(await asyncio.wait_for(reader.readline(), timeout) or b"null")
                if answer is None:
                    raise ConnectionError("QMP closed the connection")
                if "event" not in answer and "QMP" not in answer:
                    if "error" in answer:
                        raise ConnectionError(f"QMP: {answer['error'].get('desc')}")
                    return answer.get("return")

        results = []
        for name, arguments in (("qmp_capabilities", {}), *commands):
            writer.write(json.dumps({"execute": name, "arguments": arguments}).encode() + b"\n")
            await writer.drain()
            results.append(await reply())
        return results[1:]
    finally:
        writer.close()


class QemuGuest:
    def __init__(
        self,
        name: str,
        disks: list[Path],
        memory_mb: int,
        cpus: int,
        macs: list[str],
        forwards: list[int],
        log: Path,
        accel: str,
        snapshot: bool = False,
    ):
        self.name, self.disks, self.memory_mb, self.cpus = name, disks, memory_mb, cpus
        self.snapshot = snapshot  # discard writes (the KVM probe boots a real VM's disk)
        self.macs, self.log, self.accel = macs, log, accel
        self.forwards = {port: free_port() for port in forwards}
        self.dir = Path(tempfile.mkdtemp(prefix="vmwave-vmi-"))  # short: unix socket paths are limited
        self.agent_socket = str(self.dir / "qga.sock")
        self.qmp_socket = str(self.dir / "qmp.sock")
        self.process: asyncio.subprocess.Process | None = None

    def argv(self) -> list[str]:
        argv = [
            qemu_binary() or "qemu-system-x86_64",
            "-name",
            self.name,
            "-machine",
            "q35",
            "-accel",
            self.accel,
            "-cpu",
            "max" if self.accel == "tcg" else "host",
            "-smp",
            str(self.cpus),
            "-m",
            str(self.memory_mb),
            "-nodefaults",
            "-display",
            "none",
            "-serial",
            f"file:{self.log}",
            "-qmp",
            f"unix:{self.qmp_socket},server=on,wait=off",
            "-device",
            "virtio-balloon-pci,id=balloon0",
            "-device",
            "virtio-serial",
            "-chardev",
            f"socket,path={self.agent_socket},server=on,wait=off,id=qga0",
            "-device",
            "virtserialport,chardev=qga0,name=org.qemu.guest_agent.0",
        ]
        if self.snapshot:
            argv.append("-snapshot")
        for disk in self.disks:
            argv += ["-drive", f"file={disk},format=raw,if=virtio,cache=none,aio=threads"]
        for n, mac in enumerate(self.macs or [""]):
            forwards = (
                "".join(f",hostfwd=tcp:127.0.0.1:{host}-:{guest}" for guest, host in self.forwards.items())
                if n == 0
                else ""
            )
            argv += [
                "-netdev",
                f"user,id=n{n}{forwards}",
                "-device",
                f"virtio-net-pci,netdev=n{n}" + (f",mac={mac}" if mac else ""),
            ]
        return argv

    async def start(self) -> None:
        with open(self.log.with_suffix(".qemu.log"), "wb") as err:
            self.process = await asyncio.create_subprocess_exec(
                *self.argv(), stdin=asyncio.subprocess.DEVNULL, stdout=err, stderr=err
            )

    async def ask_agent(self, timeout: float, *commands: str) -> list[Any] | None:
        """Ask the guest agent until it answers, QEMU exits, or ``timeout`` passes (None then)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline and self.process and self.process.returncode is None:
            try:
                return await agent_call(self.agent_socket, "guest-ping", *commands, timeout=3)
            except (OSError, ConnectionError, asyncio.TimeoutError, ValueError):
                await asyncio.sleep(1)
        return None

    def cpu_seconds(self) -> float | None:
        """User and system CPU time of the QEMU process, as virt-handler reads the domain's."""
        try:
            fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (AttributeError, OSError, IndexError):
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime

    async def stop(self) -> None:
        if self.process and self.process.returncode is None:
            self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), 10)
            except asyncio.TimeoutError:
                self.process.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


def _accel_file() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "vmwave" / "accel"


def remembered_accel() -> tuple[str, str] | None:
    """The accelerator an earlier probe chose on this machine, if any."""
    if not _accel_file().exists():
        return None
    accel, _, why = _accel_file().read_text().partition(" ")
    return accel, why


async def choose_accel(state: Path, probe_disk: Path | None) -> tuple[str, str]:
    """("kvm" or "tcg", why). KVM only where it boots the probe guest to its agent.

    The answer is a property of the machine, so it is remembered in the user's cache, not the lab state.
    """
    known = remembered_accel()
    if known:
        return known
    remembered = _accel_file()
    if os.environ.get("VMWAVE_LAB_ACCEL") in ("kvm", "tcg"):
        choice = (os.environ["VMWAVE_LAB_ACCEL"], "set by VMWAVE_LAB_ACCEL")
    elif not os.access("/dev/kvm", os.R_OK | os.W_OK):
        choice = ("tcg", "no usable /dev/kvm: QEMU runs with TCG (software emulation, slower)")
    elif probe_disk is None:
        choice = ("tcg", "KVM not probed (no probe guest): QEMU runs with TCG (software emulation, slower)")
    else:
        probe = QemuGuest("kvm-probe", [probe_disk], 256, 1, [], [], state / "kvm-probe.console", "kvm", snapshot=True)
        await probe.start()
        booted = await probe.ask_agent(20) is not None
        await probe.stop()
        choice = (
            ("kvm", "KVM boots guests here")
            if booted
            else ("tcg", "KVM could not boot a guest here: QEMU runs with TCG (software emulation, slower)")
        )
    remembered.parent.mkdir(parents=True, exist_ok=True)
    remembered.write_text(" ".join(choice))
    return choice
