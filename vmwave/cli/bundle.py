"""`vmwave bundle`: a failed wave's or VM's logs, objects, events and ledger in one file, with no secret in it."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from vmwave.cli.common import LEDGER, MAPS, PLAN, VMS, WAVE, app, err
from vmwave.settings import Settings


@app.command()
def bundle(
    plan_file: Path = PLAN,
    wave: str = WAVE,
    maps: Optional[Path] = MAPS,
    ledger: Optional[str] = LEDGER,
    vm: list[str] = VMS,
    out: Path = typer.Option(..., "--out", help="the bundle to write (.tar.gz)"),
    report_dir: Path = typer.Option(Path("."), "--report-dir", help="where the wave's report was written"),
) -> None:
    """Gather what explains a wave's VMs (every one the ledger knows, or those named) into one file: plan
    entries, ledger rows, the wave report, conversion logs, Kubernetes objects, events and pod logs, and what
    vCenter says of each VM, with every secret removed."""
    from vmwave_tasks.bundle import debug_bundle

    settings = Settings.load(maps=maps, ledger=ledger)
    written = debug_bundle(str(plan_file), wave, vm, settings, str(report_dir), out)
    for name, files in written["vms"].items():
        err.print(f"{name}: {', '.join(files)}")
    err.print(f"bundle: {written['bundle']}")
