"""`vmwave lab` and `vmwave rehearse` where the lab is not installed: they say where it is, not "no such command"."""

from __future__ import annotations

import typer

from vmwave.cli.common import app
from vmwave.errors import VmwaveError

ANYTHING = {"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []}


def _missing() -> None:
    raise VmwaveError(
        "the lab is not installed: it is a distribution of its own, vmwave-lab",
        "pip install vmwave-lab (from a checkout of vmwave: pip install ./lab, or ./dev setup)",
    )


@app.command("lab", context_settings=ANYTHING, hidden=True)
def lab(ctx: typer.Context) -> None:
    """The lab (vmwave-lab, not installed)."""
    _missing()


@app.command("rehearse", context_settings=ANYTHING, hidden=True)
def rehearse(ctx: typer.Context) -> None:
    """A whole-estate rehearsal on the lab (vmwave-lab, not installed)."""
    _missing()
