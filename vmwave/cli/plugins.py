"""`vmwave plugins list`: every guest-OS plugin, built-in or installed, what it implements, and which are broken."""

from __future__ import annotations

import typer

from vmwave.cli.common import app, table

plugins_app = typer.Typer(help="Guest-OS plugins: built-in and installed (entry points of the group `vmwave`).")
app.add_typer(plugins_app, name="plugins")


@plugins_app.command("list")
def list_plugins() -> None:
    """Each plugin with its distribution and version and the hooks it implements; exits 1 when one is broken."""
    from vmwave.hookspecs import HOOK_API_VERSION
    from vmwave.plugins import loaded
    from vmwave.settings import Settings

    _, infos = loaded(Settings.load().disable_plugins)
    table(
        f"{len(infos)} plugins (hook API {HOOK_API_VERSION})",
        ("plugin", "from", "distribution", "hooks", "state"),
        [
            (
                i.name,
                i.source,
                f"{i.distribution} {i.version}",
                ", ".join(i.hooks),
                "disabled" if i.disabled else f"broken: {i.error}" if i.error else "ok",
            )
            for i in infos
        ],
    )
    if any(i.error for i in infos):
        raise typer.Exit(1)
