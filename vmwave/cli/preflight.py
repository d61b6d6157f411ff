"""`vmwave preflight`: ask the real cluster and vCenter whether a plan's waves can run, before the first window."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from vmwave.settings import Settings
from vmwave.cli.common import (
    MAPS,
    PLAN,
    _wave,
    app,
    out,
    talks_to_vcenter,
    table,
)


@app.command()
@talks_to_vcenter
def preflight(
    plan_file: Path = PLAN,
    maps: Optional[Path] = MAPS,
    waves: list[str] = typer.Option(
        [],
        "--wave",
        help="only this wave (id w003 or number 3); repeatable",
        callback=lambda values: [_wave(v) for v in values],
    ),
    vcenter: dict[str, Any] | None = None,
) -> None:
    """Check waves against the cluster and vCenter, changing nothing: dry runs of every object, StorageClasses and
    networks, room on the nodes, quotas, the vCenter user's privileges (exit 1 when a wave has a problem)."""
    from vmwave_tasks.wave import check_plan

    settings = Settings.load(vcenter=vcenter, maps=maps)
    results = check_plan(str(plan_file), waves, settings)
    problems = [p for _, _, found in results for p in found]
    if problems:
        table(
            f"{len(problems)} problem(s)",
            ("wave", "VM", "what is wrong", "fix"),
            [(p.wave, p.vm or "(the wave)", p.what, p.fix) for p in problems],
        )
    table(
        "waves",
        ("wave", "class", "VMs to move", "problems", "verdict"),
        [(w.id, w.cls, moving, len(found), "cannot run" if found else "ready") for w, moving, found in results],
    )
    out.print(f"{sum(1 for *_, found in results if not found)} of {len(results)} wave(s) ready")
    if problems:
        raise typer.Exit(1)
