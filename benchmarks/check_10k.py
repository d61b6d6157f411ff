"""`vmwave check` of a 10,000-VM plan: the whole command, as a person runs it after an edit.

    .venv/bin/python benchmarks/check_10k.py [--scale 5] [--repeat 3]

Plans the example estate (examples/estate-2000.yaml) with every VM count
multiplied by --scale (5: 10,000 VMs) and the built-in rules and plugins,
writes the plan, then measures in one run
(a) `vmwave check PLAN` as a subprocess: start-up, reading, every check, the summary;
(b) the baseline: PyYAML's libyaml loader (``yaml.CSafeLoader``) reading the same file, no checks.
and prints as its last line:
    vms=N check_seconds=<a> peak_rss_mb=<of a> baseline_seconds=<b> check_vs_baseline=<a/b>
Each time is the best of --repeat runs. Target: check_seconds < 2.
"""

from __future__ import annotations

import argparse
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))  # the estate's records without a vCenter, as the tests make them

from helpers import VMWAVE, estate_records  # noqa: E402

from vmwave.adapters.files import load_maps, load_policy, write_plan  # noqa: E402
from vmwave.domain.plan import make_plan  # noqa: E402
from vmwave.plugins import for_planning  # noqa: E402


def scaled_estate(scale: int, out: Path) -> Path:
    estate = yaml.safe_load((REPO / "examples/estate-2000.yaml").read_text())
    for vm in estate["vms"]:
        vm["count"] = vm.get("count", 1) * scale
        vm["name"] = re.sub(r"\{n(:0?\d+d)?\}", "{n:05d}", vm["name"]) if "{n" in vm["name"] else vm["name"] + "-{n}"
    out.write_text(yaml.safe_dump(estate, sort_keys=False))
    return out


def best(repeat: int, fn) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        records = estate_records(scaled_estate(args.scale, Path(folder) / "estate.yaml"))
        plan = Path(folder) / "plan.yaml"
        write_plan(
            make_plan(
                records, load_policy(), load_maps(REPO / "examples/estate-2000.maps.yaml"), "lab", **for_planning()
            ),
            plan,
        )
        size_mb = plan.stat().st_size / 1e6

        def check() -> None:
            subprocess.run([VMWAVE, "check", str(plan)], check=True, capture_output=True)

        checking = best(args.repeat, check)
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        text = plan.read_text()
        baseline = best(args.repeat, lambda: yaml.load(text, Loader=yaml.CSafeLoader))
    print(f"plan: {len(records)} VMs, {size_mb:.1f} MB")
    print(f"vmwave check: {checking:.3f}s (the whole command)")
    print(f"PyYAML CSafeLoader alone: {baseline:.3f}s")
    print(
        f"vms={len(records)} check_seconds={checking:.3f} peak_rss_mb={peak:.0f} baseline_seconds={baseline:.3f} "
        f"check_vs_baseline={checking / baseline:.2f}"
    )


if __name__ == "__main__":
    main()
