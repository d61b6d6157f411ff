"""Simulated controllers of the lab cluster: bootstrap objects, then CDI and KubeVirt reconcile loops."""

from __future__ import annotations

import asyncio
import logging
import secrets
from pathlib import Path
from typing import Awaitable, Callable

from vmwave_lab.kube.resources import BY_PATH, Resource
from vmwave_lab.kube.server import Api, ApiError
from vmwave_lab.kube.store import now

log = logging.getLogger("vmwave_lab.kube")
R = {name: r for (_, _, name), r in BY_PATH.items()}
DEFAULT_STORAGE = [
    {"name": "rook-ceph-block-vm", "provisioner": "rook-ceph.rbd.csi.ceph.com", "capacity_gi": 4096, "default": True}
]


def ensure(api: Api, r: Resource, ns: str, body: dict) -> None:
    try:
        api.create(r, ns, body)
    except ApiError as exc:
        if exc.code != 409:
            raise


def quantity_gi(text: str | int) -> int:
    return int(str(text).removesuffix("Gi"))


def bootstrap(api: Api, config: dict) -> None:
    """What a fresh lab cluster has: namespaces, nodes, StorageClasses and the KubeVirt CR."""
    for ns in ("default", "kube-system", "kubevirt", "cdi"):
        ensure(api, R["namespaces"], "", {"metadata": {"name": ns}})
    for node in config["nodes"]:
        capacity = {
            "cpu": str(node["cpu"]),
            "memory": f"{node['memory_gi']}Gi",
            "hugepages-1Gi": f"{node.get('hugepages_1gi', 0)}Gi",
            "pods": "110",
        }
        ensure(
            api,
            R["nodes"],
            "",
            {
                "metadata": {"name": node["name"], "labels": node.get("labels", {})},
                "status": {
                    "capacity": capacity,
                    "allocatable": capacity,
                    "conditions": [{"type": "Ready", "status": "True"}],
                },
            },
        )
    for sc in config.get("storage_classes") or DEFAULT_STORAGE:
        annotations = {"storageclass.kubernetes.io/is-default-class": "true"} if sc.get("default") else {}
        annotations["lab.vmwave.io/capacity"] = f"{sc.get('capacity_gi', 4096)}Gi"
        ensure(
            api,
            R["storageclasses"],
            "",
            {
                "metadata": {"name": sc["name"], "annotations": annotations},
                "provisioner": sc.get("provisioner", "lab.vmwave.io/hostpath"),
                "reclaimPolicy": "Delete",
                "volumeBindingMode": "Immediate",
                "allowVolumeExpansion": True,
            },
        )
    ensure(api, R["kubevirts"], "kubevirt", {"metadata": {"name": "kubevirt"}, "spec": {"configuration": {}}})


def event(api: Api, obj: dict, reason: str, message: str, kind: str = "Normal") -> None:
    """A core Event about ``obj``, as `kubectl describe` shows them."""
    meta = obj["metadata"]
    ns = meta.get("namespace") or "default"
    api.create(
        R["events"],
        ns,
        {
            "metadata": {"name": f"{meta['name']}.{secrets.token_hex(6)}"},
            "involvedObject": {
                "kind": obj["kind"],
                "apiVersion": obj["apiVersion"],
                "name": meta["name"],
                "namespace": ns,
                "uid": meta["uid"],
            },
            "reason": reason,
            "message": message,
            "type": kind,
            "count": 1,
            "firstTimestamp": now(),
            "lastTimestamp": now(),
            "source": {"component": "vmwave-lab"},
        },
    )


def condition(status: dict, kind: str, value: str, reason: str = "", message: str = "") -> None:
    conditions = status.setdefault("conditions", [])
    for c in conditions:
        if c["type"] == kind:
            if c["status"] != value:
                c["lastTransitionTime"] = now()
            c.update(status=value, reason=reason, message=message, lastHeartbeatTime=now())
            return
    conditions.append(
        {
            "type": kind,
            "status": value,
            "reason": reason,
            "message": message,
            "lastTransitionTime": now(),
            "lastHeartbeatTime": now(),
        }
    )


Reconcile = Callable[[str, dict], Awaitable[None]]


async def run_loop(api: Api, r: Resource, reconcile: Reconcile) -> None:
    """Call ``reconcile(event, obj)`` for every object now and for every change after.

    Changes to one object are coalesced: while its reconcile runs, only the newest
    change waits. A deletion cancels whatever runs for that object.
    """
    queue = api.store.subscribe(r)
    latest: dict[tuple[str, str], tuple[str, dict]] = {}
    workers: dict[tuple[str, str], asyncio.Task] = {}

    async def work(key: tuple[str, str]) -> None:
        while key in latest:
            kind, obj = latest.pop(key)
            try:
                await reconcile(kind, obj)
            except asyncio.CancelledError:
                raise
            except Exception:  # a controller bug must not stop the loop
                log.exception("reconcile %s %s failed", r.kind, key)

    def dispatch(kind: str, obj: dict) -> None:
        key = (obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
        latest[key] = (kind, obj)
        worker = workers.get(key)
        if kind == "DELETED" and worker is not None:
            worker.cancel()
            worker = None
        if worker is None or worker.done():
            workers[key] = asyncio.create_task(work(key))

    for obj in list(api.store.list(r, None)):
        dispatch("ADDED", obj)
    while True:
        _, kind, obj = await queue.get()
        dispatch(kind, obj)


def start_controllers(api: Api, state: Path, config: dict) -> tuple[list[asyncio.Task], list]:
    """Bootstrap the cluster and start the loops; returns the tasks and the extra HTTP routes (CDI upload,
    KubeVirt's metrics)."""
    from vmwave_lab.kube.cdi import Cdi
    from vmwave_lab.kube.kubevirt import KubeVirt
    from vmwave_lab.kube.metrics import Metrics
    from vmwave_lab.kube.migrations import Migrations
    from vmwave_lab.kube.pods import Pods

    bootstrap(api, config)
    cdi, kubevirt, pods = Cdi(api, state, config), KubeVirt(api, state, config), Pods(api, state, config)
    migrations = Migrations(api, config)
    tasks = [
        asyncio.create_task(run_loop(api, R["datavolumes"], cdi.reconcile)),
        asyncio.create_task(run_loop(api, R["pods"], pods.reconcile)),
        asyncio.create_task(run_loop(api, R["jobs"], pods.reconcile_job)),
        asyncio.create_task(run_loop(api, R["virtualmachines"], kubevirt.reconcile_vm)),
        asyncio.create_task(run_loop(api, R["virtualmachineinstances"], kubevirt.reconcile_vmi)),
        asyncio.create_task(run_loop(api, R["virtualmachineinstancemigrations"], migrations.reconcile)),
    ]
    tasks.append(asyncio.create_task(_guests(kubevirt, state)))
    return tasks, cdi.routes() + Metrics(api, kubevirt.guests, migrations).routes()


async def _guests(kubevirt, state: Path) -> None:
    """The simulated guests' services listen again when a restarted API comes back (where their VMIs say), and
    every real guest stops when the lab shuts down."""
    if (state / "answering-port").is_file():
        await kubevirt.answering_port()
    try:
        await asyncio.Event().wait()
    finally:
        await kubevirt.close()
