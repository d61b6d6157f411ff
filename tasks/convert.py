"""Step 3: the guest converted in place, in the cluster, on its imported volumes.

A disk-only copy (``copy``) has nothing to convert. For ``virt-v2v`` a
conversion Pod runs ``virt-v2v-in-place`` from the conversion image with the
VM's PVCs attached and what the guest-OS plugin decided (options,
``VIRTIO_WIN``); the worker runs no converter and holds no disk. The pod's
log is kept in the work directory (a few KiB); a failure ends the step with
its last lines. The pod is removed once it succeeded, so the VM can attach
its volumes on any node.
"""

from __future__ import annotations

import time
from dataclasses import replace

from vmwave.domain.conversion_pod import conversion_objects
from vmwave.domain.static_ips import static_ips
from vmwave.domain.steps import CONVERT
from vmwave_tasks.job import Job, StepFailed
from vmwave_tasks.step import step
from vmwave_tasks.undo import work_folder

PULL_FAILURES = ("ErrImagePull", "ImagePullBackOff", "InvalidImageName")
LAST_LINES = 8


def _phase(pod: dict | None) -> str:
    return ((pod or {}).get("status") or {}).get("phase", "")


def _waiting(pod: dict | None) -> dict:
    statuses = ((pod or {}).get("status") or {}).get("containerStatuses") or [{}]
    return (statuses[0].get("state") or {}).get("waiting") or {}


def _exit_code(pod: dict) -> int | None:
    statuses = (pod.get("status") or {}).get("containerStatuses") or [{}]
    return ((statuses[0].get("state") or {}).get("terminated") or {}).get("exitCode")


class PodProgress:
    """The conversion pod's phase in the ledger while it runs."""

    def __init__(self, job: Job):
        self.job, self.phase, self.started = job, "", time.monotonic()

    def __call__(self, pod: dict | None) -> str:
        phase = _phase(pod)
        if phase != self.phase:
            self.phase = phase
            self.job.clients.steps.mark(
                self.job.wave,
                self.job.vm.key,
                CONVERT,
                detail={
                    "pod": (pod or {}).get("metadata", {}).get("name", ""),
                    "phase": phase,
                    "after_seconds": round(time.monotonic() - self.started, 1),
                },
            )
        return phase


@step(CONVERT)
def convert(job: Job) -> dict:
    if job.mode == "rebuild":  # P2: the VM is rebuilt from a template image; there is no guest to convert
        return {"status": "skipped", "tool": "none", "reason": "rebuilt from the template image the maps name"}
    how = job.conversion
    if how.tool == "copy":
        return {
            "status": "skipped",
            "tool": "copy",
            "why": how.why,
            "reason": "a disk-only copy: the guest is kept as it is",
        }
    settings, cluster, namespace = job.settings, job.clients.cluster, job.maps.namespace
    env = dict(how.env)
    if settings.v2v_accel == "tcg":
        env["LIBGUESTFS_BACKEND_SETTINGS"] = "force_tcg"
    own = replace(job.vm, disks=tuple(d for d in job.vm.disks if d.sharing != "multiwriter"))  # never a shared one
    config_map, pod = conversion_objects(
        own,
        job.target,
        job.wave,
        job.maps,
        settings.conversion_image,
        how.options,
        env,
        job.own_volumes,
        how.scripts,
        how.data,
        job.entry.conversion_pods or job.maps.conversion_pods,
    )
    name = pod["metadata"]["name"]
    earlier = cluster.get("v1", "Pod", namespace, name)
    if job.owns(earlier) and _phase(earlier) in ("Failed", "Succeeded"):  # an earlier attempt's pod
        cluster.delete("v1", "Pod", namespace, name)
        cluster.wait_for("v1", "Pod", namespace, name, lambda o: o is None, 60, "deleted")
    in_use = cluster.volume_users(namespace, job.own_volumes, name)
    if in_use:
        raise StepFailed(
            "volume-in-use", f"{job.vm.name}: its volumes are in use by {', '.join(in_use)}; nothing was converted"
        )
    cluster.apply_owned(config_map, job.run)
    started, seen = time.monotonic(), PodProgress(job)
    made = cluster.apply_owned(pod, job.run)
    done = job.wait_for(
        "v1",
        "Pod",
        name,
        lambda o: seen(o) in ("Succeeded", "Failed") or _waiting(o).get("reason") in PULL_FAILURES,
        settings.timeouts.convert,
        "finished",
        since=made,
    )
    waiting = _waiting(done)
    if waiting.get("reason") in PULL_FAILURES:
        raise StepFailed(
            "conversion-not-ready",
            f"the conversion image {settings.conversion_image} cannot be pulled: "
            f"{waiting.get('message') or waiting['reason']}",
            "set VMWAVE_CONVERSION_IMAGE to an image the cluster can pull (Forklift's virt-v2v image)",
        )
    log = work_folder(job) / "virt-v2v.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    text = cluster.pod_log(namespace, name)
    log.write_text(text)
    code = _exit_code(done)
    if _phase(done) == "Failed":
        last = " | ".join(line.strip() for line in text.strip().splitlines()[-LAST_LINES:] if line.strip())
        raise StepFailed(
            "conversion-failed", f"the conversion pod {namespace}/{name} exited {code}: {last} (whole log: {log})"
        )
    for api_version, kind, obj in (("v1", "Pod", pod), ("v1", "ConfigMap", config_map)):
        cluster.delete(api_version, kind, namespace, obj["metadata"]["name"])
    return {
        "tool": how.tool,
        "why": how.why,
        "pod": name,
        "image": settings.conversion_image,
        "exit_code": code,
        "static_ips": [ip.option() for ip in static_ips(job.vm)],
        "scripts": list(how.scripts),
        "log": str(log),
        "seconds": round(time.monotonic() - started, 3),
    }
