"""Ask the real cluster and vCenter whether a wave can run, changing nothing in either.

Every object the wave's VMs become is sent with a server-side dry run (the cluster's validation, admission
webhooks and quotas answer); the StorageClasses and NetworkAttachmentDefinitions the objects name must exist;
the wave must fit the nodes that may run it and its namespace's ResourceQuotas, counting what already runs; and
the vCenter user must hold every privilege its steps need on every VM, datastore and host. `vmwave preflight`
runs these for the waves it is given, `prepare_wave` for its own before anything changes.
"""

from __future__ import annotations

from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal

from vmwave.adapters.kubernetes import Cluster
from vmwave.adapters.vsphere import connect
from vmwave.adapters.vsphere_privileges import missing_privileges
from vmwave.domain.preflight import (
    PRIVILEGES,
    Problem,
    Room,
    Usage,
    fit_problem,
    need_of,
    place,
    quantity,
    quota_problems,
    rooms,
)
from vmwave.settings import Settings
from vmwave_tasks.job import Job

DRY_RUNS_AT_ONCE = 8


@dataclass
class NodeRoom:
    """What the cluster's nodes have left for VMs, and the VMs running there (namespace, name): read once for every
    wave a preflight checks."""

    free: list[Room]
    running: set[tuple[str, str]]


def node_room(cluster: Cluster) -> NodeRoom:
    instances = cluster.items("kubevirt.io/v1", "VirtualMachineInstance")
    return NodeRoom(
        rooms(cluster.items("v1", "Node"), cluster.items("v1", "Pod"), instances),
        {(i["metadata"].get("namespace", ""), i["metadata"]["name"]) for i in instances},
    )


def _to_check(jobs: list[Job]) -> list[Job]:
    """The VMs the run will move: one an earlier run verified is left as it is."""
    return [job for job in jobs if not job.migrated_before and job.objects is not None]


def refused_objects(wave: str, jobs: list[Job], cluster: Cluster) -> list[Problem]:
    """Each object the cluster would not admit, asked with a dry run. Objects in a namespace that does not exist
    yet cannot be asked about (the namespace is made first): the wave's summary says so."""
    objects: dict[tuple[str, str, str], tuple[str, dict]] = {}
    namespaces = {ns["metadata"]["name"] for ns in cluster.items("v1", "Namespace")}
    for job in jobs:
        for obj in job.objects.all():
            meta = obj["metadata"]
            if meta.get("namespace", "") and meta["namespace"] not in namespaces:
                continue
            objects.setdefault((obj["kind"], meta.get("namespace", ""), meta["name"]), (job.vm.name, obj))
    with ThreadPoolExecutor(DRY_RUNS_AT_ONCE) as pool:
        answers = list(pool.map(lambda item: cluster.refusal(item[1]), objects.values()))
    problems = []
    for ((kind, ns, name), (vm, _)), why in zip(objects.items(), answers):
        if why is not None:
            problems.append(
                Problem(
                    wave,
                    vm,
                    f"the cluster refuses its {kind} {ns + '/' if ns else ''}{name}: {why}",
                    "change the plan or maps so the object is admitted, or the cluster's policy",
                )
            )
    return problems


def missing_references(wave: str, jobs: list[Job], cluster: Cluster) -> list[Problem]:
    """StorageClasses and NetworkAttachmentDefinitions the wave's objects name that the cluster lacks, each once."""
    classes: dict[str, set[str]] = defaultdict(set)
    networks: dict[str, set[str]] = defaultdict(set)
    made = {f"{n['metadata']['namespace']}/{n['metadata']['name']}" for job in jobs for n in job.objects.nads}
    for job in jobs:
        for dv in job.objects.datavolumes:
            classes[dv["spec"]["storage"].get("storageClassName", "")].add(job.vm.name)
        scratch = (job.entry.conversion_pods or job.maps.conversion_pods).scratch
        if scratch is not None and job.conversion is not None and job.conversion.tool == "virt-v2v":
            classes[scratch.storage_class].add(job.vm.name)
        spec = job.objects.virtual_machine["spec"]["template"]["spec"]
        for network in spec.get("networks") or []:
            name = (network.get("multus") or {}).get("networkName")
            if name:
                networks[name if "/" in name else f"{job.maps.namespace}/{name}"].add(job.vm.name)
        for dv in job.objects.datavolumes:
            transfer = (dv["metadata"].get("annotations") or {}).get("k8s.v1.cni.cncf.io/networks")
            if transfer:
                networks[transfer].add(job.vm.name)
    problems = []
    for sc, vms in sorted(classes.items()):
        if sc and cluster.get("storage.k8s.io/v1", "StorageClass", None, sc) is None:
            problems.append(
                Problem(
                    wave,
                    "",
                    f"StorageClass {sc} does not exist; {len(vms)} VM(s) need it ({', '.join(sorted(vms)[:5])})",
                    f"create StorageClass {sc}, or map their datastores (or scratch) to one "
                    "`kubectl get storageclass` lists",
                )
            )
    for nad, vms in sorted(networks.items()):
        ns, _, name = nad.partition("/")
        if nad not in made and cluster.get("k8s.cni.cncf.io/v1", "NetworkAttachmentDefinition", ns, name) is None:
            problems.append(
                Problem(
                    wave,
                    "",
                    f"NetworkAttachmentDefinition {nad} does not exist; {len(vms)} VM(s) "
                    f"use it ({', '.join(sorted(vms)[:5])})",
                    "create it, or let vmwave make it (`create:` in the maps' network entry)",
                )
            )
    return problems


