"""`vmwave migrate`, `retry`, `schedule`, `rollback`, `cancel`, `cutover` and `status`: run a wave of the plan (or
its failed VMs again) or put it in the Prefect calendar, undo it or one VM, cut warm VMs over, read the ledger."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from vmwave.cli.common import ANY_WAVE, LEDGER, MAPS, PLAN, VMS, WAVE, app, err, styled, table


def finished(state: Any) -> Any:
    """What a wave's or rollback's run ended with: its report (on the error when some VM did not make it), or the
    error that refused or broke it."""
    from vmwave_flows.refusals import Incomplete

    found = state.result(raise_on_failure=False)
    return found.result if isinstance(found, Incomplete) else found


@app.command()
def migrate(
    plan_file: Path = PLAN,
    wave: str = WAVE,
    maps: Optional[Path] = MAPS,
    ledger: Optional[str] = LEDGER,
    keep_for_debug: bool = typer.Option(False, "--keep-for-debug", help="keep a failed VM's cluster objects"),
    ignore_window: bool = typer.Option(False, "--ignore-window", help="run a P4 wave outside its maintenance window"),
    redo: list[str] = typer.Option(
        [],
        "--redo",
        help="migrate this VM again although the ledger recorded it (its "
        "objects are gone); a verified migration must be rolled back "
        "first",
    ),
    in_flight: Optional[int] = typer.Option(None, "--in-flight", min=1, help="VMs at once [env VMWAVE_IN_FLIGHT, 10]"),
    report_dir: Path = typer.Option(Path("."), "--report-dir", help="where the wave's Markdown report goes"),
) -> None:
    """Run a wave of the plan (exit 0 only when every VM of it succeeded)."""
    from vmwave_flows.wave import migrate_wave

    state = migrate_wave(
        str(plan_file),
        wave,
        str(maps) if maps else None,
        ledger,
        keep_for_debug=keep_for_debug,
        ignore_window=ignore_window,
        redo=redo,
        in_flight=in_flight,
        report_dir=str(report_dir),
        return_state=True,
    )
    show(finished(state))


def show(report: Any) -> None:
    """A wave run's report as a table (exit 1 unless every VM succeeded); its refusal or error raised."""
    if isinstance(report, BaseException):  # refused before anything changed, or broken
        raise report
    table(
        f"wave {report['wave']}: {report['succeeded']}/{report['total']} succeeded",
        ("VM", "class", "result", "cause", "fix"),
        [(r["vm"], r["class"], r["result"], r["cause"], r["fix"]) for r in report["rows"]],
    )
    err.print(f"report: {report['report']}")
    if report["succeeded"] != report["total"]:
        raise typer.Exit(1)


@app.command()
def retry(
    plan_file: Path = PLAN,
    wave: str = WAVE,
    maps: Optional[Path] = MAPS,
    ledger: Optional[str] = LEDGER,
    vm: list[str] = VMS,
    report_dir: Path = typer.Option(Path("."), "--report-dir", help="where the wave's Markdown report goes"),
) -> None:
    """Run the failed VMs of a wave again from their first failed step, with the plan as edited since: a copy
    their failure kept is converted again without copying when the source did not change."""
    from vmwave_flows.wave import migrate_wave

    show(
        finished(
            migrate_wave(
                str(plan_file),
                wave,
                str(maps) if maps else None,
                ledger,
                retry=vm,
                report_dir=str(report_dir),
                return_state=True,
            )
        )
    )


@app.command()
def schedule(
    plan_file: Path = PLAN,
    pool: str = typer.Option("vmwave", "--pool", help="the work pool whose workers run the waves (created if missing)"),
    deployment: str = typer.Option("shared-storage", "--deployment", help="the migrate-wave deployment to schedule"),
) -> None:
    """Put every wave with a window in the Prefect calendar: one run of migrate-wave at its window's start."""
    from vmwave.adapters.prefect_api.calendar import schedule_waves
    from vmwave.adapters.files import load_plan
    from vmwave.domain.calendar import wave_starts
    from vmwave_flows.wave import migrate_wave

    from vmwave.settings import Settings

    doc = load_plan(plan_file, Settings.load().max_file_bytes)
    starts = wave_starts(doc)
    changes = schedule_waves(plan_file, starts, deployment, pool, migrate_wave.parameters.model_dump(mode="json"))
    verdict = {
        **{s: "created" for s in changes.created},
        **{s: "moved" for s in changes.moved},
        **{s: "unchanged" for s in changes.kept},
    }
    table(
        f"{changes.deployment}: {len(starts)} of {len(doc.waves)} waves scheduled",
        ("wave", "window start (UTC)", "schedule"),
        [
            (
                w.id,
                starts[f"wave-{w.id}"].start.isoformat() if f"wave-{w.id}" in starts else "",
                verdict.get(f"wave-{w.id}", "none: run it from the UI or CI"),
            )
            for w in doc.waves
        ],
    )
    if changes.removed or changes.stale_runs:
        err.print(
            f"removed the schedules of waves gone or without a window: {', '.join(changes.removed) or 'none'}; "
            f"{changes.stale_runs} scheduled run(s) of earlier windows deleted"
        )


