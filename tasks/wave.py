"""Tasks around a wave: refuse a wave that cannot run, build each VM's job, share limits, report.

Everything a wave needs is checked before anything changes: the plan, the
window, the VMs in vCenter, the objects each VM becomes (the one builder) and
what each conversion needs. A rollback checks none of that: it needs only the
plan's VM identities and what the ledger says was done.
"""

from __future__ import annotations

import base64
from dataclasses import replace
import time
from datetime import datetime, timezone
from typing import Any

from prefect import task
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.cache_policies import NONE

from vmwave.adapters.prefect_api.slots import set_limits
from vmwave.adapters.files import inside, load_maps, load_plan, write_text_atomic
from vmwave.adapters.vsphere import connect, inventory, source_access, vcenter_id
from vmwave.adapters.vsphere_fence import folder
from vmwave.adapters.vsphere_ops import disk_holders
from vmwave.domain.build import credentials_name, vm_objects
from vmwave.domain.diagnosis import cause
from vmwave.domain.manifests import ANNOTATION_MIGRATED, same_source
from vmwave.domain.names import limit_name, markdown_cell
from vmwave.domain.plan import check_window, find_wave
from vmwave.domain.plan_file import WavePlan
from vmwave.domain.preflight import Problem
from vmwave.domain.preferences import CLUSTER_PREFERENCE, PREFERENCE_API
from vmwave.domain.records import SourceVM
from vmwave.domain.steps import FENCED_ATTRIBUTE, GUEST_AGENT, PRECOPY, ROLLBACK, SNAPSHOT, outcome
from vmwave.domain.timeline import timeline_svg
from vmwave.errors import VmwaveError
from vmwave.plugins import conversion, customizer, smoke_checks
from vmwave.settings import Settings
from vmwave_tasks.dispatch import ELSEWHERE
from vmwave_tasks.clients import Clients, open_clients
from vmwave_tasks.job import Choices, Job, Wave
from vmwave_tasks.preflight import NodeRoom, node_room, preflight
from vmwave_tasks.retry import to_retry


def planned_wave(plan_file: str, wave: str | int, settings: Settings, ignore_window: bool = False) -> WavePlan:
    """The wave as the plan has it; refused outside its window unless told otherwise."""
    wave_plan = find_wave(load_plan(plan_file, settings.max_file_bytes), wave)
    check_window(wave_plan, datetime.now(timezone.utc), ignore_window)
    return wave_plan


@task(name="prepare-wave", cache_policy=NONE, persist_result=False)
def prepare_wave(
    wave_plan: WavePlan,
    records: list[SourceVM],
    settings: Settings,
    clients: Clients,
    choices: Choices = Choices(),
) -> Wave:
    """The wave with each VM's job from what vCenter says of its VMs (``records``); or, before anything changes,
    every reason the wave cannot run (``checked_jobs``, the preflight's). A retry (``choices.retry``: the VMs named,
    or () for every one that failed) runs only the failed VMs (``vmwave_tasks.retry``).

    A wave that can run is told to the ledger with its VMs, so the metrics count those not started as pending.
    """
    jobs, problems = checked_jobs(wave_plan, records, settings, clients, choices)
    if problems:
        raise VmwaveError(
            f"wave {wave_plan.id} cannot start; nothing was changed: " + "; ".join(str(p) for p in problems),
            "fix what is named, then run the wave again "
            "(`vmwave preflight` checks a plan's waves without running them)",
        )
    adopt_earlier_records(jobs)
    maps = jobs[0].maps  # a wave has a VM, and a VM that could not be built is a problem
    if choices.retry is not None:
        jobs = to_retry(jobs, list(choices.retry))
    for job in jobs:
        if job.vm.name in choices.redo:  # what the ledger recorded of it is forgotten: it is migrated again
            clients.steps.forget(wave_plan.id, job.vm.key)
    clients.steps.begin_wave(wave_plan.id, wave_plan.cls, wave_plan.mode, {j.vm.key: j.cls for j in jobs})
    return Wave(wave_plan, tuple(jobs), settings, maps, clients)


