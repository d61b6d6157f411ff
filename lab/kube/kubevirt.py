"""A simulated KubeVirt: VirtualMachines get VirtualMachineInstances that walk KubeVirt's phases.

A VMI waits for its DataVolumes, needs its NetworkAttachmentDefinitions and a
lab node with room (CPU, memory, 1Gi hugepages, the CPU manager for dedicated
CPUs), then runs. When QEMU is installed and its boot disk is bootable, it runs
as a real QEMU process (see qemu.py) and what the guest agent says is real;
``lab.vmwave.io/forward-ports: "8080,22"`` forwards guest ports to the host and
the VMI's ``vmwave.io/port-forwards`` annotation (vmwave's convention for a forward) says where. Other VMIs get a
simulated guest following the VM's lab annotations:
``lab.vmwave.io/guest-agent: connected|never``, ``lab.vmwave.io/guest-os``
(e.g. ``debian 12``) and ``lab.vmwave.io/guest-ips``; their own addresses are
loopback (127.244.x.y) and their port forwards lead to closed loopback ports,
so nothing that probes a simulated guest ever leaves this machine; but a
simulated guest answers on its remote-access port (SSH 22, or RDP 3389 when
its source guest id is Windows) unless ``lab.vmwave.io/forward-ports`` names
that port: one lab listener accepts those connections for every such guest.
"""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path
from typing import Callable

from vmwave_lab.kube.quantity import parse_quantity
from vmwave_lab.kube.controllers import R, condition, event
from vmwave_lab.kube.faults import Faults
from vmwave_lab.kube.qemu import QemuGuest, bootable, choose_accel, free_port, qemu_binary
from vmwave_lab.kube.server import Api

RUNNING = ("Always", "RerunOnFailure", "Once")
AGENT = "lab.vmwave.io/guest-agent"
GUEST_OS = "lab.vmwave.io/guest-os"
ANNOTATION_GUEST_ID = "vmwave.io/source-guest-id"  # vmwave records the source's guest id here
GUEST_IPS = "lab.vmwave.io/guest-ips"
FORWARD = "lab.vmwave.io/forward-ports"
FORWARDED = "vmwave.io/port-forwards"  # where vmwave's smoke checks look for a forward
AGENT_REFRESH_SECONDS = 3  # how often a real guest's interfaces are asked again until each NIC has an address
REAL_GUEST_FORWARDS = (8080, 22)  # the lab guests' smoke service and SSH, unless the VM's annotation names others
SSH, RDP = 22, 3389


