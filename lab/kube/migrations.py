"""Live migrations of the lab KubeVirt: a VirtualMachineInstanceMigration walks KubeVirt's phases.

Pending, Scheduling, Scheduled, PreparingTarget, TargetReady, Running (the
memory is copied: the VMI's data processed and remaining, as virt-handler
reports them), then Succeeded with the VMI on another schedulable node; a
migration of a VMI that does not run fails, as KubeVirt's does. The guest
does not really move (a real QEMU keeps running where it is): the lab says
so with the metrics' ``source`` label. virt-controller's histogram of how long
after its creation a migration reached each phase is kept for ``/metrics``.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone

from vmwave_lab.kube.quantity import parse_quantity
from vmwave_lab.kube.controllers import R, condition, event
from vmwave_lab.kube.server import Api
from vmwave_lab.kube.store import now

PHASES = ("Pending", "Scheduling", "Scheduled", "PreparingTarget", "TargetReady", "Running", "Succeeded")
BUCKETS = (0.5, 1, 2, 5, 10, 20, 30, 40, 50, 60, 90, 120, 180, 240, 300, 600, 900, 1200, 1800, 2400, 3000, 3600)


class Histogram:
    """Observations by phase, as a Prometheus histogram's cumulative buckets, count and sum."""

    def __init__(self) -> None:
        self.seen: dict[str, list[float]] = {}

    def observe(self, phase: str, seconds: float) -> None:
        self.seen.setdefault(phase, []).append(seconds)

    def samples(self, name: str) -> list[tuple[str, dict[str, str], float]]:
        found = []
        for phase, values in sorted(self.seen.items()):
            found += [
                (f"{name}_bucket", {"phase": phase, "le": str(float(le))}, sum(v <= le for v in values))
                for le in BUCKETS
            ]
            found += [
                (f"{name}_bucket", {"phase": phase, "le": "+Inf"}, len(values)),
                (f"{name}_count", {"phase": phase}, len(values)),
                (f"{name}_sum", {"phase": phase}, sum(values)),
            ]
        return found


class Migrations:
    def __init__(self, api: Api, config: dict):
        self.api, self.delay = api, float(config.get("phase_delay", 0.05))
        self.copy_seconds = float(config.get("migration_seconds", 4))  # how long the memory copy takes
        self.progress: dict[tuple[str, str], tuple[int, int]] = {}  # (ns, vmi) -> (processed, remaining) bytes
        self.phase_times = Histogram()

    def _phase(self, ns: str, name: str, phase: str, created: datetime, **state) -> None:
        def mutate(status: dict) -> None:
            status["phase"] = phase
            status.setdefault("phaseTransitionTimestamps", []).append(
                {"phase": phase, "phaseTransitionTimestamp": now()}
            )
            if state:
                status.setdefault("migrationState", {}).update(state)

        self.api.set_status(R["virtualmachineinstancemigrations"], ns, name, mutate)
        self.phase_times.observe(phase, (datetime.now(timezone.utc) - created).total_seconds())

    async def reconcile(self, kind: str, migration: dict) -> None:
        ns, name = migration["metadata"]["namespace"], migration["metadata"]["name"]
        if kind == "DELETED" or (migration.get("status") or {}).get("phase"):
            return
        created = datetime.fromisoformat(migration["metadata"]["creationTimestamp"].replace("Z", "+00:00"))
        target = migration["spec"].get("vmiName", "")
        vmi = self.api.store.get(R["virtualmachineinstances"], ns, target)
        if vmi is None or (vmi.get("status") or {}).get("phase") != "Running":
            self._phase(ns, name, "Failed", created, failed=True, failureReason=f'VMI "{target}" is not running')
            event(self.api, migration, "FailedMigration", f"VirtualMachineInstance {target} is not running", "Warning")
            return
        source = vmi["status"].get("nodeName", "")
        nodes = [
            n["metadata"]["name"] for n in self.api.store.list(R["nodes"], None) if n["metadata"]["name"] != source
        ]
        if not nodes:
            self._phase(ns, name, "Failed", created, failed=True, failureReason="no other node to migrate to")
            return
        for phase in PHASES[:5]:
            self._phase(
                ns,
                name,
                phase,
                created,
                **({"sourceNode": source, "targetNode": nodes[0]} if phase == "Scheduled" else {}),
            )
            await asyncio.sleep(self.delay)
        self._phase(ns, name, "Running", created, startTimestamp=now(), mode="PreCopy")
        memory = parse_quantity(((vmi["spec"].get("domain") or {}).get("memory") or {}).get("guest") or "1Gi")
        steps = max(1, int(self.copy_seconds / 0.5))
        for step in range(steps + 1):
            done = memory * step // steps
            self.progress[(ns, target)] = (done, memory - done)
            await asyncio.sleep(0.5 if step < steps else 0)
        self.progress.pop((ns, target), None)

        def moved(status: dict) -> None:
            status["nodeName"] = nodes[0]
            status["migrationState"] = {
                "completed": True,
                "sourceNode": source,
                "targetNode": nodes[0],
                "endTimestamp": now(),
                "mode": "PreCopy",
            }
            condition(status, "LiveMigratable", "True")

        self.api.set_status(R["virtualmachineinstances"], ns, target, moved)
        self._phase(ns, name, "Succeeded", created, completed=True, endTimestamp=now())
        event(self.api, migration, "SuccessfulMigration", f"migrated {target} from {source} to {nodes[0]}")
