"""`vmwave secrets set`: the vCenter password and the kubeconfig as Prefect Secret blocks, read from files."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from vmwave.cli.common import app, err

secrets = typer.Typer(
    help="Credentials as Prefect Secret blocks that deployments name in their parameters.", no_args_is_help=True
)
app.add_typer(secrets, name="secrets")
KINDS = ("vcenter", "kubeconfig")


@secrets.command("set")
def set_(
    kind: str = typer.Argument(..., help="vcenter (its password) or kubeconfig"),
    password_file: Optional[Path] = typer.Option(
        None, "--password-file", help="vcenter: the file holding the password"
    ),
    file: Optional[Path] = typer.Option(None, "--file", help="kubeconfig: the kubeconfig file"),
    name: Optional[str] = typer.Option(None, "--name", help="the block's name [vmwave-vcenter, vmwave-kubeconfig]"),
) -> None:
    """Save a credential as a Prefect Secret block; a secret is never taken on the command line."""
    from vmwave.adapters.prefect_api.secrets import BLOCKS, set_secret
    from vmwave.errors import InputError

    if kind not in KINDS:
        raise InputError(
            "vmwave secrets set",
            "kind",
            f"{kind!r} is not a credential vmwave keeps",
            "use: vmwave secrets set vcenter --password-file F, or kubeconfig --file F",
        )
    source = password_file if kind == "vcenter" else file
    if source is None:
        raise InputError(
            "vmwave secrets set",
            kind,
            "no file given",
            "--password-file FILE" if kind == "vcenter" else "--file KUBECONFIG",
        )
    block = name or BLOCKS[kind]
    set_secret(block, source, one_line=kind == "vcenter")
    parameter = "vcenter_secret_block" if kind == "vcenter" else "kubeconfig_secret_block"
    err.print(f"Secret block {block!r} set from {source}; name it in a run: --param {parameter}={block}")
