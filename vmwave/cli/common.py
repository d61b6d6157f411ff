"""What every `vmwave` command group shares: the app, the consoles, progress, connection options, settings."""

from __future__ import annotations

import functools
import inspect
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from vmwave.domain.names import printable
from vmwave.domain.records import SourceVM
from vmwave.settings import Settings

app = typer.Typer(
    help="Move a VMware vSphere estate to KubeVirt in scheduled, retryable, reversible waves.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


class PlainConsole(Console):
    """A console that shows data as it is: no rich markup read from it (a VM named ``[/]`` or ``[datastore]``),
    no control characters written to the terminal (a name holding an escape sequence). Style goes in ``style=``."""

    def print(self, *objects: Any, **kwargs: Any) -> None:
        kwargs.setdefault("markup", False)
        kwargs.setdefault("highlight", False)
        super().print(*(printable(o, keep_newlines=True) if isinstance(o, str) else o for o in objects), **kwargs)


def styled(*parts: tuple[str, str] | str) -> Text:
    """A line of plain text parts and (text, style) pairs, none of it read as markup."""
    return Text.assemble(*((printable(p), "") if isinstance(p, str) else (printable(p[0]), p[1]) for p in parts))


err = PlainConsole(stderr=True, soft_wrap=True)
out = PlainConsole()


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
PASSWORD_FILE = typer.Option(
    None, "--password-file", help="file holding the password [env VMWAVE_VCENTER_PASSWORD_FILE]"
)
SECRET_BLOCK = typer.Option(None, "--secret-block", help="Prefect Secret block holding the password")
CA = typer.Option(None, "--ca", help="CA bundle (PEM) that signed vCenter's certificate [env VMWAVE_VCENTER_CA]")
THUMBPRINT = typer.Option(None, "--thumbprint", help="pin vCenter's certificate by its SHA-256/SHA-1 thumbprint")
INSECURE = typer.Option(False, "--insecure", help="do not verify vCenter's certificate (labs only; logged)")
MAPS = typer.Option(None, "--maps", help="storage/network maps YAML [env VMWAVE_MAPS]")
LEDGER = typer.Option(None, "--ledger", help="ledger file or SQLAlchemy URL [env VMWAVE_LEDGER]")
PLAN = typer.Option(..., "--plan", help="the plan YAML")
VMS = typer.Option([], "--vm", help="only this VM (its name as the plan has it); repeatable")


def _wave(value: str | None) -> str | None:
    """``--wave 3`` and ``--wave w003`` name the same wave; anything else is refused here, once."""
    from vmwave.domain.names import wave_id

    try:
        return None if value is None else wave_id(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


WAVE = typer.Option(..., "--wave", help="wave id (w003) or number (3)", callback=_wave)
ANY_WAVE = typer.Option(None, "--wave", help="only this wave (id w003 or number 3)", callback=_wave)


VCENTER_OPTIONS = {  # parameter: (option, type, the settings' vCenter field)
    "url": (URL, Optional[str], "url"),
    "user": (USER, Optional[str], "user"),
    "password_file": (PASSWORD_FILE, Optional[str], "password_file"),
    "secret_block": (SECRET_BLOCK, Optional[str], "secret_block"),
    "ca": (CA, Optional[str], "ca_file"),
    "thumbprint": (THUMBPRINT, Optional[str], "thumbprint"),
    "insecure": (INSECURE, bool, "insecure"),
}


def talks_to_vcenter(command: Callable[..., Any]) -> Callable[..., Any]:
    """A command that reads vCenter takes the connection options (``--url``, ``--user``, ... last in its help) and
    gets them as ``vcenter``: the settings' vCenter fields, for ``Settings.load(vcenter=...)``, which adds the
    environment's."""
    own = [p for p in inspect.signature(command).parameters.values() if p.name != "vcenter"]
    options = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=kind)
        for name, (option, kind, _) in VCENTER_OPTIONS.items()
    ]

    @functools.wraps(command)
    def run(**given: Any) -> Any:
        vcenter = {field: given.pop(name) for name, (_, _, field) in VCENTER_OPTIONS.items()}
        return command(vcenter=vcenter, **given)

    run.__signature__ = inspect.Signature(own + options)  # what typer reads
    return run


def read_inventory(settings: Settings) -> tuple[str, list[SourceVM]]:
    from vmwave.adapters.vsphere import inventory

    target = settings.need_vcenter()
    with working(f"reading the inventory of {target.url}: objects") as progress:
        return target.url, inventory(target, progress=progress)


def saved_inventory(path: Path, settings: Settings) -> tuple[str, list[SourceVM]]:
    from vmwave.adapters.documents import read_json
    from vmwave.domain.inventory import parse_inventory

    found = parse_inventory(read_json(path, "inventory", settings.max_file_bytes), str(path))
    return found.source, list(found.vms)


def table(title: str, columns: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
    shown = Table(title=title)
    for column in columns:
        shown.add_column(column)
    for row in rows:
        shown.add_row(*(Text(printable(str(cell))) for cell in row))
    out.print(shown)


def show_summary(summary: dict) -> None:
    table(
        f"{summary['vms']} VMs by priority class ({summary['skipped']} templates skipped)",
        ("class", "title", "mode", "VMs"),
        [(r["class"], r["title"], r["mode"], r["vms"]) for r in summary["classes"]],
    )
    table(
        f"{len(summary['waves'])} waves",
        ("wave", "class", "mode", "VMs", "critical concerns", "window"),
        [(r["id"], r["class"], r["mode"], r["vms"], r["critical"], r["window"]) for r in summary["waves"]],
    )
    if summary["critical_concerns"]:
        table("critical concerns", ("concern", "VMs"), list(summary["critical_concerns"].items()))
