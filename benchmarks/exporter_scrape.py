"""What one Prometheus scrape of `vmwave exporter` costs against the ledger read it cannot avoid.

    .venv/bin/python benchmarks/exporter_scrape.py [--vms 2000] [--waves 40]

A SQLite ledger holds `vms` VMs in `waves` waves, each through the seven steps, as the seed's estate
would after its migration. The baseline reads every row (`Ledger.rows`, what any scrape must do);
then whole scrapes render every family from the same ledger. Last line:
    vms=N rows=R read_seconds=<a> scrape_seconds=<b> ratio=<b/a> bytes=<size of one scrape>
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from prometheus_client import generate_latest
from sqlalchemy import insert

from vmwave.adapters.ledger import Ledger, steps, waves
from vmwave.adapters.metrics import registry
from vmwave.domain.steps import PIPELINE

ROUNDS = 5


def fill(ledger: Ledger, vms: int, wave_count: int) -> int:
    """Every VM through every step in one transaction per wave (the steps' own calls would take minutes)."""
    start = datetime(2026, 12, 1, tzinfo=timezone.utc)
    per_wave = vms // wave_count
    rows = 0
    with ledger.engine.begin() as conn:
        for w in range(wave_count):
            wave = f"w{w + 1:03d}"
            members = {f"vm-{w}-{n}": "P3" for n in range(per_wave)}
            conn.execute(
                insert(waves).values(
                    wave=wave,
                    cls="P3",
                    mode="cold",
                    members=members,
                    started_at=start,
                    finished_at=start + timedelta(hours=2),
                )
            )
            batch = [
                {
                    "wave": wave,
                    "moref": moref,
                    "step": step,
                    "vm": moref,
                    "status": "succeeded",
                    "attempt": 1,
                    "started_at": start + timedelta(seconds=30 * i),
                    "finished_at": start + timedelta(seconds=30 * i + 25),
                    "bytes": 40 << 30 if step == "cdi-import" else 0,
                    "error": "",
                    "cause": "",
                    "detail": {},
                }
                for moref in members
                for i, step in enumerate(PIPELINE)
            ]
            conn.execute(insert(steps), batch)
            rows += len(batch)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vms", type=int, default=2000)
    parser.add_argument("--waves", type=int, default=40)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ledger = Ledger(f"sqlite:///{Path(tmp) / 'ledger.db'}")
        rows = fill(ledger, args.vms, args.waves)
        scrape = registry(ledger, {"convert": 7200.0})
        read = time.perf_counter()
        for _ in range(ROUNDS):
            ledger.rows()
        read = (time.perf_counter() - read) / ROUNDS
        took = time.perf_counter()
        for _ in range(ROUNDS):
            text = generate_latest(scrape)
        took = (time.perf_counter() - took) / ROUNDS
    print(
        f"vms={args.vms} rows={rows} read_seconds={read:.3f} scrape_seconds={took:.3f} ratio={took / read:.2f} "
        f"bytes={len(text)}"
    )


if __name__ == "__main__":
    main()
