"""Step 7: smoke checks against the migrated guest, from the plan and the guest-OS plugins.

Checks (see ``vmwave.domain.smoke``): ``tcp`` (a port accepts a connection),
``http`` (a URL answers with the expected status; ``{ip}`` is the guest's
address) and ``agent`` (what the guest agent reports, e.g. its OS, matches), each
retried until its ``timeout``.
The guest is reached at the IP its agent reported, or through the port
forwards a VMI announces in ``lab.vmwave.io/forwarded`` (the lab's network).
"""

from __future__ import annotations

import re
import socket
import time
import urllib.error
import urllib.request
from urllib.parse import urlparse

from vmwave.adapters.kubernetes import Cluster
from vmwave.domain.names import k8s_name
from vmwave.domain.smoke import describe
from vmwave.planning import load_maps
from vmwave_tasks.job import Job, StepFailed
from vmwave_tasks.step import step

FORWARDED = "lab.vmwave.io/forwarded"
CHECK_SECONDS = 60  # how long a check may take to pass, unless it says otherwise
ATTEMPT_SECONDS = 5
RETRY_SECONDS = 2


def endpoint(vmi: dict, guest_ip: str | None, port: int) -> tuple[str, int]:
    forwards = dict(item.split("=", 1) for item in
                    ((vmi.get("metadata") or {}).get("annotations") or {}).get(FORWARDED, "").split(",") if "=" in item)
    if str(port) in forwards:
        host, _, host_port = forwards[str(port)].rpartition(":")
        return host, int(host_port)
    if not guest_ip:
        raise StepFailed(f"no address to check port {port} on", "the guest agent reported no IP", "no-guest-ip")
    return guest_ip, port


def _tcp(check: dict, vmi: dict, guest_ip: str | None, timeout: float = ATTEMPT_SECONDS) -> str:
    host, port = endpoint(vmi, guest_ip, int(check["tcp"]))
    with socket.create_connection((host, port), timeout=timeout):
        return f"connected to {host}:{port}"


def _http(check: dict, vmi: dict, guest_ip: str | None, timeout: float = ATTEMPT_SECONDS) -> str:
    url = urlparse(check["http"].replace("{ip}", guest_ip or "guest-ip-unknown"))
    host, port = endpoint(vmi, guest_ip, url.port or (443 if url.scheme == "https" else 80))
    target = url._replace(netloc=f"{host}:{port}").geturl()
    want = int(check.get("status", 200))
    try:
        with urllib.request.urlopen(target, timeout=timeout) as response:
            got = response.status
    except urllib.error.HTTPError as exc:
        got = exc.code
    if got != want:
        raise OSError(f"answered {got}, expected {want}")
    return f"{target} answered {got}"


def _agent(check: dict, vmi: dict, guest_ip: str | None, timeout: float = ATTEMPT_SECONDS) -> str:
    reported = (vmi.get("status") or {}).get("guestOSInfo") or {}
    for key, pattern in check.get("expect", {}).items():
        if not re.search(pattern, str(reported.get(key, ""))):
            raise OSError(f"the agent reports {key}={reported.get(key, '')!r}, expected /{pattern}/")
    return f"agent reports {reported.get('prettyName') or reported.get('id', '')}"


KINDS = {"tcp": _tcp, "http": _http, "agent": _agent}


@step("smoke-test")
def smoke(job: Job, agent: dict) -> dict:
    """Each check is tried until it passes or its ``timeout`` (default 60 s) runs out: services start after the agent."""
    if not job.checks:
        return {"status": "skipped", "checks": []}
    maps = load_maps(job.maps)
    cluster = Cluster(job.kubeconfig)
    guest_ip = next((i["ip"] for i in agent.get("interfaces", []) if i.get("ip")), None)
    results = []
    for check in job.checks:
        kind = next(k for k in KINDS if k in check)
        deadline = time.monotonic() + float(check.get("timeout", CHECK_SECONDS))
        while True:
            vmi = cluster.get("kubevirt.io/v1", "VirtualMachineInstance", maps.namespace, k8s_name(job.vm.name)) or {}
            left = deadline - time.monotonic()
            try:
                results.append({"check": describe(check), "ok": True,
                                "detail": KINDS[kind](check, vmi, guest_ip, max(0.5, min(ATTEMPT_SECONDS, left)))})
                break
            except OSError as exc:
                if left <= 0:
                    raise StepFailed(f"smoke check {describe(check)} on {job.vm.name} failed ({exc})",
                                     "check the service in the guest and the VLAN/NAD of its NIC",
                                     "smoke-check-failed") from None
                time.sleep(min(RETRY_SECONDS, max(left, 0)))  # nothing to watch: a port opens when it opens
    return {"checks": results}