class KubeVirt:
    def __init__(self, api: Api, state: Path, config: dict):
        self.api = api
        self.state = state
        self.delay = float(config.get("phase_delay", 0.05))
        self.agent_timeout = float(config.get("agent_timeout", 600))
        self.guests: dict[tuple[str, str], QemuGuest] = {}
        self.answering: asyncio.Server | None = None  # the simulated guests' SSH or RDP
        self.faults = Faults(state)

    async def close(self) -> None:
        for guest in list(self.guests.values()):
            await guest.stop()
        if self.answering is not None:
            self.answering.close()

    async def answering_port(self) -> int:
        """Where simulated guests' remote-access ports lead: a listener that accepts and hangs up. Its port is kept
        in the state, and a restarted API listens on it again: the guests' services do not move when the control
        plane restarts, and the VMIs' forwards still name it."""
        if self.answering is None:

            async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
                writer.close()

            kept = self.state / "answering-port"
            port = int(kept.read_text()) if kept.is_file() else 0
            self.answering = await asyncio.start_server(hang_up, "127.0.0.1", port)
            kept.write_text(str(self.answering.sockets[0].getsockname()[1]))
        return self.answering.sockets[0].getsockname()[1]

    async def until(self, resource, check: Callable[[], bool]) -> None:
        """Wait until ``check()`` holds, re-checking on every change of ``resource``."""
        queue = self.api.store.subscribe(resource)
        try:
            while not check():
                await queue.get()
        finally:
            self.api.store.unsubscribe(resource, queue)

    def vm_status(self, ns: str, name: str, printable: str, ready: bool = False, failure: tuple | None = None) -> None:
        def mutate(status: dict) -> None:
            status.update(
                printableStatus=printable,
                ready=ready,
                created=self.api.store.get(R["virtualmachineinstances"], ns, name) is not None,
            )
            if failure:
                condition(status, "Failure", "True", failure[0], failure[1])
            else:
                status["conditions"] = [c for c in status.get("conditions", []) if c["type"] != "Failure"]
            condition(status, "Ready", "True" if ready else "False", "" if ready else printable)

        self.api.set_status(R["virtualmachines"], ns, name, mutate)

    # ---- VirtualMachine ----

    async def reconcile_vm(self, kind: str, vm: dict) -> None:
        if kind == "DELETED":
            return
        ns, name = vm["metadata"]["namespace"], vm["metadata"]["name"]
        vm = self.api.store.get(R["virtualmachines"], ns, name)
        if vm is None:
            return
        spec = vm["spec"]
        strategy = spec.get("runStrategy") or ("Always" if spec.get("running") else "Halted")
        vmi = self.api.store.get(R["virtualmachineinstances"], ns, name)
        if strategy in RUNNING and vmi is None:
            template = spec.get("template") or {}
            self.api.create(
                R["virtualmachineinstances"],
                ns,
                {
                    "metadata": {
                        "name": name,
                        "labels": (template.get("metadata") or {}).get("labels", {}),
                        "annotations": {
                            **(vm["metadata"].get("annotations") or {}),
                            **((template.get("metadata") or {}).get("annotations") or {}),
                        },
                        "ownerReferences": [
                            {
                                "apiVersion": vm["apiVersion"],
                                "kind": "VirtualMachine",
                                "name": name,
                                "uid": vm["metadata"]["uid"],
                                "controller": True,
                                "blockOwnerDeletion": True,
                            }
                        ],
                    },
                    "spec": template.get("spec") or {},
                },
            )
            self.vm_status(ns, name, "Starting")
        elif strategy not in RUNNING:
            if vmi is not None:
                self.api.delete(R["virtualmachineinstances"], ns, name)
            if (vm.get("status") or {}).get("printableStatus") != "Stopped":
                self.vm_status(ns, name, "Stopped")

    # ---- VirtualMachineInstance ----

    async def reconcile_vmi(self, kind: str, vmi: dict) -> None:
        ns, name = vmi["metadata"]["namespace"], vmi["metadata"]["name"]
        if kind == "DELETED":
            guest = self.guests.pop((ns, name), None)
            if guest is not None:
                await guest.stop()
            vm = self.api.store.get(R["virtualmachines"], ns, name)
            if vm is not None and (vm["spec"].get("runStrategy") or "Halted") not in RUNNING:
                self.vm_status(ns, name, "Stopped")
            return
        vmi = self.api.store.get(R["virtualmachineinstances"], ns, name)
        if vmi is None:
            return
        phase = (vmi.get("status") or {}).get("phase")
        lost = phase == "Running" and (ns, name) not in self.guests and self.boot_disk(ns, vmi["spec"]) is not None
        if lost:  # a real guest that did not survive a lab restart boots again
            self.api.set_status(R["virtualmachineinstances"], ns, name, lambda s: s.update(phase="Pending"))
        elif phase in ("Running", "Succeeded", "Failed"):
            return
        if not (vmi.get("status") or {}).get("phase"):
            self.api.set_status(R["virtualmachineinstances"], ns, name, lambda s: s.update(phase="Pending"))
        spec = vmi["spec"]
        if not await self.volumes_ready(ns, name, spec):
            return
        if not await self.networks_ready(ns, name, spec):
            return
        await asyncio.sleep(self.delay)
        self.api.set_status(R["virtualmachineinstances"], ns, name, lambda s: s.update(phase="Scheduling"))
        node, why = self.schedule(spec)
        if node is None:

            def unschedulable(status: dict) -> None:
                condition(status, "PodScheduled", "False", "Unschedulable", why)

            self.api.set_status(R["virtualmachineinstances"], ns, name, unschedulable)
            self.vm_status(ns, name, "ErrorUnschedulable", failure=("Unschedulable", why))
            event(self.api, vmi, "FailedScheduling", why, "Warning")
            return
        await asyncio.sleep(self.delay)
        self.api.set_status(
            R["virtualmachineinstances"],
            ns,
            name,
            lambda s: (s.update(phase="Scheduled", nodeName=node), condition(s, "PodScheduled", "True")),
        )
        await asyncio.sleep(self.delay)
        interfaces = [
            {"name": i["name"], "mac": i.get("macAddress", ""), "interfaceName": f"eth{n}"}
            for n, i in enumerate(((spec.get("domain") or {}).get("devices") or {}).get("interfaces") or [])
        ]

        boot = self.boot_disk(ns, spec)
        guest = await self.start_qemu(ns, name, vmi, spec, boot) if boot else None

        def running(status: dict) -> None:
            status.update(phase="Running", interfaces=interfaces, guestOSInfo={})
            condition(status, "Ready", "True")
            condition(status, "LiveMigratable", "True")

        self.api.set_status(R["virtualmachineinstances"], ns, name, running)
        self.vm_status(ns, name, "Running", ready=True)
        event(self.api, vmi, "Started", f"VirtualMachineInstance started on {node}")
        if guest is not None:
            await self.real_agent(ns, name, vmi, guest)
        else:
            await self.guest_agent(ns, name, vmi, interfaces)

    def disk_files(self, ns: str, spec: dict) -> list[Path]:
        files = []
        for volume in spec.get("volumes") or []:
            claim = (volume.get("dataVolume") or {}).get("name") or (volume.get("persistentVolumeClaim") or {}).get(
                "claimName"
            )
            if claim:
                files.append(self.state / "volumes" / ns / f"{claim}.img")
        return files

    def boot_disk(self, ns: str, spec: dict) -> Path | None:
        files = self.disk_files(ns, spec)
        return files[0] if files and qemu_binary() and bootable(files[0]) else None

    async def start_qemu(self, ns: str, name: str, vmi: dict, spec: dict, boot: Path) -> QemuGuest:
        accel, why = await choose_accel(self.state, boot)
        domain = spec.get("domain") or {}
        cpu = domain.get("cpu") or {}
        memory = parse_quantity(
            (domain.get("memory") or {}).get("guest")
            or ((domain.get("resources") or {}).get("requests") or {}).get("memory")
            or "1Gi"
        )
        macs = [i.get("macAddress", "") for i in (domain.get("devices") or {}).get("interfaces") or []]
        annotations = vmi["metadata"].get("annotations") or {}
        forwards = [int(p) for p in annotations.get(FORWARD, "").split(",") if p.strip()] or list(REAL_GUEST_FORWARDS)
        logs = self.state / "vmi"
        logs.mkdir(exist_ok=True)
        guest = QemuGuest(
            f"{ns}.{name}",
            self.disk_files(ns, spec),
            max(128, memory >> 20),
            cpu.get("cores") or 1,
            macs,
            forwards,
            logs / f"{ns}.{name}.console",
            accel,
        )
        await guest.start()
        self.guests[(ns, name)] = guest
        current = self.api.store.get(R["virtualmachineinstances"], ns, name)
        current["metadata"].setdefault("annotations", {})[FORWARDED] = ",".join(
            f"{g}=127.0.0.1:{h}" for g, h in guest.forwards.items()
        )
        self.api.store.update(R["virtualmachineinstances"], current)
        event(self.api, vmi, "QemuStarted", f"real guest booting from {boot.name} with accel={accel} ({why})")
        return guest

    async def real_agent(self, ns: str, name: str, vmi: dict, guest: QemuGuest) -> None:
        """AgentConnected, guestOSInfo and interface IPs as the guest's own agent reports them.

        Like virt-handler, the interfaces are asked again every few seconds: a
        guest's agent often answers before DHCP has given it an address.
        """
        answers = await guest.ask_agent(self.agent_timeout, "guest-get-osinfo", "guest-network-get-interfaces")
        if answers is None:
            return
        _, info, nics = answers

        def connected(status: dict) -> None:
            status["guestOSInfo"] = {
                "id": info.get("id", ""),
                "name": info.get("name", ""),
                "prettyName": info.get("pretty-name", ""),
                "version": info.get("version", ""),
                "versionId": info.get("version-id", ""),
                "kernelRelease": info.get("kernel-release", ""),
            }
            condition(status, "AgentConnected", "True")

        self.api.set_status(R["virtualmachineinstances"], ns, name, connected)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.agent_timeout
        while not self.report_ips(ns, name, nics) and loop.time() < deadline:
            await asyncio.sleep(AGENT_REFRESH_SECONDS)
            answers = await guest.ask_agent(AGENT_REFRESH_SECONDS, "guest-network-get-interfaces")
            if answers is None:
                return  # the guest stopped
            nics = answers[1]

    def report_ips(self, ns: str, name: str, nics: list[dict]) -> bool:
        """Put the agent's IPv4 addresses on the VMI's interfaces (by MAC); True once every NIC has one."""
        by_mac = {n.get("hardware-address", "").lower(): n for n in nics}
        complete = True

        def update(status: dict) -> None:
            nonlocal complete
            for iface in status.get("interfaces") or []:
                found = by_mac.get(iface.get("mac", "").lower())
                ips = [
                    a["ip-address"] for a in (found or {}).get("ip-addresses", []) if a.get("ip-address-type") == "ipv4"
                ]
                if ips:
                    iface.update(
                        ipAddress=ips[0], ipAddresses=ips, infoSource="domain, guest-agent", interfaceName=found["name"]
                    )
                else:
                    complete = False

        if self.api.store.get(R["virtualmachineinstances"], ns, name) is None:
            return True
        self.api.set_status(R["virtualmachineinstances"], ns, name, update)
        return complete

    async def volumes_ready(self, ns: str, name: str, spec: dict) -> bool:
        for volume in spec.get("volumes") or []:
            claim = (volume.get("dataVolume") or {}).get("name") or (volume.get("persistentVolumeClaim") or {}).get(
                "claimName"
            )
            if not claim:
                continue
            if (
                self.api.store.get(R["persistentvolumeclaims"], ns, claim) is None
                and self.api.store.get(R["datavolumes"], ns, claim) is None
            ):
                message = f"PVC {ns}/{claim} does not exist, waiting for it to appear"
                self.api.set_status(
                    R["virtualmachineinstances"],
                    ns,
                    name,
                    lambda s: condition(s, "Synchronized", "False", "FailedPvcNotFound", message),
                )
                self.vm_status(ns, name, "ErrorPvcNotFound", failure=("FailedPvcNotFound", message))
                await self.until(R["datavolumes"], lambda: self.api.store.get(R["datavolumes"], ns, claim) is not None)
            dv = lambda: self.api.store.get(R["datavolumes"], ns, claim)  # noqa: E731
            if dv() is not None and (dv().get("status") or {}).get("phase") != "Succeeded":
                self.vm_status(ns, name, "Provisioning")
                await self.until(
                    R["datavolumes"],
                    lambda: dv() is None or (dv().get("status") or {}).get("phase") in ("Succeeded", "Failed"),
                )
                if dv() is None or dv()["status"]["phase"] == "Failed":
                    message = f"DataVolume {claim} failed: " + next(
                        (
                            c["message"]
                            for c in (dv() or {"status": {}})["status"].get("conditions", [])
                            if c["type"] == "Running"
                        ),
                        "deleted",
                    )
                    self.vm_status(ns, name, "DataVolumeError", failure=("DataVolumeError", message))
                    return False
        return True

    async def networks_ready(self, ns: str, name: str, spec: dict) -> bool:
        for network in spec.get("networks") or []:
            multus = network.get("multus")
            if not multus:
                continue
            nad_ns, _, nad = multus["networkName"].rpartition("/")
            nad_ns = nad_ns or ns
            exists = lambda: self.api.store.get(R["network-attachment-definitions"], nad_ns, nad) is not None  # noqa: E731
            if not exists():
                message = (
                    f"failed to render launch manifest: failed to locate network attachment definition {nad_ns}/{nad}"
                )
                self.api.set_status(
                    R["virtualmachineinstances"],
                    ns,
                    name,
                    lambda s: condition(s, "Synchronized", "False", "FailedCreate", message),
                )
                self.vm_status(ns, name, "Starting", failure=("FailedCreate", message))
                await self.until(R["network-attachment-definitions"], exists)
                self.vm_status(ns, name, "Starting")
        return True

    def schedule(self, spec: dict) -> tuple[str | None, str]:
        domain = spec.get("domain") or {}
        cpu = domain.get("cpu") or {}
        requests = (domain.get("resources") or {}).get("requests") or {}
        cores = (cpu.get("cores") or 1) * (cpu.get("sockets") or 1) * (cpu.get("threads") or 1)
        need_cpu = float(str(requests.get("cpu", cores)).removesuffix("m")) / (
            1000 if str(requests.get("cpu", "")).endswith("m") else 1
        )
        memory = parse_quantity(requests.get("memory") or (domain.get("memory") or {}).get("guest") or "1Gi")
        huge = ((domain.get("memory") or {}).get("hugepages") or {}).get("pageSize") == "1Gi"
        dedicated = bool(cpu.get("dedicatedCpuPlacement"))
        nodes = list(self.api.store.list(R["nodes"], None))
        used: dict[str, list[float]] = {n["metadata"]["name"]: [0.0, 0, 0] for n in nodes}
        for other in self.api.store.list(R["virtualmachineinstances"], None):
            node = (other.get("status") or {}).get("nodeName")
            if node in used:
                d = other["spec"].get("domain") or {}
                c = d.get("cpu") or {}
                used[node][0] += (c.get("cores") or 1) * (c.get("sockets") or 1) * (c.get("threads") or 1)
                mem = parse_quantity(
                    ((d.get("resources") or {}).get("requests") or {}).get("memory")
                    or (d.get("memory") or {}).get("guest")
                    or "1Gi"
                )
                used[node][1 + (((d.get("memory") or {}).get("hugepages") or {}).get("pageSize") == "1Gi")] += mem
        reasons: dict[str, int] = {}
        for node in nodes:
            alloc = node["status"]["allocatable"]
            u = used[node["metadata"]["name"]]
            lacks = []
            if float(alloc["cpu"]) - u[0] < need_cpu:
                lacks.append("Insufficient cpu")
            if huge and parse_quantity(alloc.get("hugepages-1Gi", "0")) - u[2] < memory:
                lacks.append("Insufficient hugepages-1Gi")
            if not huge and parse_quantity(alloc["memory"]) - u[1] < memory:
                lacks.append("Insufficient memory")
            if dedicated and (node["metadata"].get("labels") or {}).get("cpumanager") != "true":
                lacks.append("node(s) didn't match Pod's node affinity/selector")
            if not lacks:
                return node["metadata"]["name"], ""
            for lack in lacks:
                reasons[lack] = reasons.get(lack, 0) + 1
        detail = ", ".join(f"{count} {lack}" for lack, count in sorted(reasons.items()))
        return None, f"0/{len(nodes)} nodes are available: {detail}."

    async def guest_agent(self, ns: str, name: str, vmi: dict, interfaces: list[dict]) -> None:
        annotations = vmi["metadata"].get("annotations") or {}
        fault = self.faults.of(self.api.store.get(R["virtualmachines"], ns, name))
        if annotations.get(AGENT, "connected") != "connected" or fault == "agent-never":
            return  # a guest whose agent never answers: no AgentConnected condition, ever
        await asyncio.sleep(self.delay * 4)
        closed = [p.strip() for p in annotations.get(FORWARD, "").split(",") if p.strip()]
        windows = annotations.get(ANNOTATION_GUEST_ID, "").startswith("win")
        remote = str(RDP if windows else SSH)
        if fault == "unreachable":  # a NAD on the wrong VLAN: the guest runs, nothing reaches it
            closed.append(remote)
        forwards = {p: f"127.0.0.1:{free_port()}" for p in closed}  # the ports named lead nowhere
        if remote not in forwards:
            forwards[remote] = f"127.0.0.1:{await self.answering_port()}"
        current = self.api.store.get(R["virtualmachineinstances"], ns, name)
        current["metadata"].setdefault("annotations", {})[FORWARDED] = ",".join(f"{p}={a}" for p, a in forwards.items())
        self.api.store.update(R["virtualmachineinstances"], current)
        guessed = "mswindows" if windows else "linux"
        os_id, _, version = annotations.get(GUEST_OS, guessed).partition(" ")  # a simulated guest knows its OS
        given = [ip for ip in annotations.get(GUEST_IPS, "").split(",") if ip]
        digest = hashlib.sha256(f"{ns}/{name}".encode()).digest()

        def connected(status: dict) -> None:
            status["guestOSInfo"] = {
                "id": os_id,
                "name": os_id.capitalize(),
                "version": version,
                "versionId": version,
                "prettyName": f"{os_id.capitalize()} {version}".strip(),
                "kernelRelease": "lab",
            }
            for n, iface in enumerate(status.get("interfaces") or []):
                # loopback addresses: anything that probes a simulated guest stays on this machine
                ip = given[n] if n < len(given) else f"127.244.{digest[0]}.{digest[1] % 250 + n + 2}"
                iface.update(ipAddress=ip, ipAddresses=[ip], infoSource="domain, guest-agent")
            condition(status, "AgentConnected", "True")

        self.api.set_status(R["virtualmachineinstances"], ns, name, connected)
