"""The `vmwave` command: lab, inventory, plan and check."""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from vmwave.errors import VmwaveError

app = typer.Typer(help=__doc__, no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)
lab_app = typer.Typer(help="The local lab: a simulated vCenter seeded from an estate file.", no_args_is_help=True)
app.add_typer(lab_app, name="lab")
err = Console(stderr=True, soft_wrap=True)
out = Console()


@contextmanager
def working(message: str, total: int | None = None) -> Iterator[Callable[[int], None]]:
    """A progress bar (or, without a total, a counter) on stderr, so stdout stays clean for eval and pipes.

    Yields a function that takes how much is done so far.
    """
    columns = [SpinnerColumn(), TextColumn("{task.description}")]
    columns += [BarColumn(), MofNCompleteColumn()] if total else [TextColumn("{task.completed:.0f}")]
    with Progress(*columns, TimeElapsedColumn(), console=err, transient=True) as bar:
        task = bar.add_task(message, total=total)
        yield lambda done: bar.update(task, completed=done)


# Connection options shared by every command that talks to vCenter.
URL = typer.Option(None, "--url", help="vCenter URL, e.g. https://vcenter.example/sdk [env VMWAVE_VCENTER_URL]")
USER = typer.Option(None, "--user", help="vCenter user [env VMWAVE_VCENTER_USER]")
PASSWORD_FILE = typer.Option(None, "--password-file", help="file holding the password [env VMWAVE_VCENTER_PASSWORD_FILE]")
SECRET_BLOCK = typer.Option(None, "--secret-block", help="Prefect Secret block holding the password")
CA = typer.Option(None, "--ca", help="CA bundle (PEM) that signed vCenter's certificate [env VMWAVE_VCENTER_CA]")
THUMBPRINT = typer.Option(None, "--thumbprint", help="pin vCenter's certificate by its SHA-256/SHA-1 thumbprint")
INSECURE = typer.Option(False, "--insecure", help="do not verify vCenter's certificate (labs only; logged)")


def _inventory(url, user, password_file, secret_block, ca, thumbprint, insecure):
    from vmwave.adapters.vsphere import inventory
    from vmwave.settings import vcenter_target

    target = vcenter_target(url, user, password_file, secret_block, ca, thumbprint, insecure)
    with working(f"reading the inventory of {target.url}: objects") as progress:
        return target.url, inventory(target, progress=progress)


@lab_app.command("up")
def lab_up(
    estate: Optional[Path] = typer.Option(None, "--estate", help="estate YAML to seed (default: the small example); "
                                                                  "its maps are NAME.maps.yaml beside it"),
    vms: Optional[int] = typer.Option(None, "--vms", help="generate an estate of this many VMs instead"),
    state_dir: Optional[Path] = typer.Option(None, "--state-dir", help="where the lab keeps its files [env VMWAVE_LAB_DIR]"),
) -> None:
    """Start the lab vCenter and lab Kubernetes in the background and print their VMWAVE_* settings."""
    from vmwave_lab import estate as estates, lab

    if estate and vms:
        raise VmwaveError("--estate and --vms both given", "choose one")
    if vms is not None and vms < 1:
        raise VmwaveError(f"--vms must be at least 1, got {vms}", "give a positive number")
    from vmwave_lab import vcenter

    total = vms or len(estates.load(str(estate or lab.ESTATES / "small.yaml"))["vms"])
    with working("building the lab vCenter (first run only, ~20 s)"):
        vcenter.binary()
    with working("seeding the lab vCenter: VMs", total=total) as progress:
        settings = lab.up(estate, vms, state_dir, progress)
    err.print(f"lab vCenter {settings['VMWAVE_VCENTER_URL']} with {total} VMs and lab Kubernetes "
              f"({settings['VMWAVE_KUBECONFIG']}) are running; load them with: set -a; eval \"$(vmwave lab env)\"; set +a")
    _print_env(settings)


def _print_env(settings: dict[str, str]) -> None:
    for key, value in settings.items():
        print(f"{key}={value}")


@lab_app.command("env")
def lab_env(state_dir: Optional[Path] = typer.Option(None, "--state-dir")) -> None:
    """Print the VMWAVE_* settings of the running lab."""
    from vmwave_lab import lab

    settings = lab.env(state_dir)
    if settings is None:
        raise VmwaveError("no lab is running", "start one with `vmwave lab up`")
    _print_env(settings)