@app.command()
def rollback(
    plan_file: Path = PLAN,
    wave: str = WAVE,
    maps: Optional[Path] = MAPS,
    ledger: Optional[str] = LEDGER,
    vm: list[str] = VMS,
) -> None:
    """Undo a wave (or its VMs named): remove what it created in the cluster, unfence the sources and power them
    on again; snapshots are kept."""
    from vmwave_flows.wave import rollback_wave

    state = rollback_wave(str(plan_file), wave, str(maps) if maps else None, ledger, vms=vm, return_state=True)
    done = finished(state)
    if isinstance(done, BaseException):  # refused before anything changed, or broken
        raise done
    err.print(f"wave {done['wave']}: {done['rolled_back']} VM(s) rolled back")
    for name, why in done["failed"].items():
        err.print(
            styled(
                (f"{name}: the rollback failed", "red"),
                f" ({'; '.join(why)}); undo that by hand, or rerun `vmwave rollback` once the cause is fixed",
            )
        )
    if done["failed"]:
        raise typer.Exit(1)


@app.command()
def cancel(
    plan_file: Path = PLAN,
    wave: str = WAVE,
    vm: str = typer.Option(..., "--vm", help="the VM's name as the plan has it"),
    ledger: Optional[str] = LEDGER,
) -> None:
    """Stop one VM's migration wherever it is and roll it back; the rest of its wave goes on."""
    from vmwave.adapters.files import load_plan
    from vmwave.adapters.ledger import Ledger
    from vmwave.domain.plan import find_wave
    from vmwave.domain.steps import outcome
    from vmwave.errors import InputError
    from vmwave.settings import Settings

    settings = Settings.load(ledger=ledger)
    entry = find_wave(load_plan(plan_file, settings.max_file_bytes), wave)
    found = next((v for v in entry.vms if v.name == vm), None)
    if found is None:
        raise InputError(
            str(plan_file),
            "waves",
            f"wave {entry.id} has no VM {vm!r}",
            "use one of: " + ", ".join(v.name for v in entry.vms),
        )
    book = Ledger(settings.ledger)
    steps = [s for e in book.by_vm(entry.id) if e["uuid"] == found.uuid for s in e["steps"]]
    if outcome(steps).succeeded:
        raise InputError(
            str(plan_file),
            "",
            f"{vm} has already been migrated in wave {entry.id}",
            f"undo it with `vmwave rollback --plan {plan_file} --wave {entry.id}` if it must go back",
        )
    book.requests.request_cancel(entry.id, found.uuid)
    err.print(
        f"{vm}: cancel requested; the worker running it stops within a few seconds and rolls it back "
        "(a VM not started yet stops at its first step)"
    )


@app.command()
def cutover(
    plan_file: Path = PLAN,
    wave: str = WAVE,
    vm: Optional[str] = typer.Option(None, "--vm", help="only this VM (its name as the plan has it)"),
    ledger: Optional[str] = LEDGER,
) -> None:
    """Cut warm VMs over now instead of at the window's start: shutdown, the last delta, conversion, boot."""
    from vmwave.adapters.files import load_plan
    from vmwave.adapters.ledger import Ledger
    from vmwave.domain.plan import find_wave
    from vmwave.errors import InputError
    from vmwave.settings import Settings

    settings = Settings.load(ledger=ledger)
    entry = find_wave(load_plan(plan_file, settings.max_file_bytes), wave)
    warm = [v for v in entry.vms if v.warm and vm in (None, v.name)]
    if not warm:
        names = ", ".join(v.name for v in entry.vms if v.warm) or "none"
        raise InputError(
            str(plan_file),
            "waves",
            f"wave {entry.id} has no warm VM {vm or ''}".rstrip(),
            f"its warm VMs: {names}; a cold VM goes down when its migration starts",
        )
    Ledger(settings.ledger).requests.request_cutover(entry.id, warm[0].uuid if vm else "*")
    err.print(
        f"cutover requested for {vm or 'every warm VM of wave ' + entry.id}: each stops its precopy "
        "within a few seconds, shuts down, and copies its last changes"
    )


@app.command()
def status(
    wave: Optional[str] = ANY_WAVE,
    as_json: bool = typer.Option(False, "--json", help="per VM, its steps with status, attempts and cause"),
    ledger: Optional[str] = LEDGER,
) -> None:
    """What the ledger says about each VM and step."""
    from vmwave.adapters.ledger import Ledger, dumps
    from vmwave.settings import Settings

    entries = Ledger(Settings.load(ledger=ledger).ledger).by_vm(wave)
    if as_json:
        print(dumps(entries))
        return
    table(
        f"{len(entries)} VMs" + (f" in wave {wave}" if wave else ""),
        ("wave", "VM", "step", "status", "attempts", "seconds", "progress", "cause"),
        [
            (
                e["wave"],
                e["vm"],
                s["step"],
                s["status"],
                s["attempts"],
                "" if s["seconds"] is None else f"{s['seconds']:.1f}",
                progress(s),
                s["cause"],
            )
            for e in entries
            for s in e["steps"]
        ],
    )


def progress(step: dict) -> str:
    """Where a step is: each disk's import as CDI reports it, the conversion pod's phase."""
    detail = step.get("detail") or {}
    if detail.get("disks") and isinstance(detail["disks"][0], dict) and "progress" in detail["disks"][0]:
        return ", ".join(f"{d['datavolume'].rsplit('-', 1)[-1]} {d['progress']}" for d in detail["disks"])
    if detail.get("pod") and step["status"] == "running":
        return f"pod {detail.get('phase') or 'Pending'}"
    return ""
