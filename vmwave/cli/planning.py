"""`vmwave inventory`, `plan`, `check` and `manifests`: from vCenter to a reviewed plan and what it will create."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer

from vmwave.settings import Settings
from vmwave.cli.common import (
    MAPS,
    PLAN,
    WAVE,
    app,
    err,
    read_inventory,
    saved_inventory,
    talks_to_vcenter,
    show_summary,
    styled,
)


@app.command()
@talks_to_vcenter
def inventory(
    out_file: Path = typer.Option(Path("inventory.json"), "--out", help="where to write the records (JSON)"),
    vcenter: dict[str, Any] | None = None,
) -> None:
    """Read every VM from vCenter into a JSON file that `vmwave plan --inventory` can plan offline."""
    from vmwave.adapters.files import write_text_atomic

    settings = Settings.load(vcenter=vcenter)
    source, records = read_inventory(settings)
    write_text_atomic(out_file, json.dumps({"source": source, "vms": [r.to_dict() for r in records]}, indent=1))
    err.print(f"{len(records)} VMs from {source} written to {out_file}")


@app.command()
@talks_to_vcenter
def plan(
    out_file: Path = typer.Option(Path("plan.yaml"), "--out", help="where to write the plan"),
    rules: Optional[Path] = typer.Option(None, "--rules", help="class rules YAML (default: built-in rules)"),
    maps: Optional[Path] = typer.Option(
        None, "--maps", help="storage/network maps YAML (enables the mapping concerns) [env VMWAVE_MAPS]"
    ),
    from_inventory: Optional[Path] = typer.Option(
        None, "--inventory", help="plan from a saved inventory instead of vCenter"
    ),
    wave_size: Optional[int] = typer.Option(None, "--wave-size", min=1, help="most VMs in one wave (default 50)"),
    per_host: Optional[int] = typer.Option(
        None, "--per-host", min=1, help="most VMs in flight per ESXi host (default 10)"
    ),
    vcenter: dict[str, Any] | None = None,
) -> None:
    """Classify every VM, cut the estate into waves and write the plan file."""
    from vmwave.adapters.files import load_maps, load_policy
    from vmwave.domain.plan import parse_plan, summarize
    from vmwave_tasks.plan import write_plan_document

    settings = Settings.load(vcenter=vcenter, maps=maps)
    limit = settings.max_file_bytes
    policy, mapping = load_policy(rules, wave_size, per_host, limit), load_maps(settings.maps, limit)  # fail first
    source, records = saved_inventory(from_inventory, settings) if from_inventory else read_inventory(settings)
    kubeconfig = settings.need_kubeconfig() if settings.kubeconfig else None
    doc, existing = write_plan_document(
        records, policy, mapping, source, out_file, settings.disable_plugins, kubeconfig
    )
    if settings.kubeconfig:
        err.print(f"checked against the {existing} VirtualMachines already in the cluster")
    show_summary(summarize(parse_plan(doc, str(out_file))))
    err.print(f"plan written to {out_file}")


@app.command()
def check(plan_file: Path = typer.Argument(..., help="plan YAML to validate")) -> None:
    """Validate a (hand-edited) plan and print its summary."""
    from vmwave.adapters.files import load_plan
    from vmwave.domain.plan import summarize

    from vmwave.settings import Settings

    show_summary(summarize(load_plan(plan_file, Settings.load().max_file_bytes)))
    err.print(f"{plan_file} is a valid plan")


@app.command()
@talks_to_vcenter
def manifests(
    plan_file: Path = PLAN,
    wave: str = WAVE,
    out_dir: Path = typer.Option(..., "--out", help="directory for one YAML file per object"),
    maps: Optional[Path] = MAPS,
    from_inventory: Optional[Path] = typer.Option(None, "--inventory", help="use a saved inventory instead of vCenter"),
    vcenter: dict[str, Any] | None = None,
) -> None:
    """Write the objects a wave creates, exactly as `vmwave migrate` applies them, without touching a cluster.

    Exits 1, naming each, when some VMs cannot be rendered; the others are written.
    """
    from vmwave.adapters.documents import dump_yaml
    from vmwave.adapters.files import inside, load_maps, load_plan, write_text_atomic
    from vmwave.adapters.vsphere import source_access
    from vmwave.domain.build import wave_objects
    from vmwave.plugins import customizer

    settings = Settings.load(vcenter=vcenter, maps=maps)
    doc, mapping = (
        load_plan(plan_file, settings.max_file_bytes),
        load_maps(settings.need_maps(), settings.max_file_bytes),
    )
    _, records = saved_inventory(from_inventory, settings) if from_inventory else read_inventory(settings)
    objects, failed = wave_objects(doc, wave, records, mapping, source_access(settings), customizer(settings))
    out_dir.mkdir(parents=True, exist_ok=True)
    kinds: dict[str, int] = {}
    for obj in objects:
        meta = obj["metadata"]
        name = f"{obj['kind'].lower()}-{meta.get('namespace', 'cluster')}-{meta['name']}.yaml"
        write_text_atomic(inside(out_dir, name), dump_yaml(obj, sort_keys=False))
        kinds[obj["kind"]] = kinds.get(obj["kind"], 0) + 1
    err.print(f"{len(objects)} objects written to {out_dir}: " + ", ".join(f"{n} {k}" for k, n in kinds.items()))
    if any(obj["kind"] == "Secret" for obj in objects):
        err.print("the vCenter credentials Secret shows a placeholder password: a run puts the real one in")
    for vm, why in failed.items():
        err.print(styled(("not rendered:", "bold red"), f" {vm}: {why}"))
    if failed:
        raise typer.Exit(1)
