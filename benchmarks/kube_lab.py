"""The lab Kubernetes under 2000 VMs' worth of objects: create rate and watch latency.

    .venv/bin/python benchmarks/kube_lab.py [--objects N]

Creates N ConfigMaps with the official client while a watch follows them,
and prints the create rate of the first and the last tenth (their ratio
shows whether the API slows down as it fills), then as its last line:
    objects=N create_per_s=<n> watch_latency_ms=<p99>
(watch latency: from the create's response to the watch event's arrival).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from pathlib import Path

from kubernetes import client, config
from kubernetes.dynamic import DynamicClient

from vmwave_lab import kubernetes as lab_kube


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=10000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as state_dir:
        state = Path(state_dir)
        lab = lab_kube.start(state)
        try:
            api = config.new_client_from_config(str(lab.kubeconfig))
            core = client.CoreV1Api(api)
            core.create_namespace({"metadata": {"name": "bench"}})
            start_version = core.list_namespaced_config_map("bench").metadata.resource_version
            arrived: dict[str, float] = {}
            all_seen = threading.Event()

            def follow() -> None:
                watcher = DynamicClient(config.new_client_from_config(str(lab.kubeconfig)))
                configmaps = watcher.resources.get(api_version="v1", kind="ConfigMap")
                for event in watcher.watch(configmaps, namespace="bench", resource_version=start_version, timeout=600):
                    arrived[event["raw_object"]["metadata"]["name"]] = time.perf_counter()
                    if len(arrived) >= args.objects:
                        all_seen.set()
                        return

            thread = threading.Thread(target=follow, daemon=True)
            thread.start()
            created: dict[str, float] = {}
            stamps = []
            began = time.perf_counter()
            for i in range(args.objects):
                name = f"vm-{i:05d}"
                core.create_namespaced_config_map(
                    "bench",
                    {"metadata": {"name": name, "labels": {"wave": f"w{i // 50:03d}"}}, "data": {"disk0": "x" * 200}},
                )
                created[name] = time.perf_counter()
                stamps.append(created[name])
            total = time.perf_counter() - began
            all_seen.wait(timeout=120)
        finally:
            lab_kube.stop(state)
    tenth = max(1, args.objects // 10)
    first_rate = tenth / (stamps[tenth - 1] - began)
    last_rate = tenth / (stamps[-1] - stamps[-tenth - 1])
    latencies = sorted((arrived[n] - created[n]) * 1000 for n in created if n in arrived)
    p99 = latencies[int(len(latencies) * 0.99) - 1] if latencies else float("nan")
    print(
        f"first {tenth} creates: {first_rate:.0f}/s, last {tenth}: {last_rate:.0f}/s "
        f"(last/first = {last_rate / first_rate:.2f})"
    )
    print(
        f"watch events received: {len(latencies)}/{args.objects}, median latency {statistics.median(latencies):.1f} ms"
    )
    print(f"objects={args.objects} create_per_s={args.objects / total:.0f} watch_latency_ms={p99:.1f}")


if __name__ == "__main__":
    main()
