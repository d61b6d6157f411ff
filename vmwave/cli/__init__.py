"""The `vmwave` command, one module per command group; `vmwave lab` only where the lab is installed."""

from __future__ import annotations

import sys

from vmwave.cli import bundle, cluster, notify, observe, planning, plugins, preflight, secrets, waves  # noqa: F401 - each registers its commands on the app
from vmwave.cli.common import app, err, styled
from vmwave.errors import VmwaveError

try:
    from vmwave.cli import lab, rehearse  # noqa: F401
except ModuleNotFoundError as missing:  # a product install without the lab: every other command works
    if not (missing.name or "").startswith("vmwave_lab"):
        raise
    from vmwave.cli import no_lab  # noqa: F401 - `vmwave lab` says how to get it


def main() -> None:
    """Entry point: known failures become one line on stderr and exit code 2, never a traceback."""
    try:
        app()
    except VmwaveError as exc:
        err.print(styled(("error:", "bold red"), f" {exc}"))
        sys.exit(2)


if __name__ == "__main__":
    main()