def quota_shortfalls(wave: str, jobs: list[Job], cluster: Cluster) -> list[Problem]:
    """What the wave adds to its namespace (volumes not made yet, VMs not running yet) against its quotas."""
    problems = []
    by_namespace: dict[str, list[Job]] = defaultdict(list)
    for job in jobs:
        by_namespace[job.maps.namespace].append(job)
    for namespace, members in sorted(by_namespace.items()):
        quotas = cluster.items("v1", "ResourceQuota", namespace)
        if not quotas:
            continue
        claims = {c["metadata"]["name"] for c in cluster.items("v1", "PersistentVolumeClaim", namespace)}
        running = {v["metadata"]["name"] for v in cluster.items("kubevirt.io/v1", "VirtualMachineInstance", namespace)}
        adds = Usage()
        seen: set[str] = set()
        for job in members:
            for dv in job.objects.datavolumes:
                name = dv["metadata"]["name"]
                if name in claims or name in seen:
                    continue
                seen.add(name)
                adds = adds.add("requests.storage", quantity(dv["spec"]["storage"]["resources"]["requests"]["storage"]))
                adds = adds.add("persistentvolumeclaims", Decimal(1))
            vm = job.objects.virtual_machine
            if vm["metadata"]["name"] not in running:
                need = need_of(vm["metadata"]["name"], vm)
                adds = adds.add("pods", Decimal(1)).add("requests.cpu", need.cpu).add("requests.memory", need.memory)
                adds = adds.add("requests.hugepages-1Gi", need.hugepages)
        problems += quota_problems(wave, namespace, quotas, adds)
    return problems


def node_shortfall(wave: str, jobs: list[Job], room: NodeRoom) -> list[Problem]:
    """The wave's VMs that fit on no node once they all run (one running already, from an earlier run of the wave,
    is counted where it runs); ``room`` keeps what they took for the next wave."""
    vms = [(job.vm.name, job.objects.virtual_machine) for job in jobs]
    needs = [
        need_of(name, vm)
        for name, vm in vms
        if (vm["metadata"]["namespace"], vm["metadata"]["name"]) not in room.running
    ]
    found = fit_problem(wave, place(room.free, needs), len(needs), room.free)
    return [found] if found else []


def lacking_privileges(wave: str, jobs: list[Job], settings: Settings) -> list[Problem]:
    """The privileges the vCenter user lacks for the wave's steps: one problem per privilege set on VMs, and per
    datastore or host, each naming the steps that need them."""
    copied = [job for job in jobs if job.mode != "rebuild"]
    if not copied:
        return []
    step_of = {p: step for step, (_, privs) in PRIVILEGES.items() for p in privs}
    vms = {}
    for job in copied:
        wanted = (
            {"inventory", "snapshot", "cdi-import"}
            | ({"precopy (warm)"} if job.warm else set())
            | ({"fence"} if job.entry.fencing.enabled else set())
        )
        vms[job.vm.moref] = {p for step in wanted for p in PRIVILEGES[step][1]}
    with connect(settings.need_vcenter()) as si:
        short = missing_privileges(
            si, vms, set(PRIVILEGES["cdi-import (datastore files)"][1]), set(PRIVILEGES["cdi-import (host)"][1])
        )
    names = {job.vm.moref: job.vm.name for job in copied}
    grouped: dict[tuple[str, str, tuple[str, ...]], list[str]] = defaultdict(list)
    for moref, kind, name, privileges in short:
        grouped[(kind, "" if kind == "VM" else name, tuple(privileges))].append(names[moref])
    problems = []
    for (kind, name, privileges), vm_names in sorted(grouped.items()):
        steps = sorted({step_of.get(p, "?") for p in privileges})
        where = (
            f"{len(vm_names)} VM(s) ({', '.join(sorted(vm_names)[:5])})"
            if kind == "VM"
            else f"{kind} {name} (holding disks of {len(set(vm_names))} VM(s))"
        )
        problems.append(
            Problem(
                wave,
                "",
                f"the vCenter user lacks {', '.join(privileges)} on {where}, which {', '.join(steps)} need(s)",
                f"grant vmwave's vCenter role these privileges on the {kind}s "
                "(docs/runbook.md lists them per step), or propagate them from a parent folder",
            )
        )
    return problems


def preflight(wave: str, jobs: list[Job], settings: Settings, room: NodeRoom | None = None) -> list[Problem]:
    """Every cluster and vCenter problem of a wave whose jobs are built; ``room`` is the nodes', shared by the
    waves of one preflight (read now when not given)."""
    jobs = _to_check(jobs)
    if not jobs:
        return []
    cluster = jobs[0].clients.cluster
    room = node_room(cluster) if room is None else room
    return (
        refused_objects(wave, jobs, cluster)
        + missing_references(wave, jobs, cluster)
        + quota_shortfalls(wave, jobs, cluster)
        + node_shortfall(wave, jobs, room)
        + lacking_privileges(wave, jobs, settings)
    )
