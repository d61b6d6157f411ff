"""Step 7: smoke checks against the migrated guest, from the plan and the guest-OS plugins.

Checks (see ``vmwave.domain.smoke``): ``tcp`` (a port accepts a connection),
``http`` (a URL answers with the expected status; ``{ip}`` is the guest's
address) and ``agent`` (what the guest agent reports, e.g. its OS, matches), each
retried until its ``timeout``. The network probes and how the guest is reached
are the adapter's (``vmwave.adapters.probes``).
"""

from __future__ import annotations

import time
from urllib.parse import urlparse

from vmwave.adapters import probes
from vmwave.domain.patterns import search
from vmwave.domain.smoke import describe
from vmwave.domain.steps import SMOKE_TEST
from vmwave_tasks.job import Job, StepFailed
from vmwave_tasks.step import step

CHECK_SECONDS = 60  # how long a check may take to pass, unless it says otherwise
ATTEMPT_SECONDS = 5
RETRY_SECONDS = 2


def _reach(vmi: dict, guest_ip: str | None, port: int) -> tuple[str, int]:
    found = probes.endpoint(vmi, guest_ip, port)
    if found is None:
        raise StepFailed("no-guest-ip", f"no address to check port {port} on: the guest agent reported no IP")
    return found


def _tcp(check: dict, vmi: dict, guest_ip: str | None, timeout: float) -> str:
    return probes.tcp(*_reach(vmi, guest_ip, int(check["tcp"])), timeout)


def _http(check: dict, vmi: dict, guest_ip: str | None, timeout: float) -> str:
    url = check["http"].replace("{ip}", guest_ip or "guest-ip-unknown")
    parsed = urlparse(url)
    host, port = _reach(vmi, guest_ip, parsed.port or (443 if parsed.scheme == "https" else 80))
    target, got = probes.http_status(url, host, port, timeout)
    want = int(check.get("status", 200))
    if got != want:
        raise probes.Unreachable(f"{target} answered {got}, expected {want}")
    return f"{target} answered {got}"


def _agent(check: dict, vmi: dict, guest_ip: str | None, timeout: float) -> str:
    reported = (vmi.get("status") or {}).get("guestOSInfo") or {}
    for key, pattern in check.get("expect", {}).items():
        if not search(pattern, str(reported.get(key, ""))[:4096]):
            raise probes.Unreachable(f"the agent reports {key}={reported.get(key, '')!r}, expected /{pattern}/")
    return f"agent reports {reported.get('prettyName') or reported.get('id', '')}"


KINDS = {"tcp": _tcp, "http": _http, "agent": _agent}


@step(SMOKE_TEST)
def smoke(job: Job, agent: dict) -> dict:
    """Each check is tried until it passes or its ``timeout`` (default 60 s) runs out: services start after the
    agent."""
    if not job.checks:
        return {"status": "skipped", "checks": []}
    cluster = job.clients.cluster
    guest_ip = next((i["ip"] for i in agent.get("interfaces", []) if i.get("ip")), None)
    results = []
    for check in job.checks:
        kind = next(k for k in KINDS if k in check)
        deadline = time.monotonic() + float(check.get("timeout", CHECK_SECONDS))
        while True:
            vmi = cluster.get("kubevirt.io/v1", "VirtualMachineInstance", job.maps.namespace, job.target) or {}
            left = deadline - time.monotonic()
            try:
                results.append(
                    {
                        "check": describe(check),
                        "ok": True,
                        "detail": KINDS[kind](check, vmi, guest_ip, max(0.5, min(ATTEMPT_SECONDS, left))),
                    }
                )
                break
            except probes.Unreachable as exc:
                if left <= 0:
                    raise StepFailed(
                        "smoke-check-failed", f"smoke check {describe(check)} on {job.vm.name} failed ({exc})"
                    ) from None
                time.sleep(min(RETRY_SECONDS, max(left, 0)))  # nothing to watch: a port opens when it opens
    return {"checks": results}