def wave_jobs(
    wave_plan: WavePlan,
    records: list[SourceVM],
    settings: Settings,
    clients: Clients,
    choices: Choices = Choices(),
) -> tuple[list[Job], list[Problem]]:
    """Each VM's job as the plan, the maps and the plugins make it, with the run's clients; and the VMs that cannot
    be made. The one builder of jobs: a run's, a preflight's and a test's."""
    maps = load_maps(settings.need_maps(), settings.max_file_bytes)
    by_moref = {r.moref: r for r in records}
    wave = wave_plan.id
    unknown = [vm.name for vm in wave_plan.vms if vm.moref not in by_moref]
    if unknown:
        return [], [
            Problem(
                wave,
                "",
                f"wave {wave} names VMs vCenter does not have: {', '.join(unknown[:5])}",
                "re-plan with `vmwave plan`: they were removed or re-registered",
            )
        ]
    copied = any(vm.mode != "rebuild" for vm in wave_plan.vms)
    access = source_access(settings) if copied else None
    jobs, problems = [], []
    for entry in wave_plan.vms:
        vm = replace(by_moref[entry.moref], name=entry.name)  # as the plan knows it: fencing renames the source
        try:
            objects = vm_objects(vm, entry, wave, maps, access, customizer(settings))
        except VmwaveError as exc:
            problems.append(Problem(wave, "", exc.what, exc.fix))
            continue
        how = None if entry.mode == "rebuild" else conversion(vm, settings, entry.convert)
        if how is not None and how.needs:
            problems.append(Problem(wave, "", f"{vm.name} ({how.tool}) needs {how.needs}"))
        jobs.append(
            Job(
                wave,
                vm,
                entry,
                settings,
                maps,
                clients,
                objects=objects,
                conversion=how,
                checks=tuple(entry.smoke) + tuple(smoke_checks(vm, settings.disable_plugins)),
                keep_for_debug=choices.keep_for_debug or bool(entry.keep_for_debug),
                cutover_now=choices.ignore_window,
            )
        )
    return sharing(jobs, datetime.now(timezone.utc)), problems


def checked_jobs(
    wave_plan: WavePlan,
    records: list[SourceVM],
    settings: Settings,
    clients: Clients,
    choices: Choices = Choices(),
    room: NodeRoom | None = None,
) -> tuple[list[Job], list[Problem]]:
    """Each VM's job, and every problem of the wave, reading vCenter and the cluster but changing neither: what
    the plan, the maps and the plugins say, then the preflight's questions to the cluster and vCenter."""
    jobs, problems = wave_jobs(wave_plan, records, settings, clients, choices)
    wave = wave_plan.id
    jobs = migrated_before(jobs)
    redo = set(choices.redo)
    told = [f"{name}: there is no such VM in wave {wave}" for name in sorted(redo - {job.vm.name for job in jobs})]
    told += [
        f"{job.vm.name} is a verified migration ({job.migrated_before}): roll it back first to move it again"
        for job in jobs
        if job.vm.name in redo and job.migrated_before
    ]
    told += missing_preferences(jobs) + taken_names(jobs) + missing_folders(jobs, settings)
    told += sharers_elsewhere(jobs, settings)
    told += [
        f"{job.vm.name} shares a disk with {len(job.shares_with)} VM(s) of the wave, which move together: "
        f"run the wave with --in-flight {len(job.shares_with) + 1} or more"
        for job in jobs
        if len(job.shares_with) + 1 > settings.in_flight and not job.migrated_before
    ][:1]
    problems += [Problem(wave, "", text) for text in told]
    return jobs, problems + preflight(wave, jobs, settings, room)


def check_plan(plan_file: str, waves: list[str], settings: Settings) -> list[tuple[WavePlan, int, list[Problem]]]:
    """`vmwave preflight`: each chosen wave (all when none is named) with its VMs to move and its problems, in
    plan order; the nodes' room carries from one wave to the next, as their VMs will still run."""
    plan = load_plan(plan_file, settings.max_file_bytes)
    chosen = [find_wave(plan, wave) for wave in waves] if waves else list(plan.waves)
    records = inventory(settings.need_vcenter(), only=[vm.moref for w in chosen for vm in w.vms])
    found = []
    with open_clients(settings) as clients:
        room = node_room(clients.cluster)
        for wave_plan in sorted(chosen, key=plan.waves.index):
            jobs, problems = checked_jobs(wave_plan, records, settings, clients, room=room)
            found.append((wave_plan, len([job for job in jobs if not job.migrated_before]), problems))
    return found


