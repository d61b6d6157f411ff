"""Step 7: smoke checks against the migrated guest (TCP ports open, for now).

The guest is reached at the IP its agent reported, or through the port
forwards a VMI announces in ``lab.vmwave.io/forwarded`` (the lab's network).
"""

from __future__ import annotations

import socket

from vmwave.adapters.kubernetes import Cluster
from vmwave.domain.names import k8s_name
from vmwave.planning import load_maps
from vmwave_tasks.job import Job, StepFailed, step

FORWARDED = "lab.vmwave.io/forwarded"


def endpoint(vmi: dict, guest_ip: str | None, port: int) -> tuple[str, int]:
    forwards = dict(item.split("=", 1) for item in
                    ((vmi.get("metadata") or {}).get("annotations") or {}).get(FORWARDED, "").split(",") if "=" in item)
    if str(port) in forwards:
        host, _, host_port = forwards[str(port)].rpartition(":")
        return host, int(host_port)
    if not guest_ip:
        raise StepFailed(f"no address to check port {port} on", "the guest agent reported no IP", "no-guest-ip")
    return guest_ip, port


@step("smoke-test")
def smoke(job: Job, agent: dict, checks: list[dict]) -> dict:
    if not checks:
        return {"status": "skipped", "checks": []}
    maps = load_maps(job.maps)
    vmi = Cluster(job.kubeconfig).get("kubevirt.io/v1", "VirtualMachineInstance", maps.namespace, k8s_name(job.vm.name)) or {}
    guest_ip = next((i["ip"] for i in agent.get("interfaces", []) if i.get("ip")), None)
    results = []
    for check in checks:
        port = int(check["tcp"])
        host, target_port = endpoint(vmi, guest_ip, port)
        try:
            with socket.create_connection((host, target_port), timeout=float(check.get("timeout", 10))):
                results.append({"tcp": port, "ok": True})
        except OSError as exc:
            raise StepFailed(f"smoke check tcp/{port} on {job.vm.name} failed ({exc})",
                             "check the service in the guest and the VLAN/NAD of its NIC", "smoke-check-failed") from None
    return {"checks": results}