@lab_app.command("down")
def lab_down(state_dir: Optional[Path] = typer.Option(None, "--state-dir")) -> None:
    """Stop everything `vmwave lab up` started (the lab cluster's objects stay on disk for the next `up`)."""
    from vmwave_lab import lab

    err.print("lab stopped" if lab.down(state_dir) else "no lab was running")


@app.command()
def inventory(
    out_file: Path = typer.Option(Path("inventory.json"), "--out", help="where to write the records (JSON)"),
    url: Optional[str] = URL, user: Optional[str] = USER, password_file: Optional[str] = PASSWORD_FILE,
    secret_block: Optional[str] = SECRET_BLOCK, ca: Optional[str] = CA, thumbprint: Optional[str] = THUMBPRINT,
    insecure: bool = INSECURE,
) -> None:
    """Read every VM from vCenter into a JSON file that `vmwave plan --inventory` can plan offline."""
    from vmwave.files import write_text_atomic

    source, records = _inventory(url, user, password_file, secret_block, ca, thumbprint, insecure)
    write_text_atomic(out_file, json.dumps({"source": source, "vms": [r.to_dict() for r in records]}, indent=1))
    err.print(f"{len(records)} VMs from {source} written to {out_file}")


@app.command()
def plan(
    out_file: Path = typer.Option(Path("plan.yaml"), "--out", help="where to write the plan"),
    rules: Optional[Path] = typer.Option(None, "--rules", help="class rules YAML (default: built-in rules)"),
    maps: Optional[Path] = typer.Option(None, "--maps", envvar="VMWAVE_MAPS",
                                        help="storage/network maps YAML (enables the mapping concerns) [env VMWAVE_MAPS]"),
    from_inventory: Optional[Path] = typer.Option(None, "--inventory", help="plan from a saved inventory instead of vCenter"),
    wave_size: Optional[int] = typer.Option(None, "--wave-size", min=1, help="most VMs in one wave (default 50)"),
    per_host: Optional[int] = typer.Option(None, "--per-host", min=1, help="most VMs in flight per ESXi host (default 10)"),
    url: Optional[str] = URL, user: Optional[str] = USER, password_file: Optional[str] = PASSWORD_FILE,
    secret_block: Optional[str] = SECRET_BLOCK, ca: Optional[str] = CA, thumbprint: Optional[str] = THUMBPRINT,
    insecure: bool = INSECURE,
) -> None:
    """Classify every VM, cut the estate into waves and write the plan file."""
    from vmwave.domain.plan import summarize
    from vmwave.planning import load_maps, load_policy, make_plan, write_plan

    policy, mapping = load_policy(rules, wave_size, per_host), load_maps(maps)  # bad files fail before vCenter is asked
    if from_inventory:
        source, records = _saved_inventory(from_inventory)
    else:
        source, records = _inventory(url, user, password_file, secret_block, ca, thumbprint, insecure)
    doc = make_plan(records, policy, mapping, source)
    write_plan(doc, out_file)
    show_summary(summarize(doc))
    err.print(f"plan written to {out_file}")


