"""Tasks around a wave: refuse a plan that cannot run, build each VM's job, share limits, report."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from prefect import get_client, task
from prefect.artifacts import create_markdown_artifact, create_progress_artifact, create_table_artifact, \
    update_progress_artifact
from prefect.cache_policies import NONE

from vmwave.adapters.ledger import Ledger
from vmwave.domain.concerns import Concern
from vmwave.domain.plan import parse_plan
from vmwave.domain.records import SourceVM
from vmwave.errors import VmwaveError
from vmwave.files import read_yaml, write_text_atomic
from vmwave.planning import load_maps, load_policy
from vmwave.plugins import conversion, smoke_checks
from vmwave.wave_objects import find_wave
from vmwave_tasks.job import TIMEOUTS, Job

# The seed's common failures: cause -> the fix a person applies.
FIXES = {
    "guest-agent-not-connected": "install and start qemu-guest-agent in the guest (Windows: VirtIO ISO), then rerun",
    "nad-missing": "create the NetworkAttachmentDefinition or add `create:` to its network map entry",
    "vmi-not-running": "see the VM's conditions: a missing volume or NAD, or no node with room (hugepages, CPU)",
    "cdi-import-failed": "see the DataVolume's events; the transfer server must be reachable from the cluster",
    "conversion-failed": "consolidate snapshots and check the work directory's free space",
    "smoke-check-failed": "check the service in the guest and its NIC's VLAN/NAD",
}


@task(name="prepare-wave", cache_policy=NONE, persist_result=False)
def prepare_wave(plan_file: str, wave: str, records: list[SourceVM], settings: dict[str, Any]) -> list[Job]:
    """Everything is checked before anything changes: the VMs exist, their disks and NICs are mapped."""
    from vmwave.domain.manifests import datavolume, virtual_machine

    doc = parse_plan(read_yaml(plan_file, "plan"), plan_file)
    entry = find_wave(doc, wave)
    check_window(entry, datetime.now(timezone.utc), settings.get("ignore_window", False))
    maps, policy = load_maps(settings["maps"]), load_policy(settings.get("rules"))
    by_moref = {r.moref: r for r in records}
    unknown = [vm["name"] for vm in entry["vms"] if vm["moref"] not in by_moref]
    if unknown:
        raise VmwaveError(f"wave {entry['id']} names VMs vCenter does not have: {', '.join(unknown[:5])}",
                          "re-plan with `vmwave plan`: they were removed or re-registered")
    jobs = []
    for vm_entry in entry["vms"]:
        vm = by_moref[vm_entry["moref"]]
        concerns = [Concern(c["id"], c["severity"], c.get("message", ""), "") for c in vm_entry["concerns"]]
        profile = policy.profile(vm, concerns, vm_entry["class"])
        virtual_machine(vm, maps, entry["id"], profile)  # raises on unmapped NICs or KubeVirt prerequisites
        for index in range(len(vm.disks)):
            datavolume(vm, index, maps, entry["id"], {"blank": {}})  # raises on unmapped datastores
        conversion(vm)  # raises when the guest's plugin cannot convert it (e.g. no VirtIO drivers for Windows)
        jobs.append(Job(wave=entry["id"], mode=entry["mode"], vm=vm, vcenter=settings["vcenter"],
                        kubeconfig=settings["kubeconfig"], maps=settings["maps"], workdir=settings["workdir"],
                        transfer=settings["transfer"], ledger=settings.get("ledger"), profile=profile,
                        v2v_input=settings.get("v2v_input", "disk"), vddk_libdir=settings.get("vddk_libdir", ""),
                        checks=tuple(vm_entry["smoke"]) + tuple(smoke_checks(vm)),
                        keep_for_debug=vm_entry["keep_for_debug"], cls=vm_entry["class"], timeouts=settings.get("timeouts", dict(TIMEOUTS))))
    return jobs


def check_window(entry: dict[str, Any], now: datetime, ignore: bool) -> None:
    """A planned-window (P4) wave runs only inside its maintenance window; other waves whenever they are started."""
    window = entry.get("window")
    if ignore or (entry["mode"] != "planned-window" and not window):
        return
    if not window:
        raise VmwaveError(f"wave {entry['id']} is {entry['mode']} but has no maintenance window",
                          "add `schedule:` to the rules file and re-plan, or start it with --ignore-window")
    start, end = datetime.fromisoformat(window["start"]), datetime.fromisoformat(window["end"])
    if not start <= now < end:
        raise VmwaveError(f"wave {entry['id']} may only run in its window {window['start']} - {window['end']} "
                          f"(now {now.isoformat(timespec='seconds')})",
                          "start it inside the window (schedule its deployment there), or use --ignore-window")


@task(name="share-limits", cache_policy=NONE, persist_result=False)
def share_limits(jobs: list[Job], per_host: int, per_datastore: int) -> dict[str, list[str]]:
    """Global concurrency limits per ESXi host and datastore, so several workers respect the same caps."""
    names = {job.vm.moref: [f"vmwave-host-{job.vm.host}"] + sorted({f"vmwave-datastore-{d.datastore}" for d in job.vm.disks})
             for job in jobs}
    with get_client(sync_client=True) as client:
        for name in sorted({n for wanted in names.values() for n in wanted}):
            client.upsert_global_concurrency_limit_by_name(name, per_host if "-host-" in name else per_datastore)
    return names


@task(name="wave-progress", cache_policy=NONE, persist_result=False)
def start_progress(wave: str) -> Any:
    return create_progress_artifact(0.0, key=f"wave-{wave}-progress".lower(), description=f"wave {wave}: VMs finished")


def progress(artifact_id: Any, done: int, total: int) -> None:
    update_progress_artifact(artifact_id, 100.0 * done / max(total, 1))


@task(name="wave-report", cache_policy=NONE, persist_result=False)
def wave_report(jobs: list[Job], outcomes: dict[str, str], ledger_url: str | None, out_dir: str) -> dict[str, Any]:
    """Per VM: class, result, seconds per step, failure cause and the fix; a table artifact and a Markdown file."""
    ledger = Ledger(ledger_url)
    steps = {e["moref"]: e["steps"] for e in ledger.by_vm(jobs[0].wave if jobs else None)}
    rows = []
    for job in jobs:
        vm_steps = steps.get(job.vm.moref, [])
        failed = next((s for s in vm_steps if s["status"] == "failed"), None)
        rows.append({"vm": job.vm.name, "class": job.cls, "result": outcomes.get(job.vm.moref, "not run"),
                     "steps": ", ".join(f"{s['step']} {s['seconds'] or 0:.1f}s" for s in vm_steps if s["step"] != "rollback"),
                     "cause": failed["cause"] if failed else "",
                     "fix": FIXES.get(failed["cause"], failed["error"][:120]) if failed else ""})
    ok = sum(r["result"] == "succeeded" for r in rows)
    wave = jobs[0].wave if jobs else "?"
    create_table_artifact(rows, key=f"wave-{wave}-report".lower(), description=f"wave {wave}: {ok}/{len(rows)} succeeded")
    lines = [f"# Wave {wave}", "", f"{ok} of {len(rows)} VMs succeeded ({datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC).", "",
             "| VM | class | result | steps | cause | fix |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['vm']} | {r['class']} | {r['result']} | {r['steps']} | {r['cause']} | {r['fix']} |" for r in rows]
    path = Path(out_dir) / f"wave-{wave}-report.md"
    write_text_atomic(path, "\n".join(lines) + "\n")
    create_markdown_artifact("\n".join(lines), key=f"wave-{wave}-summary".lower())
    return {"wave": wave, "succeeded": ok, "total": len(rows), "rows": rows, "report": str(path),
            "finished": time.time()}
