"""`vmwave notify set`: Prefect automations that call a webhook when a wave needs a person."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from vmwave.cli.common import app, err

notify = typer.Typer(help="Notifications through Prefect automations and a Webhook block.", no_args_is_help=True)
app.add_typer(notify, name="notify")


@notify.command("set")
def set_(
    webhook_block: str = typer.Option(..., "--webhook-block", help="the Prefect Webhook block to call"),
    url_file: Optional[Path] = typer.Option(
        None, "--url-file", help="make or update the block from the webhook URL in this file (it holds a token)"
    ),
    running_longer_than: Optional[float] = typer.Option(
        None,
        "--running-longer-than",
        min=60,
        help="seconds a wave run may stay Running [the sum of the steps' timeouts, VMWAVE_TIMEOUTS]",
    ),
) -> None:
    """Tell the platform team, through the webhook, when a wave run fails, a P5 migration waits for approval, a
    window ends with VMs not cut over, or a wave run stays Running past its steps' timeouts (replaces vmwave's
    earlier automations)."""
    from vmwave.adapters.documents import read_secret
    from vmwave.adapters.prefect_api.notifications import set_notifications
    from vmwave.settings import Settings

    url = read_secret(url_file, "webhook URL") if url_file is not None else None
    limit = running_longer_than or Settings.load().timeouts.until_verified
    for name in set_notifications(webhook_block, limit, url):
        err.print(f"automation {name!r} calls Webhook block {webhook_block!r}")
