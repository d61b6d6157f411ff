"""`vmwave exporter`: the migration metrics for Prometheus, read from the ledger at each scrape."""

from __future__ import annotations

import signal
import threading
from typing import Optional

import typer

from vmwave.cli.common import LEDGER, app, err


@app.command()
def exporter(
    port: Optional[int] = typer.Option(
        None, "--port", min=1, max=65535, help="TCP port of /metrics [env VMWAVE_EXPORTER_PORT, 9750]"
    ),
    listen: str = typer.Option("0.0.0.0", "--listen", help="address to listen on (127.0.0.1: this machine only)"),
    ledger: Optional[str] = LEDGER,
) -> None:
    """Serve /metrics for Prometheus from the ledger: waves, VMs by state, steps, failures, bytes imported."""
    from prometheus_client import start_http_server

    from vmwave.adapters.ledger import Ledger
    from vmwave.adapters.metrics import registry
    from vmwave.domain.steps import BOOT, CDI_IMPORT, CONVERT, GUEST_AGENT
    from vmwave.errors import VmwaveError
    from vmwave.settings import Settings

    settings = Settings.load(ledger=ledger, exporter_port=port)
    timeouts = settings.timeouts
    deadlines = {
        CONVERT: timeouts.convert,
        CDI_IMPORT: timeouts.import_,
        BOOT: timeouts.boot,
        GUEST_AGENT: timeouts.agent,
    }
    try:
        server, _ = start_http_server(settings.exporter_port, listen, registry(Ledger(settings.ledger), deadlines))
    except OSError as exc:
        raise VmwaveError(
            f"cannot listen on {listen}:{settings.exporter_port}: {exc.strerror}",
            "pick a free port with --port or VMWAVE_EXPORTER_PORT",
        ) from None
    err.print(f"serving the ledger's metrics on http://{listen}:{settings.exporter_port}/metrics")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    server.shutdown()
