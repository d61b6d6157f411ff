"""`vmwave lab`: the local lab (a simulated vCenter and Kubernetes), when the lab package is installed.

The only product code that imports ``vmwave_lab``; the lab's own errors become
vmwave's, so they print as one line like every other.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

import typer

from vmwave.cli.common import app, err, working
from vmwave.errors import VmwaveError
from vmwave_lab import estate as estates
from vmwave_lab import changes, lab, vcenter
from vmwave_lab.estate import EstateError
from vmwave_lab.process import LabError

lab_app = typer.Typer(
    help="The local lab: a simulated vCenter and Kubernetes seeded from an estate file.", no_args_is_help=True
)
app.add_typer(lab_app, name="lab")
STATE_DIR = typer.Option(None, "--state-dir", help="where the lab keeps its files [env VMWAVE_LAB_DIR]")


@contextmanager
def lab_errors() -> Iterator[None]:
    try:
        yield
    except (LabError, EstateError) as exc:
        raise VmwaveError(str(exc)) from None


@lab_app.command("up")
def lab_up(
    estate: Optional[Path] = typer.Option(
        None, "--estate", help="estate YAML to seed (default: the small example); its maps are NAME.maps.yaml beside it"
    ),
    vms: Optional[int] = typer.Option(None, "--vms", help="generate an estate of this many VMs instead"),
    inventory: Optional[Path] = typer.Option(
        None, "--inventory", help="seed the VMs `vmwave inventory` read from a real vCenter instead, to rehearse them"
    ),
    data_mb: int = typer.Option(
        1, "--data-mb", min=0, max=1024, help="with --inventory: MiB of real bytes in each disk, sparse beyond"
    ),
    nodes: Optional[Path] = typer.Option(
        None,
        "--nodes",
        help="YAML of the lab Kubernetes nodes (`nodes:` as an "
        "estate writes them: name, cpu, memory_gi, "
        "hugepages_1gi, labels); default: the estate's",
    ),
    state_dir: Optional[Path] = STATE_DIR,
) -> None:
    """Start the lab vCenter and lab Kubernetes in the background and print their VMWAVE_* settings."""
    if sum(given is not None for given in (estate, vms, inventory)) > 1:
        raise VmwaveError("more than one of --estate, --vms and --inventory given", "choose one")
    if vms is not None and vms < 1:
        raise VmwaveError(f"--vms must be at least 1, got {vms}", "give a positive number")
    records = None
    if inventory is not None:
        from vmwave.cli.common import saved_inventory
        from vmwave.settings import Settings

        records = [vm.to_dict() for vm in saved_inventory(inventory, Settings.load())[1]]
    with lab_errors():
        declared = estates.load_nodes(str(nodes)) if nodes else None
        total = vms or (
            len(records) if records is not None else len(estates.load(str(estate or lab.ESTATES / "small.yaml"))["vms"])
        )
        with working("building the lab vCenter (first run only, ~20 s)"):
            vcenter.binary()
        with working("seeding the lab vCenter: VMs", total=total) as progress:
            settings = lab.up(estate, vms, state_dir, progress, inventory=records, data_mb=data_mb, nodes=declared)
    err.print(
        f"lab vCenter {settings['VMWAVE_VCENTER_URL']} with {total} VMs and lab Kubernetes "
        f'({settings["VMWAVE_KUBECONFIG"]}) are running; load them with: set -a; eval "$(vmwave lab env)"; set +a'
    )
    _print_env(settings)


def _print_env(settings: dict[str, str]) -> None:
    for key, value in settings.items():
        print(f"{key}={value}")


@lab_app.command("env")
def lab_env(state_dir: Optional[Path] = STATE_DIR) -> None:
    """Print the VMWAVE_* settings of the running lab."""
    settings = lab.env(state_dir)
    if settings is None:
        raise VmwaveError("no lab is running", "start one with `vmwave lab up`")
    _print_env(settings)


@lab_app.command("down")
def lab_down(state_dir: Optional[Path] = STATE_DIR) -> None:
    """Stop everything `vmwave lab up` started (the lab cluster's objects stay on disk for the next `up`)."""
    with lab_errors():
        err.print("lab stopped" if lab.down(state_dir) else "no lab was running")


def _state(state_dir: Optional[Path]) -> Path:
    return Path(state_dir or vcenter.default_state_dir())


@lab_app.command("write-disk")
def lab_write_disk(
    vm: str = typer.Argument(..., help="the VM's name"),
    disk: int = typer.Option(0, "--disk", help="which of its disks, from 0"),
    offset_mb: int = typer.Option(0, "--offset-mb", help="where to write, in MiB from the disk's start"),
    mb: int = typer.Option(1, "--mb", help="how much to write, in MiB"),
    state_dir: Optional[Path] = STATE_DIR,
) -> None:
    """Write random bytes into a lab VM's disk, as its running guest would; vCenter tracks them as changed blocks."""
    with lab_errors():
        extent = changes.write_disk(_state(state_dir), vm, disk, offset_mb, mb)
    err.print(f"{vm}: wrote {mb} MiB at {offset_mb} MiB into {extent['file']}")


@lab_app.command("reset-cbt")
def lab_reset_cbt(vm: str = typer.Argument(..., help="the VM's name"), state_dir: Optional[Path] = STATE_DIR) -> None:
    """Reset changed block tracking on a lab VM's disks, as a storage vMotion does: older changeIds stop working."""
    with lab_errors():
        disks = changes.reset_cbt(_state(state_dir), vm)
    err.print(f"{vm}: change tracking reset on {', '.join(disks)}")