def sharing(jobs: list[Job], since: datetime) -> list[Job]:
    """Each job with the wave's other VMs that share one of its disks (``vmwave_tasks.shared``), and when this run
    prepared it."""
    by_file: dict[str, list[Job]] = {}
    for job in jobs:
        for disk in job.vm.shared_disks:
            by_file.setdefault(disk.file, []).append(job)
    return [
        replace(
            job,
            since=since,
            shares_with=tuple(
                sorted(
                    {
                        (other.vm.key, other.vm.name)
                        for d in job.vm.shared_disks
                        for other in by_file[d.file]
                        if other is not job
                    }
                )
            ),
        )
        for job in jobs
    ]


def adopt_earlier_records(jobs: list[Job]) -> None:
    """A ledger of an earlier vmwave knew VMs by moref alone: the first vCenter that runs with it keeps what it
    recorded (``Ledger.adopt``)."""
    if jobs:
        jobs[0].clients.steps.adopt(jobs[0].vm.vcenter, {j.vm.moref: (j.vm.key, j.vm.instance_uuid) for j in jobs})


def migrated_before(jobs: list[Job]) -> list[Job]:
    """Each job, marked when its source is fenced (``vmwave.migrated`` in vCenter) or its VirtualMachine exists for
    the same source and says a run verified it: whatever this run's plan, ledger or wave, that migration is done
    and is not touched."""
    marked = []
    for job in jobs:
        meta = job.objects.virtual_machine["metadata"]
        there = job.clients.cluster.get("kubevirt.io/v1", "VirtualMachine", meta["namespace"], meta["name"])
        marker = (((there or {}).get("metadata") or {}).get("annotations") or {}).get(ANNOTATION_MIGRATED, "")
        if marker and same_source(there, job.vm):
            job = replace(job, migrated_before=f"wave {marker}")
        elif fenced := job.vm.attributes.get(FENCED_ATTRIBUTE, ""):
            job = replace(job, migrated_before=f"its source is fenced, migrated to {fenced}")
        marked.append(job)
    return marked


def sharers_elsewhere(jobs: list[Job], settings: Settings) -> list[str]:
    """VMs outside the wave that share a disk with one of its VMs: cutting one over while another still writes the
    disk in vSphere would split it in two."""
    sharing = [job for job in jobs if job.vm.shared_disks and not job.migrated_before]
    if not sharing:
        return []
    here = {job.vm.moref for job in jobs}
    with connect(settings.need_vcenter()) as si:
        holders = disk_holders(
            si, [job.vm.moref for job in sharing], {d.file for job in sharing for d in job.vm.shared_disks}
        )
    return [
        f"{file} is shared with VM(s) {', '.join(sorted(found - here))} outside wave {jobs[0].wave}: plan them "
        f"into one group (one wave), they move together"
        for file, found in sorted(holders.items())
        if found - here
    ]


def missing_folders(jobs: list[Job], settings: Settings) -> list[str]:
    """The folders the plan fences sources into that vCenter lacks: found out before a VM moves, not after."""
    wanted = {
        job.entry.fencing.folder: job.vm.moref
        for job in jobs
        if job.entry.fencing.enabled and job.entry.fencing.folder and not job.migrated_before
    }
    if not wanted:
        return []
    problems = []
    with connect(settings.need_vcenter()) as si:
        for path, moref in sorted(wanted.items()):
            try:
                folder(si, moref, path)
            except VmwaveError as exc:
                problems.append(f"{exc.what}: {exc.fix}")
    return problems


def taken_names(jobs: list[Job]) -> list[str]:
    """Target names another VirtualMachine already has: applying over it would change a VM that is not this one's."""
    taken = []
    for job in jobs:
        meta = job.objects.virtual_machine["metadata"]
        there = job.clients.cluster.get("kubevirt.io/v1", "VirtualMachine", meta["namespace"], meta["name"])
        if there is not None and not same_source(there, job.vm):
            taken.append(
                f"{job.vm.name}: VirtualMachine {meta['namespace']}/{meta['name']} already exists and is "
                f"not this VM's; set another `target_name:` in the plan"
            )
    return taken


