"""What a Prefect global concurrency limit costs a wave: the same holds with and without one.

    .venv/bin/python benchmarks/concurrency_limits.py [--holds 50] [--slots 10]

`holds` tasks on a 10-thread runner each hold for one second, first bare (the baseline), then inside
`concurrency()` on a host and a datastore limit of `slots`, as a wave's VMs do. Last line:
    holds=N slots=S bare_seconds=<a> limited_seconds=<b> ratio=<b/a> mean_acquire_seconds=<c>
"""

from __future__ import annotations

import argparse
import os
import time

HOLD_SECONDS = 1.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--holds", type=int, default=50)
    parser.add_argument("--slots", type=int, default=10)
    args = parser.parse_args()
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    from prefect import flow, get_client, task
    from prefect.cache_policies import NONE
    from prefect.concurrency.sync import concurrency
    from prefect.task_runners import ThreadPoolTaskRunner
    from prefect.testing.utilities import prefect_test_harness

    names = ["bench-host", "bench-datastore"]

    @task(cache_policy=NONE, persist_result=False)
    def hold(limited: bool) -> float:
        started = time.perf_counter()
        if not limited:
            time.sleep(HOLD_SECONDS)  # the work a VM would do
            return 0.0
        with concurrency(names, occupy=1, lease_duration=60):
            waited = time.perf_counter() - started
            time.sleep(HOLD_SECONDS)
        return waited

    @flow(task_runner=ThreadPoolTaskRunner(max_workers=10))
    def run(limited: bool) -> tuple[float, float]:
        started = time.perf_counter()
        waits = [f.result() for f in [hold.submit(limited) for _ in range(args.holds)]]
        return time.perf_counter() - started, sum(waits) / len(waits)

    with prefect_test_harness(server_startup_timeout=120):
        with get_client(sync_client=True) as client:
            for name in names:
                client.upsert_global_concurrency_limit_by_name(name, args.slots)
        bare, _ = run(False)
        limited, acquire = run(True)
    print(
        f"holds={args.holds} slots={args.slots} bare_seconds={bare:.1f} limited_seconds={limited:.1f} "
        f"ratio={limited / bare:.2f} mean_acquire_seconds={acquire:.2f}"
    )


if __name__ == "__main__":
    main()
