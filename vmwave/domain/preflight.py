"""What a wave needs of the cluster and of vCenter, and whether they have it: the arithmetic of the preflight.

A problem names its wave, its VM (or none: the wave as a whole), what is wrong and the fix. The cluster's
answers (nodes, what runs on them, quotas) and vCenter's (privileges) come in as plain values; the checks that
fetch them are ``vmwave_tasks.preflight``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Iterable

CPU_ALLOCATION_RATIO = 10  # KubeVirt's default: a vCPU that is not dedicated requests a tenth of a core
HUGEPAGES = "hugepages-1Gi"
_QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(m|k|M|G|T|P|Ki|Mi|Gi|Ti|Pi)?$")
_FACTORS = {
    None: 1,
    "m": Decimal("0.001"),
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
}
GI = 2**30

# What each step does in vCenter, and the privileges it needs there (vSphere privilege ids), on what.
PRIVILEGES: dict[str, tuple[str, tuple[str, ...]]] = {
    "inventory": ("VirtualMachine", ("System.Read",)),
    "snapshot": (
        "VirtualMachine",
        (
            "VirtualMachine.State.CreateSnapshot",
            "VirtualMachine.State.RemoveSnapshot",
            "VirtualMachine.Interact.PowerOff",
            "VirtualMachine.Interact.PowerOn",
        ),
    ),
    "cdi-import": (
        "VirtualMachine",
        ("VirtualMachine.Provisioning.DiskRandomRead", "VirtualMachine.Provisioning.GetVmFiles"),
    ),
    "cdi-import (datastore files)": ("Datastore", ("Datastore.Browse", "Datastore.FileManagement")),
    "cdi-import (host)": ("HostSystem", ("System.Read",)),
    "precopy (warm)": ("VirtualMachine", ("VirtualMachine.Config.ChangeTracking",)),
    "fence": (
        "VirtualMachine",
        (
            "VirtualMachine.Config.Rename",
            "VirtualMachine.Config.EditDevice",
            "VirtualMachine.Inventory.Move",
            "Global.SetCustomField",
        ),
    ),
}


@dataclass(frozen=True)
class Problem:
    """One reason a wave cannot run as planned."""

    wave: str
    vm: str  # "" when it concerns the wave as a whole
    what: str
    fix: str = ""

    def __str__(self) -> str:
        told = f"{self.vm}: {self.what}" if self.vm else self.what
        return f"{told} (fix: {self.fix})" if self.fix else told


def quantity(text: Any) -> Decimal:
    """A Kubernetes quantity (``512Mi``, ``500m``, ``2``) as a number; 0 for none."""
    if text in (None, ""):
        return Decimal(0)
    found = _QUANTITY.match(str(text).strip())
    if not found:
        raise ValueError(f"{text!r} is not a Kubernetes quantity")
    return Decimal(found.group(1)) * _FACTORS[found.group(2)]


def gib(amount: Decimal | float) -> str:
    return f"{float(amount) / GI:.1f} GiB"


@dataclass(frozen=True)
class Need:
    """What one VirtualMachine takes from the node it runs on, and where it may run."""

    vm: str
    cpu: Decimal
    memory: Decimal
    hugepages: Decimal
    selector: tuple[tuple[str, str], ...] = ()
    dedicated: bool = False

    def fits(self, node: "Room") -> bool:
        labels = node.labels
        return (
            all(labels.get(k) == v for k, v in self.selector)
            and (not self.dedicated or labels.get("cpumanager") == "true")
            and node.cpu >= self.cpu
            and node.memory >= self.memory
            and node.hugepages >= self.hugepages
        )


def need_of(name: str, vm: dict[str, Any]) -> Need:
    """What a VirtualMachine's launcher pod requests, as KubeVirt computes it (without its small overhead)."""
    spec = ((vm.get("spec") or {}).get("template") or {}).get("spec") or {}
    return _need(name, spec.get("domain") or {}, spec.get("nodeSelector") or {})


def need_of_instance(vmi: dict[str, Any]) -> Need:
    spec = vmi.get("spec") or {}
    return _need(vmi["metadata"]["name"], spec.get("domain") or {}, {})


def _need(name: str, domain: dict[str, Any], selector: dict[str, str]) -> Need:
    cpu = domain.get("cpu") or {}
    vcpus = (cpu.get("cores") or 1) * (cpu.get("sockets") or 1) * (cpu.get("threads") or 1)
    requests = (domain.get("resources") or {}).get("requests") or {}
    memory = quantity(requests.get("memory") or (domain.get("memory") or {}).get("guest") or "1Gi")
    huge = ((domain.get("memory") or {}).get("hugepages") or {}).get("pageSize") == "1Gi"
    dedicated = bool(cpu.get("dedicatedCpuPlacement"))
    cores = (
        Decimal(vcpus)
        if dedicated
        else (quantity(requests["cpu"]) if "cpu" in requests else Decimal(vcpus) / CPU_ALLOCATION_RATIO)
    )
    return Need(
        name,
        cores,
        Decimal(0) if huge else memory,
        memory if huge else Decimal(0),
        tuple(sorted(selector.items())),
        dedicated,
    )