def _saved_inventory(path: Path):
    from vmwave.domain.records import SourceVM
    from vmwave.errors import InputError

    try:
        data = json.loads(path.read_text())
        return data.get("source", str(path)), [SourceVM.from_dict(v) for v in data["vms"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(str(path), "", f"not an inventory file ({exc})", "write one with `vmwave inventory --out FILE`") from None


@app.command()
def check(plan_file: Path = typer.Argument(..., help="plan YAML to validate")) -> None:
    """Validate a (hand-edited) plan and print its summary."""
    from vmwave.domain.plan import parse_plan, summarize
    from vmwave.files import read_yaml

    show_summary(summarize(parse_plan(read_yaml(plan_file, "plan"), str(plan_file))))
    err.print(f"{plan_file} is a valid plan")


@app.command()
def manifests(
    plan_file: Path = typer.Option(..., "--plan", help="the plan YAML"),
    wave: str = typer.Option(..., "--wave", help="wave id (w003) or number (3)"),
    out_dir: Path = typer.Option(..., "--out", help="directory for one YAML file per object"),
    maps: Optional[Path] = typer.Option(None, "--maps", envvar="VMWAVE_MAPS", help="maps YAML [env VMWAVE_MAPS]"),
    rules: Optional[Path] = typer.Option(None, "--rules", help="rules YAML (profiles; default: built-in)"),
    from_inventory: Optional[Path] = typer.Option(None, "--inventory", help="use a saved inventory instead of vCenter"),
    transfer_url: Optional[str] = typer.Option(None, "--transfer-url", help="base URL CDI imports disks from "
                                                                              "(default: CDI upload sources)"),
    url: Optional[str] = URL, user: Optional[str] = USER, password_file: Optional[str] = PASSWORD_FILE,
    secret_block: Optional[str] = SECRET_BLOCK, ca: Optional[str] = CA, thumbprint: Optional[str] = THUMBPRINT,
    insecure: bool = INSECURE,
) -> None:
    """Write the objects a wave would create (NADs, DataVolumes, VirtualMachines), without touching a cluster."""
    import yaml

    from vmwave.domain.plan import parse_plan
    from vmwave.errors import InputError
    from vmwave.files import read_yaml, write_text_atomic
    from vmwave.planning import load_maps, load_policy
    from vmwave.wave_objects import wave_objects

    doc = parse_plan(read_yaml(plan_file, "plan"), str(plan_file))
    if maps is None:
        raise InputError("--maps", "", "no maps file", "pass --maps FILE or set VMWAVE_MAPS (the lab prints one)")
    mapping, policy = load_maps(maps), load_policy(rules)
    if from_inventory:
        _, records = _saved_inventory(from_inventory)
    else:
        _, records = _inventory(url, user, password_file, secret_block, ca, thumbprint, insecure)
    objects = wave_objects(doc, wave, records, policy, mapping, transfer_url)
    out_dir.mkdir(parents=True, exist_ok=True)
    for obj in objects:
        meta = obj["metadata"]
        name = f"{obj['kind'].lower()}-{meta.get('namespace', 'cluster')}-{meta['name']}.yaml"
        write_text_atomic(out_dir / name, yaml.safe_dump(obj, sort_keys=False))
    kinds: dict[str, int] = {}
    for obj in objects:
        kinds[obj["kind"]] = kinds.get(obj["kind"], 0) + 1
    err.print(f"{len(objects)} objects written to {out_dir}: " + ", ".join(f"{n} {k}" for k, n in kinds.items()))


cluster_app = typer.Typer(help="Cluster-wide settings vmwave manages.", no_args_is_help=True)
app.add_typer(cluster_app, name="cluster")


@cluster_app.command("migration-config")
def migration_config(
    apply_it: bool = typer.Option(False, "--apply", help="patch the KubeVirt CR instead of printing the patch"),
    kubeconfig: Optional[Path] = typer.Option(None, "--kubeconfig", envvar="VMWAVE_KUBECONFIG",
                                              help="kubeconfig [env VMWAVE_KUBECONFIG]"),
    parallel_per_cluster: int = typer.Option(10, min=1, help="live migrations at once in the cluster"),
    parallel_per_node: int = typer.Option(4, min=1, help="outbound live migrations at once per node"),
    bandwidth: str = typer.Option("1Gi", help="bandwidth per migration (a quantity per second)"),
) -> None:
    """The seed's live-migration settings for the KubeVirt CR, as a merge patch."""
    import yaml

    from vmwave.domain.manifests import migration_config as patch_for

    patch = patch_for(parallel_per_cluster, parallel_per_node, bandwidth)
    if not apply_it:
        print(yaml.safe_dump(patch, sort_keys=False), end="")
        return
    from vmwave.adapters.kubernetes import Cluster
    from vmwave.errors import InputError

    if kubeconfig is None:
        raise InputError("--kubeconfig", "", "no kubeconfig", "pass --kubeconfig or set VMWAVE_KUBECONFIG")
    cluster = Cluster(kubeconfig)
    found = cluster.resource("kubevirt.io/v1", "KubeVirt").get().items
    if not found:
        raise VmwaveError("the cluster has no KubeVirt CR", "install KubeVirt first")
    cr = found[0].metadata
    cluster.patch("kubevirt.io/v1", "KubeVirt", cr.namespace, cr.name, patch)
    err.print(f"KubeVirt {cr.namespace}/{cr.name} patched with the migration settings")


WAVE_PLAN = typer.Option(..., "--plan", help="the plan YAML")
WAVE_ID = typer.Option(..., "--wave", help="wave id (w003) or number (3)")


@app.command()
def migrate(
    plan_file: Path = WAVE_PLAN, wave: str = WAVE_ID,
    maps: Optional[Path] = typer.Option(None, "--maps", envvar="VMWAVE_MAPS", help="maps YAML [env VMWAVE_MAPS]"),
    rules: Optional[Path] = typer.Option(None, "--rules", help="rules YAML (profiles)"),
    ledger: Optional[str] = typer.Option(None, "--ledger", envvar="VMWAVE_LEDGER", help="ledger file or URL"),
    keep_for_debug: bool = typer.Option(False, "--keep-for-debug", help="keep a failed VM's cluster objects"),
    ignore_window: bool = typer.Option(False, "--ignore-window", help="run a P4 wave outside its maintenance window"),
    report_dir: Path = typer.Option(Path("."), "--report-dir", help="where the wave's Markdown report goes"),
) -> None:
    """Run a wave of the plan (exit 0 only when every VM of it succeeded)."""
    from vmwave_flows.wave import migrate_wave

    report = migrate_wave(str(plan_file), wave, str(maps) if maps else None, str(rules) if rules else None,
                          ledger=ledger, keep_for_debug=keep_for_debug, ignore_window=ignore_window,
                          report_dir=str(report_dir))
    table = Table(title=f"wave {report['wave']}: {report['succeeded']}/{report['total']} succeeded")
    for column in ("VM", "class", "result", "cause", "fix"):
        table.add_column(column)
    for row in report["rows"]:
        table.add_row(row["vm"], row["class"], row["result"], row["cause"], row["fix"])
    out.print(table)
    err.print(f"report: {report['report']}")
    if report["succeeded"] != report["total"]:
        raise typer.Exit(1)


@app.command()
def rollback(
    plan_file: Path = WAVE_PLAN, wave: str = WAVE_ID,
    maps: Optional[Path] = typer.Option(None, "--maps", envvar="VMWAVE_MAPS", help="maps YAML [env VMWAVE_MAPS]"),
    ledger: Optional[str] = typer.Option(None, "--ledger", envvar="VMWAVE_LEDGER", help="ledger file or URL"),
) -> None:
    """Undo a wave: remove what it created in the cluster, power sources on again; snapshots are kept."""
    from vmwave_flows.wave import rollback_wave

    done = rollback_wave(str(plan_file), wave, str(maps) if maps else None, ledger=ledger)
    err.print(f"wave {done['wave']}: {done['rolled_back']} VM(s) rolled back")


@app.command()
def status(
    wave: Optional[str] = typer.Option(None, "--wave", help="only this wave (id w003 or number 3)"),
    as_json: bool = typer.Option(False, "--json", help="per VM, its steps with status, attempts and cause"),
    ledger: Optional[str] = typer.Option(None, "--ledger", envvar="VMWAVE_LEDGER",
                                         help="ledger file or SQLAlchemy URL [env VMWAVE_LEDGER]"),
) -> None:
    """What the ledger says about each VM and step."""
    from vmwave.adapters.ledger import Ledger, dumps

    wave_id = f"w{int(wave):03d}" if wave and wave.isdigit() else wave
    entries = Ledger(ledger).by_vm(wave_id)
    if as_json:
        print(dumps(entries))
        return
    table = Table(title=f"{len(entries)} VMs" + (f" in wave {wave_id}" if wave_id else ""))
    for column in ("wave", "VM", "step", "status", "attempts", "seconds", "cause"):
        table.add_column(column)
    for entry in entries:
        for step in entry["steps"]:
            table.add_row(entry["wave"], entry["vm"], step["step"], step["status"], str(step["attempts"]),
                          "" if step["seconds"] is None else f"{step['seconds']:.1f}", step["cause"])
    out.print(table)


def show_summary(summary: dict) -> None:
    classes = Table(title=f"{summary['vms']} VMs by priority class ({summary['skipped']} templates skipped)")
    for column in ("class", "title", "mode", "VMs"):
        classes.add_column(column)
    for row in summary["classes"]:
        classes.add_row(row["class"], row["title"], row["mode"], str(row["vms"]))
    out.print(classes)
    waves = Table(title=f"{len(summary['waves'])} waves")
    for column in ("wave", "class", "mode", "VMs", "critical concerns", "window"):
        waves.add_column(column)
    for row in summary["waves"]:
        waves.add_row(row["id"], row["class"], row["mode"], str(row["vms"]), str(row["critical"]), row["window"])
    out.print(waves)
    if summary["critical_concerns"]:
        crit = Table(title="critical concerns")
        crit.add_column("concern")
        crit.add_column("VMs")
        for cid, count in summary["critical_concerns"].items():
            crit.add_row(cid, str(count))
        out.print(crit)


def main() -> None:
    """Entry point: known failures become one line on stderr and exit code 2, never a traceback."""
    from vmwave_lab.estate import EstateError
    from vmwave_lab.vcenter import LabError

    try:
        app()
    except (VmwaveError, LabError, EstateError) as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False, markup=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
