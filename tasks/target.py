"""Steps 4-6 on the cluster: networks attached, the VirtualMachine booted, its guest agent heard."""

from __future__ import annotations

from vmwave.adapters.kubernetes import Cluster
from vmwave.domain.manifests import nads_for, virtual_machine
from vmwave.domain.names import k8s_name
from vmwave.errors import VmwaveError
from vmwave.planning import load_maps
from vmwave_tasks.job import Job, StepFailed
from vmwave_tasks.step import step

KV = "kubevirt.io/v1"
IP_GRACE_SECONDS = 120


@step("network-attach")
def network_attach(job: Job) -> dict:
    """The NADs the network map creates exist; the rest must already be there."""
    maps = load_maps(job.maps)
    cluster = Cluster(job.kubeconfig)
    created = [cluster.apply(nad)["metadata"]["name"] for nad in nads_for([job.vm], maps)]
    missing = []
    for nic in job.vm.nics:
        mapping = maps.network_for(nic)
        if mapping is not None and mapping.network != "pod":
            ns, name = mapping.network.split("/")
            if cluster.get("k8s.cni.cncf.io/v1", "NetworkAttachmentDefinition", ns, name) is None:
                missing.append(mapping.network)
    if missing:
        raise StepFailed(f"NetworkAttachmentDefinition(s) {', '.join(missing)} do not exist",
                         "create them or add `create:` to their network map entries", "nad-missing")
    return {"created": created, "macs": [nic.mac for nic in job.vm.nics]}


def _conditions(obj: dict | None) -> dict[str, str]:
    return {c["type"]: c["status"] for c in ((obj or {}).get("status") or {}).get("conditions", [])}


@step("boot")
def boot(job: Job) -> dict:
    maps = load_maps(job.maps)
    cluster = Cluster(job.kubeconfig)
    manifest = virtual_machine(job.vm, maps, job.wave, job.profile, run=True)
    cluster.apply(manifest)
    name = manifest["metadata"]["name"]
    try:
        vmi = cluster.wait_for(KV, "VirtualMachineInstance", maps.namespace, name,
                               lambda o: ((o or {}).get("status") or {}).get("phase") == "Running",
                               job.timeouts["boot"], "Running")
    except VmwaveError:
        vm = cluster.get(KV, "VirtualMachine", maps.namespace, name) or {}
        status = vm.get("status") or {}
        failure = next((c for c in status.get("conditions", []) if c["type"] == "Failure"), {})
        raise StepFailed(f"VM {name} did not start: {status.get('printableStatus', 'no status')} "
                         f"{failure.get('message', '')}".strip(),
                         "see the VirtualMachine's conditions: missing volume or NAD, or no node with room",
                         "vmi-not-running") from None
    return {"vm": name, "node": vmi["status"].get("nodeName", "")}


@step("guest-agent")
def guest_agent(job: Job) -> dict:
    maps = load_maps(job.maps)
    cluster = Cluster(job.kubeconfig)
    name = k8s_name(job.vm.name)
    try:
        vmi = cluster.wait_for(KV, "VirtualMachineInstance", maps.namespace, name,
                               lambda o: _conditions(o).get("AgentConnected") == "True", job.timeouts["agent"],
                               "AgentConnected")
    except VmwaveError:
        raise StepFailed(f"the guest agent of {name} never connected",
                         "install and start qemu-guest-agent in the guest (Windows: from the VirtIO drivers ISO), "
                         "then run the wave again", "guest-agent-not-connected") from None
    try:  # an agent often answers before DHCP has given the guest an address
        vmi = cluster.wait_for(KV, "VirtualMachineInstance", maps.namespace, name, _has_ip,
                               min(job.timeouts["agent"], IP_GRACE_SECONDS), "an IP from the guest agent")
    except VmwaveError:
        pass  # recorded without an address; smoke checks that need one say so
    status = vmi["status"]
    return {"os": status.get("guestOSInfo", {}),
            "interfaces": [{"mac": i.get("mac"), "ip": i.get("ipAddress")} for i in status.get("interfaces", [])]}


def _has_ip(vmi: dict | None) -> bool:
    return any(i.get("ipAddress") for i in ((vmi or {}).get("status") or {}).get("interfaces", []))