def missing_preferences(jobs: list[Job]) -> list[str]:
    """The preferences the wave's VMs reference that the cluster lacks: a VM with one cannot start."""
    names = sorted(
        {(job.objects.virtual_machine["spec"].get("preference") or {}).get("name", "") for job in jobs} - {""}
    )
    if not names:
        return []
    cluster = jobs[0].clients.cluster
    try:
        missing = [name for name in names if cluster.get(PREFERENCE_API, CLUSTER_PREFERENCE, None, name) is None]
    except VmwaveError:  # the cluster does not serve the kind at all
        missing = names
    if not missing:
        return []
    return [
        f"the maps say the cluster has kubevirt/common-instancetypes (preferences: cluster) but it has no "
        f"{CLUSTER_PREFERENCE} {', '.join(missing)}: deploy them (KubeVirt 1.4 and later does by default) "
        f"or set `preferences: inline` in the maps"
    ]


@task(name="rollback-jobs", cache_policy=NONE, persist_result=False)
def rollback_jobs(
    plan_file: str,
    wave: str | int,
    settings: Settings,
    clients: Clients,
    keep_for_debug: bool = False,
    only: list[str] = (),
) -> Wave:
    """A job for each VM of the wave (or each of ``only``) that the ledger says was started: identities from the
    plan and the vCenter's id (the ledger knows a VM by both), nothing checked."""
    wave_plan = find_wave(load_plan(plan_file, settings.max_file_bytes), wave)
    unknown = sorted(set(only) - {vm.name for vm in wave_plan.vms})
    if unknown:
        raise VmwaveError(f"wave {wave_plan.id} has no VM {', '.join(unknown)}", "name VMs as the plan has them")
    maps = load_maps(settings.need_maps(), settings.max_file_bytes)
    center = vcenter_id(settings.need_vcenter())
    jobs = [
        Job(
            wave_plan.id,
            SourceVM(name=vm.name, moref=vm.moref, instance_uuid=vm.uuid, vcenter=center),
            vm,
            settings,
            maps,
            clients,
            keep_for_debug=keep_for_debug or bool(vm.keep_for_debug),
        )
        for vm in wave_plan.vms
        if not only or vm.name in only
    ]
    adopt_earlier_records(jobs)
    started = tuple(job for job in jobs if clients.steps.get(job.wave, job.vm.key, SNAPSHOT) is not None)
    return Wave(wave_plan, started, settings, maps, clients)


@task(name="share-limits", cache_policy=NONE, persist_result=False)
def share_limits(wave: Wave) -> tuple[dict[str, list[str]], dict[str, int]]:
    """Global concurrency limits per ESXi host and datastore, so several workers respect the same caps.

    Returns each VM's limit names (by moref) and each limit's cap.
    """
    names = {
        job.vm.key: [limit_name("host", job.vm.host)]
        + sorted({limit_name("datastore", d.datastore) for d in job.vm.disks})
        for job in wave.jobs
    }
    caps = {
        name: wave.per_host if name.startswith("vmwave-host-") else wave.settings.per_datastore
        for wanted in names.values()
        for name in wanted
    }
    set_limits(caps)
    return names, caps


@task(name="end-wave", cache_policy=NONE, persist_result=False)
def end_wave(wave: Wave) -> None:
    """The ledger notes when the wave's run ended (the metrics' end time)."""
    if wave.jobs:
        wave.clients.steps.end_wave(wave.id)


def remove_credentials(wave: Wave) -> bool:
    """The wave's vCenter credentials leave the cluster with the wave: once no worker runs any of its VMs."""
    if not wave.jobs or wave.clients.claims.claimed(wave.id):
        return False
    return wave.clients.cluster.delete("v1", "Secret", wave.maps.namespace, credentials_name(wave.id))


@task(name="wave-progress", cache_policy=NONE, persist_result=False)
def start_progress(wave: str) -> Any:
    return create_progress_artifact(0.0, key=f"wave-{wave}-progress".lower(), description=f"wave {wave}: VMs finished")


