"""``/metrics`` of the lab KubeVirt: what virt-handler exports for running VMIs, by KubeVirt's names and labels.

Each series has virt-handler's labels (name, namespace, node, and every VMI
label as ``kubernetes_vmi_label_<key>`` with ``.``, ``/`` and ``-`` turned
into ``_``), so the dashboards' per-wave panels work on the lab as on a
cluster. A VMI that runs as a real QEMU process reports real figures: CPU
from the process, block operations from QMP ``query-blockstats``, memory from
the balloon (``query-balloon``, and the guest's own statistics once its
driver reports them), network bytes from the guest agent's interface
statistics. Simulated VMIs report plausible figures that grow with their age.
The extra label ``source`` (``qemu`` or ``simulated``) says which, rather
than hiding it. A live migration's copy (``migrations.py``) is always
simulated; its data processed and remaining are there while it runs, as
virt-handler's are, and virt-controller's phase histogram after.
"""

from __future__ import annotations

import hashlib
import time
from datetime import datetime

from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from vmwave_lab.kube.quantity import parse_quantity
from vmwave_lab.kube.controllers import R
from vmwave_lab.kube.migrations import Migrations
from vmwave_lab.kube.qemu import QemuGuest, qmp_call
from vmwave_lab.kube.server import Api

PHASE_TIMES = "kubevirt_vmi_migration_phase_transition_time_from_creation_seconds"  # virt-controller's: phase only
FAMILIES = {  # name: (type, help) as KubeVirt documents them
    "kubevirt_vmi_cpu_usage_seconds_total": (
        "counter",
        "Total CPU time spent in all modes (sum of both vcpu and hypervisor usage).",
    ),
    "kubevirt_vmi_memory_available_bytes": ("gauge", "Amount of usable memory as seen by the domain."),
    "kubevirt_vmi_memory_usable_bytes": (
        "gauge",
        "The amount of memory which can be reclaimed by balloon without pushing the guest system to swap.",
    ),
    "kubevirt_vmi_network_receive_bytes_total": ("counter", "Total network traffic received in bytes."),
    "kubevirt_vmi_network_transmit_bytes_total": ("counter", "Total network traffic transmitted in bytes."),
    "kubevirt_vmi_storage_iops_read_total": ("counter", "Total number of I/O read operations."),
    "kubevirt_vmi_storage_iops_write_total": ("counter", "Total number of I/O write operations."),
    "kubevirt_vmi_migration_data_processed_bytes": (
        "gauge",
        "The total Guest OS data processed and migrated to the new VM.",
    ),
    "kubevirt_vmi_migration_data_remaining_bytes": (
        "gauge",
        "The remaining guest OS data to be migrated to the new VM.",
    ),
    PHASE_TIMES: ("histogram", "Histogram of VM migration phase transitions duration from creation time in seconds."),
}
Series = list[tuple[str, dict[str, str], float]]


def _label_key(key: str) -> str:
    return "kubernetes_vmi_label_" + key.replace(".", "_").replace("/", "_").replace("-", "_")


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def render(series: Series) -> str:
    lines = []
    for name, (kind, text) in FAMILIES.items():
        lines += [f"# HELP {name} {text}", f"# TYPE {name} {kind}"]
        for found, labels, value in series:
            if found == name or (kind == "histogram" and found.rsplit("_", 1)[0] == name):
                pairs = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items()))
                lines.append(f"{found}{{{pairs}}} {value!r}")
    return "\n".join(lines) + "\n"


class Metrics:
    def __init__(self, api: Api, guests: dict[tuple[str, str], QemuGuest], migrations: Migrations):
        self.api, self.guests, self.migrations = api, guests, migrations

    def routes(self) -> list[Route]:
        return [Route("/metrics", self.serve, methods=["GET"])]

    async def serve(self, request: Request) -> PlainTextResponse:
        series: Series = []
        for vmi in self.api.store.list(R["virtualmachineinstances"], None):
            if (vmi.get("status") or {}).get("phase") != "Running":
                continue
            meta = vmi["metadata"]
            labels = {
                "name": meta["name"],
                "namespace": meta["namespace"],
                "node": vmi["status"].get("nodeName", ""),
                **{_label_key(k): v for k, v in (meta.get("labels") or {}).items()},
            }
            guest = self.guests.get((meta["namespace"], meta["name"]))
            found = await real(guest, vmi) if guest else simulated(vmi)
            source = "qemu" if guest else "simulated"
            series += [(name, {**labels, **extra, "source": source}, value) for name, extra, value in found]
            moving = self.migrations.progress.get((meta["namespace"], meta["name"]))
            if moving:  # the copy is simulated even for a real guest
                series += [
                    ("kubevirt_vmi_migration_data_processed_bytes", {**labels, "source": "simulated"}, moving[0]),
                    ("kubevirt_vmi_migration_data_remaining_bytes", {**labels, "source": "simulated"}, moving[1]),
                ]
        series += self.migrations.phase_times.samples(PHASE_TIMES)
        return PlainTextResponse(render(series), media_type="text/plain; version=0.0.4")


