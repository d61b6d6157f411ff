"""Steps 4-6 on the cluster: networks attached, the VirtualMachine booted, its guest agent heard."""

from __future__ import annotations

import time
from datetime import datetime, timezone

from vmwave.domain.manifests import ANNOTATION_MIGRATED
from vmwave.domain.steps import BOOT, GUEST_AGENT, NETWORK_ATTACH
from vmwave.errors import TimedOut
from vmwave_tasks.job import Job, StepFailed
from vmwave_tasks.step import step

KV = "kubevirt.io/v1"
IP_GRACE_SECONDS = 120


@step(NETWORK_ATTACH)
def network_attach(job: Job) -> dict:
    """The NADs the network map creates exist; the rest must already be there."""
    cluster = job.clients.cluster
    created = [cluster.apply(nad)["metadata"]["name"] for nad in job.objects.nads]
    missing = []
    for nic in job.vm.nics:
        mapping = job.maps.network_for(nic)
        if mapping is not None and mapping.network != "pod":
            ns, name = mapping.network.split("/")
            if cluster.get("k8s.cni.cncf.io/v1", "NetworkAttachmentDefinition", ns, name) is None:
                missing.append(mapping.network)
    if missing:
        raise StepFailed("nad-missing", f"NetworkAttachmentDefinition(s) {', '.join(missing)} do not exist")
    return {"created": created, "macs": [nic.mac for nic in job.vm.nics]}


def _conditions(obj: dict | None) -> dict[str, str]:
    return {c["type"]: c["status"] for c in ((obj or {}).get("status") or {}).get("conditions", [])}


@step(BOOT)
def boot(job: Job) -> dict:
    cluster, namespace = job.clients.cluster, job.maps.namespace
    cluster.apply_owned(job.objects.virtual_machine, job.run)
    try:
        vmi = job.wait_for(
            KV,
            "VirtualMachineInstance",
            job.target,
            lambda o: ((o or {}).get("status") or {}).get("phase") == "Running",
            job.settings.timeouts.boot,
            "Running",
        )
    except TimedOut:
        vm = cluster.get(KV, "VirtualMachine", namespace, job.target) or {}
        status = vm.get("status") or {}
        failure = next((c for c in status.get("conditions", []) if c["type"] == "Failure"), {})
        raise StepFailed(
            "vmi-not-running",
            f"VM {job.target} did not start: {status.get('printableStatus', 'no status')} "
            f"{failure.get('message', '')}".strip(),
        ) from None
    return {"vm": job.target, "node": vmi["status"].get("nodeName", "")}


@step(GUEST_AGENT)
def guest_agent(job: Job, down: dict) -> dict:
    """The agent connected, and the downtime since the source went down (``down``: the snapshot step's)."""
    limit = job.settings.timeouts.agent
    try:
        vmi = job.wait_for(
            KV,
            "VirtualMachineInstance",
            job.target,
            lambda o: _conditions(o).get("AgentConnected") == "True",
            limit,
            "AgentConnected",
        )
    except TimedOut:
        raise StepFailed("guest-agent-not-connected", f"the guest agent of {job.target} never connected") from None
    went_down = down.get("powered_off_at")
    downtime = round(time.time() - went_down, 3) if went_down else None  # source off until the agent answers
    try:  # an agent often answers before DHCP has given the guest an address
        vmi = job.wait_for(
            KV,
            "VirtualMachineInstance",
            job.target,
            _has_ip,
            min(limit, IP_GRACE_SECONDS),
            "an IP from the guest agent",
        )
    except TimedOut:
        pass  # recorded without an address; smoke checks that need one say so
    status = vmi["status"]
    return {
        "os": status.get("guestOSInfo", {}),
        "downtime_seconds": downtime,
        "interfaces": [{"mac": i.get("mac"), "ip": i.get("ipAddress")} for i in status.get("interfaces", [])],
    }


def _has_ip(vmi: dict | None) -> bool:
    return any(i.get("ipAddress") for i in ((vmi or {}).get("status") or {}).get("interfaces", []))


def mark_migrated(job: Job) -> str:
    """The VirtualMachine says it is a verified migration (wave, time, run): the cluster, not only this run's
    ledger, remembers it, so no later run (another plan, ledger or wave) touches it."""
    cluster = job.clients.cluster
    there = cluster.get(KV, "VirtualMachine", job.maps.namespace, job.target) or {}
    marker = ((there.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION_MIGRATED)
    if marker:  # verified before: it keeps the first time it was
        return marker
    marker = f"{job.wave} {datetime.now(timezone.utc).isoformat(timespec='seconds')} run {job.run}"
    cluster.patch(
        KV,
        "VirtualMachine",
        job.maps.namespace,
        job.target,
        {"metadata": {"annotations": {ANNOTATION_MIGRATED: marker}}},
    )
    return marker


def settle_power(job: Job) -> str:
    """After verification, leave the VirtualMachine as the plan's ``target_power_state`` says (on, off, or as the
    source was): every VM boots once to be checked, but a VM that was off at the source need not stay up."""
    wanted = job.entry.target_power_state
    if wanted == "on" or (wanted == "source" and job.vm.power_state == "poweredOn"):
        return "Always"
    cluster, namespace = job.clients.cluster, job.maps.namespace
    cluster.patch(KV, "VirtualMachine", namespace, job.target, {"spec": {"runStrategy": "Halted"}})
    cluster.wait_for(
        KV, "VirtualMachineInstance", namespace, job.target, lambda o: o is None, job.settings.timeouts.boot, "stopped"
    )
    return "Halted"
