"""ResourceQuota as the API server and its quota controller keep it: ``status.used`` is what the namespace
holds, and a PersistentVolumeClaim or Pod that would take a namespace past its ``hard`` limits is refused (403).

The lab runs no virt-launcher pods, so each running VirtualMachineInstance counts as the pod KubeVirt would
start for it: one pod, its memory request (or guest memory) and its CPU request (or a tenth of a core per vCPU,
KubeVirt's default ``cpuAllocationRatio`` of 10).
"""

from __future__ import annotations

from typing import Any

from vmwave_lab.kube.quantity import cpu, parse_quantity
from vmwave_lab.kube.resources import BY_PATH, Resource
from vmwave_lab.kube.store import Store

R = {name: r for (_, _, name), r in BY_PATH.items()}
TRACKED = ("requests.storage", "persistentvolumeclaims", "pods", "requests.cpu", "requests.memory")


class Exceeded(Exception):
    """A creation the namespace's quota does not allow; the message is the API server's."""


def _pod_use(pod: dict) -> dict[str, float]:
    requests = [
        ((c.get("resources") or {}).get("requests") or {}) for c in (pod.get("spec") or {}).get("containers") or []
    ]
    return {
        "pods": 1,
        "requests.cpu": sum(cpu(r.get("cpu", 0)) for r in requests),
        "requests.memory": sum(parse_quantity(r.get("memory", 0)) for r in requests),
    }


def _vmi_use(vmi: dict) -> dict[str, float]:
    domain = (vmi.get("spec") or {}).get("domain") or {}
    requests = (domain.get("resources") or {}).get("requests") or {}
    c = domain.get("cpu") or {}
    vcpus = (c.get("cores") or 1) * (c.get("sockets") or 1) * (c.get("threads") or 1)
    memory = requests.get("memory") or (domain.get("memory") or {}).get("guest") or "0"
    return {
        "pods": 1,
        "requests.cpu": cpu(requests["cpu"]) if "cpu" in requests else vcpus / 10,
        "requests.memory": parse_quantity(memory),
    }


def _claim_use(pvc: dict) -> dict[str, float]:
    storage = (((pvc.get("spec") or {}).get("resources") or {}).get("requests") or {}).get("storage", 0)
    return {"persistentvolumeclaims": 1, "requests.storage": parse_quantity(storage)}


def usage(store: Store, ns: str) -> dict[str, float]:
    """What the namespace holds, per tracked resource."""
    used = dict.fromkeys(TRACKED, 0.0)
    found = [_claim_use(p) for p in store.list(R["persistentvolumeclaims"], ns)]
    found += [
        _pod_use(p)
        for p in store.list(R["pods"], ns)
        if (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
    ]
    found += [
        _vmi_use(v)
        for v in store.list(R["virtualmachineinstances"], ns)
        if (v.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
    ]
    for use in found:
        for key, value in use.items():
            used[key] += value
    return used


def _text(key: str, value: float) -> str:
    if key == "requests.cpu":
        return f"{round(value * 1000)}m"
    return str(int(value))


def _amount(key: str, text: Any) -> float:
    return cpu(text) if key == "requests.cpu" else float(parse_quantity(text))


def with_status(store: Store, quota: dict) -> dict:
    """The quota with ``status`` as its controller keeps it: ``hard`` and what is ``used`` of each."""
    hard = (quota.get("spec") or {}).get("hard") or {}
    used = usage(store, quota["metadata"]["namespace"])
    return {**quota, "status": {"hard": dict(hard), "used": {k: _text(k, used[k]) for k in hard if k in used}}}


def admit(store: Store, r: Resource, ns: str, obj: dict) -> None:
    """Refuse ``obj`` as quota admission does when it would take a quota of ``ns`` past a hard limit."""
    if r.kind not in ("PersistentVolumeClaim", "Pod"):
        return
    wanted = _claim_use(obj) if r.kind == "PersistentVolumeClaim" else _pod_use(obj)
    used = None
    for quota in store.list(R["resourcequotas"], ns):
        hard = (quota.get("spec") or {}).get("hard") or {}
        for key, value in wanted.items():
            if key in hard:
                used = used or usage(store, ns)
                if used[key] + value > _amount(key, hard[key]):
                    raise Exceeded(
                        f'{r.plural} "{obj["metadata"]["name"]}" is forbidden: exceeded quota: '
                        f"{quota['metadata']['name']}, requested: {key}={_text(key, value)}, "
                        f"used: {key}={_text(key, used[key])}, limited: {key}={hard[key]}"
                    )