def _reported(value: int | None) -> bool:
    """QEMU says "not reported (yet)" with -1, which QMP carries as 2**64 - 1."""
    return value is not None and 0 <= value < 1 << 63


def _spec(vmi: dict) -> tuple[list[str], list[dict], int]:
    """The VMI's disk names, interfaces and guest memory in bytes."""
    domain = vmi["spec"].get("domain") or {}
    devices = domain.get("devices") or {}
    memory = parse_quantity(
        (domain.get("memory") or {}).get("guest")
        or ((domain.get("resources") or {}).get("requests") or {}).get("memory")
        or "1Gi"
    )
    return [d["name"] for d in devices.get("disks") or []], devices.get("interfaces") or [], memory


async def real(guest: QemuGuest, vmi: dict) -> Series:
    disks, interfaces, memory = _spec(vmi)
    found: Series = []
    cpu = guest.cpu_seconds()
    if cpu is not None:
        found.append(("kubevirt_vmi_cpu_usage_seconds_total", {}, cpu))
    try:
        blocks, balloon, stats = await qmp_call(
            guest.qmp_socket,
            ("query-blockstats", {}),
            ("query-balloon", {}),
            ("qom-get", {"path": "/machine/peripheral/balloon0", "property": "guest-stats"}),
            timeout=2,
        )
        if not _reported((stats or {}).get("stats", {}).get("stat-total-memory")):  # ask the guest's driver to report
            await qmp_call(
                guest.qmp_socket,
                (
                    "qom-set",
                    {"path": "/machine/peripheral/balloon0", "property": "guest-stats-polling-interval", "value": 2},
                ),
            )
    except (OSError, ConnectionError, TimeoutError, ValueError):
        blocks, balloon, stats = [], {}, {}
    for index, block in enumerate(blocks):  # -drive if=virtio: one per disk, in the VMI's order
        drive = disks[index] if index < len(disks) else block.get("device", f"disk{index}")
        found += [
            ("kubevirt_vmi_storage_iops_read_total", {"drive": drive}, block["stats"]["rd_operations"]),
            ("kubevirt_vmi_storage_iops_write_total", {"drive": drive}, block["stats"]["wr_operations"]),
        ]
    guest_stats = (stats or {}).get("stats", {})
    available = guest_stats.get("stat-total-memory")
    found.append(
        (
            "kubevirt_vmi_memory_available_bytes",
            {},
            available if _reported(available) else (balloon or {}).get("actual", memory),
        )
    )
    if _reported(guest_stats.get("stat-available-memory")):
        found.append(("kubevirt_vmi_memory_usable_bytes", {}, guest_stats["stat-available-memory"]))
    answers = await guest.ask_agent(2, "guest-network-get-interfaces")
    by_mac = {(n.get("hardware-address") or "").lower(): n.get("statistics") or {} for n in (answers or [None, []])[1]}
    for interface in interfaces:
        counters = by_mac.get((interface.get("macAddress") or "").lower())
        if counters and "rx-bytes" in counters:
            where = {"interface": interface["name"], "network": interface["name"]}
            found += [
                ("kubevirt_vmi_network_receive_bytes_total", where, counters["rx-bytes"]),
                ("kubevirt_vmi_network_transmit_bytes_total", where, counters["tx-bytes"]),
            ]
    return found


def simulated(vmi: dict) -> Series:
    """Figures that grow with the VMI's age, different per VMI (from a hash of its name), never from nowhere."""
    disks, interfaces, memory = _spec(vmi)
    meta = vmi["metadata"]
    seed = hashlib.sha256(f"{meta['namespace']}/{meta['name']}".encode()).digest()
    created = meta.get("creationTimestamp")
    age = max(1.0, time.time() - datetime.fromisoformat(created.replace("Z", "+00:00")).timestamp()) if created else 1.0
    cores = ((vmi["spec"].get("domain") or {}).get("cpu") or {}).get("cores") or 1
    found: Series = [
        ("kubevirt_vmi_cpu_usage_seconds_total", {}, round(age * cores * (0.02 + seed[0] / 2550), 3)),
        ("kubevirt_vmi_memory_available_bytes", {}, memory),
        ("kubevirt_vmi_memory_usable_bytes", {}, int(memory * (0.4 + seed[1] / 640))),
    ]
    for index, drive in enumerate(disks):
        found += [
            ("kubevirt_vmi_storage_iops_read_total", {"drive": drive}, int(age * (3 + seed[2 + index % 8] % 20))),
            ("kubevirt_vmi_storage_iops_write_total", {"drive": drive}, int(age * (1 + seed[10 + index % 8] % 10))),
        ]
    for interface in interfaces:
        where = {"interface": interface["name"], "network": interface["name"]}
        found += [
            ("kubevirt_vmi_network_receive_bytes_total", where, int(age * (2000 + seed[20] * 40))),
            ("kubevirt_vmi_network_transmit_bytes_total", where, int(age * (1000 + seed[21] * 30))),
        ]
    return found