def progress(artifact_id: Any, done: int, total: int) -> None:
    update_progress_artifact(artifact_id, 100.0 * done / max(total, 1))


@task(name="wave-report", cache_policy=NONE, persist_result=False)
def wave_report(wave_run: Wave, outcomes: dict[str, str], out_dir: str) -> dict[str, Any]:
    """Per VM: class, result, seconds per step, failure cause and the fix; a table artifact and a Markdown file,
    both with the wave's timeline as a picture (an SVG beside the file, inline in the artifact)."""
    wave = wave_run.id
    entries = wave_run.clients.steps.by_vm(wave) if wave_run.jobs else []
    steps = {e["key"]: e["steps"] for e in entries}
    rows = []
    for job in wave_run.jobs:
        vm_steps = steps.get(job.vm.key, [])
        failed = next((s for s in vm_steps if s["status"] == "failed"), None)
        result = outcomes.get(job.vm.key, "not run")
        if result == ELSEWHERE:  # the ledger holds what the other worker did
            result = outcome(vm_steps).said + " on another worker"  # what the other worker's migrate_one said
        if job.note:
            result = f"{result} ({job.note})"
        rows.append(
            {
                "vm": job.vm.name,
                "class": job.cls,
                "result": result,
                "downtime": _downtime(job, vm_steps),
                "steps": ", ".join(f"{s['step']} {s['seconds'] or 0:.1f}s" for s in vm_steps if s["step"] != ROLLBACK),
                "cause": failed["cause"] if failed else "",
                "fix": _fix(failed) if failed else "",
                "preparation": "; ".join(job.entry.preparation),
            }
        )
    ok = sum(r["result"].startswith("succeeded") for r in rows)
    create_table_artifact(
        rows, key=f"wave-{wave}-report".lower(), description=f"wave {wave}: {ok}/{len(rows)} succeeded"
    )
    lines = [
        f"# Wave {wave}",
        "",
        f"{ok} of {len(rows)} VMs succeeded ({datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC).",
        "",
        "| VM | class | result | downtime | steps | cause | fix | preparation |",
        "|---|---|---|---|---|---|---|---|",
    ]
    columns = ("vm", "class", "result", "downtime", "steps", "cause", "fix", "preparation")
    lines += ["| " + " | ".join(markdown_cell(str(r[c])) for c in columns) + " |" for r in rows]
    picture = timeline_svg(entries, datetime.now(timezone.utc), f"wave {wave}: {ok} of {len(rows)} VMs succeeded")
    image = inside(out_dir, f"wave-{wave}-timeline.svg")
    write_text_atomic(image, picture)
    path = inside(out_dir, f"wave-{wave}-report.md")
    write_text_atomic(path, "\n".join([*lines, "", f"![timeline of wave {wave}]({image.name})"]) + "\n")
    inline = base64.b64encode(picture.encode()).decode()  # the artifact has no file beside it
    create_markdown_artifact(
        "\n".join([*lines, "", f"![timeline of wave {wave}](data:image/svg+xml;base64,{inline})"]),
        key=f"wave-{wave}-summary".lower(),
    )
    return {
        "wave": wave,
        "succeeded": ok,
        "total": len(rows),
        "rows": rows,
        "report": str(path),
        "finished": time.time(),
    }


def _downtime(job: Job, vm_steps: list[dict[str, Any]]) -> str:
    """How long the source was down until the guest agent answered, and how it moved (warm: its rounds)."""
    agent = next((s for s in vm_steps if s["step"] == GUEST_AGENT), {})
    seconds = (agent.get("detail") or {}).get("downtime_seconds")
    if seconds is None:
        return ""
    rounds = next((s for s in vm_steps if s["step"] == PRECOPY and s["status"] == "succeeded"), None)
    how = f"warm, {len(rounds['detail'].get('rounds', []))} precopy rounds" if rounds else "cold"
    return f"{seconds:.1f}s ({how})"


def _fix(failed: dict[str, Any]) -> str:
    """The table's fix for a known cause; for one it does not know, the error itself."""
    known = cause(failed["cause"])
    return known.fix if known.id == failed["cause"] else failed["error"][:120]
