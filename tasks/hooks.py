"""The hook steps: the plan's pre-cutover and post-boot Jobs, run to completion, their result and log in the ledger."""

from __future__ import annotations

from vmwave.domain.hooks import hook_job
from vmwave.domain.steps import POST_BOOT_HOOK, PRE_CUTOVER_HOOK
from vmwave.errors import TimedOut
from vmwave_tasks.job import Job, StepFailed
from vmwave_tasks.step import step

LOG_LINES = 8  # what the ledger and the error keep of a hook's output


def _finished(job: dict | None) -> bool:
    conditions = ((job or {}).get("status") or {}).get("conditions") or []
    return any(c["type"] in ("Complete", "Failed") and c["status"] == "True" for c in conditions)


def run_hook(job: Job, kind: str) -> dict:
    """Run the hook's Job (once: a hook may not be safe to repeat) and wait for it; a failure fails the step."""
    cluster, namespace = job.clients.cluster, job.maps.namespace
    manifest = hook_job(job.vm, job.target, job.wave, namespace, kind, job.hooks[kind])
    name = manifest["metadata"]["name"]
    if cluster.get("batch/v1", "Job", namespace, name) is None:
        cluster.apply(job.objects.namespace)  # a pre-cutover hook runs before anything else made it
        cluster.apply_owned(manifest, job.run)
    try:
        done = job.wait_for(
            "batch/v1", "Job", name, _finished, manifest["spec"]["activeDeadlineSeconds"] + 60, "finished"
        )
    except TimedOut:
        raise StepFailed("hook-failed", f"the {kind} hook Job {name} did not finish in its deadline") from None
    pods = cluster.find("v1", "Pod", namespace, {"job-name": name})
    log = cluster.pod_log(namespace, pods[-1]["metadata"]["name"], LOG_LINES) if pods else ""
    lines = log.splitlines()[-LOG_LINES:]
    if not (done.get("status") or {}).get("succeeded"):
        raise StepFailed("hook-failed", f"the {kind} hook Job {name} failed: " + (" | ".join(lines) or "no output"))
    return {"job": name, "image": manifest["spec"]["template"]["spec"]["containers"][0]["image"], "log": lines}


@step(PRE_CUTOVER_HOOK)
def pre_cutover_hook(job: Job) -> dict:
    return run_hook(job, "pre_cutover")


@step(POST_BOOT_HOOK)
def post_boot_hook(job: Job) -> dict:
    return run_hook(job, "post_boot")