@dataclass
class Room:
    """What a node has left for VMs: allocatable less what runs there."""

    name: str
    labels: dict[str, str]
    cpu: Decimal
    memory: Decimal
    hugepages: Decimal

    def take(self, need: Need) -> None:
        self.cpu -= need.cpu
        self.memory -= need.memory
        self.hugepages -= need.hugepages


def rooms(
    nodes: Iterable[dict[str, Any]], pods: Iterable[dict[str, Any]], instances: Iterable[dict[str, Any]]
) -> list[Room]:
    """The room on each node that may run VMs (Ready, schedulable), counting the pods and VMs running there.

    A running VM counts once: as its VirtualMachineInstance, not its virt-launcher pod."""
    found: dict[str, Room] = {}
    for node in nodes:
        meta, spec = node["metadata"], node.get("spec") or {}
        labels = meta.get("labels") or {}
        ready = any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in (node.get("status") or {}).get("conditions") or []
        )
        if not ready or spec.get("unschedulable") or labels.get("kubevirt.io/schedulable") == "false":
            continue
        alloc = (node.get("status") or {}).get("allocatable") or {}
        found[meta["name"]] = Room(
            meta["name"],
            labels,
            quantity(alloc.get("cpu")),
            quantity(alloc.get("memory")),
            quantity(alloc.get(HUGEPAGES)),
        )
    for pod in pods:
        room = found.get((pod.get("spec") or {}).get("nodeName", ""))
        if (
            room is None
            or (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")
            or (pod["metadata"].get("labels") or {}).get("kubevirt.io") == "virt-launcher"
        ):
            continue
        for container in pod["spec"].get("containers") or []:
            requests = (container.get("resources") or {}).get("requests") or {}
            room.cpu -= quantity(requests.get("cpu"))
            room.memory -= quantity(requests.get("memory"))
            room.hugepages -= quantity(requests.get(HUGEPAGES))
    for vmi in instances:
        room = found.get((vmi.get("status") or {}).get("nodeName", ""))
        if room is not None and (vmi.get("status") or {}).get("phase") not in ("Succeeded", "Failed"):
            room.take(need_of_instance(vmi))
    return list(found.values())


def place(free: list[Room], needs: list[Need]) -> list[Need]:
    """Put each VM on a node with room, largest first (as a scheduler filling nodes would); those that fit nowhere.
    ``free`` is left with what the placed VMs took, so the next wave counts them."""
    unplaced = []
    for need in sorted(needs, key=lambda n: (n.memory + n.hugepages, n.cpu), reverse=True):
        node = next((room for room in free if need.fits(room)), None)
        if node is None:
            unplaced.append(need)
        else:
            node.take(need)
    return unplaced


def _total(items: list[Need] | list[Room]) -> str:
    cpu, memory, huge = (sum((getattr(i, k) for i in items), Decimal(0)) for k in ("cpu", "memory", "hugepages"))
    return ", ".join([f"{cpu:.1f} CPU", f"{gib(memory)} memory"] + ([f"{gib(huge)} 1Gi hugepages"] if huge else []))


def fit_problem(wave: str, unplaced: list[Need], total: int, free: list[Room]) -> Problem | None:
    """The wave's VMs that no node can hold, as one problem with what they need and what the nodes have left."""
    if not unplaced:
        return None
    names = ", ".join(n.vm for n in unplaced[:10]) + (f" and {len(unplaced) - 10} more" if len(unplaced) > 10 else "")
    return Problem(
        wave,
        "",
        f"{len(unplaced)} of its {total} VMs fit on no node that may run them ({names}): they "
        f"need {_total(unplaced)}; the nodes "
        f"have {_total(free)} left (after what runs there and the waves checked before)",
        "add nodes or free room on them (dedicated-CPU VMs need nodes labelled cpumanager=true, "
        "hugepages VMs nodes with 1Gi pages), or move these VMs to a later wave",
    )


@dataclass(frozen=True)
class Usage:
    """What a wave adds to one namespace, in the resource names ResourceQuotas use."""

    amounts: dict[str, Decimal] = field(default_factory=dict)

    def add(self, key: str, amount: Decimal) -> "Usage":
        return Usage({**self.amounts, key: self.amounts.get(key, Decimal(0)) + amount})


def quota_problems(wave: str, namespace: str, quotas: Iterable[dict[str, Any]], adds: Usage) -> list[Problem]:
    """Each hard limit of the namespace's ResourceQuotas that the wave would pass, once."""
    problems = []
    for quota in quotas:
        name = quota["metadata"]["name"]
        status = quota.get("status") or {}
        hard = status.get("hard") or (quota.get("spec") or {}).get("hard") or {}
        used = status.get("used") or {}
        for key, limit in sorted(hard.items()):
            wanted = adds.amounts.get(key)
            if wanted is None or quantity(used.get(key)) + wanted <= quantity(limit):
                continue
            shown = (lambda v: gib(v)) if key.endswith(("storage", "memory")) else (lambda v: f"{v:g}")
            problems.append(
                Problem(
                    wave,
                    "",
                    f"ResourceQuota {namespace}/{name} allows {key} {limit}; {shown(quantity(used.get(key)))} is "
                    f"used and the wave needs {shown(wanted)} more",
                    f"raise {key} in ResourceQuota {namespace}/{name} to at least "
                    f"{shown(quantity(used.get(key)) + wanted)}, or split the wave",
                )
            )
    return problems
