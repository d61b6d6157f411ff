"""Planning 2000 VMs: inventory cost against a bare pyvmomi retrieval, planning time, peak memory.

    .venv/bin/python benchmarks/plan_2000.py [--estate FILE] [--repeat N]

Starts the lab vCenter with the estate, measures in one run
(a) a bare PropertyCollector RetrievePropertiesEx of the same VM properties (baseline),
(b) vmwave's inventory (the same call plus hosts/folders/portgroups, turned into records,
    and the vSphere tags from the REST API); both include the login,
(c) concerns + classes + waves, without plugins,
(d) the same with every built-in guest-OS plugin asked about each VM (tool, concerns, preparation),
and prints as its last line:
    vms=N inventory_ratio=<b/a> plan_seconds=<c> plugins_ratio=<d/c> peak_rss_mb=<n>
Each figure is the best of --repeat runs.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

from pyVmomi import vim, vmodl

from vmwave.adapters.vsphere import VM_PROPERTIES, connect, inventory
from vmwave.settings import VCenter
from vmwave.domain.waves import build_plan
from vmwave.adapters.files import load_maps, load_policy
from vmwave.plugins import for_planning
from vmwave_lab import estate, vcenter

REPO = Path(__file__).resolve().parent.parent


def bare_retrieval(si) -> int:
    """What a hand-written script does: one ContainerView, one paged retrieval, no records."""
    content = si.RetrieveContent()
    view = content.viewManager.CreateContainerView(content.rootFolder, [vim.VirtualMachine], True)
    pc = vmodl.query.PropertyCollector
    spec = pc.FilterSpec(
        objectSet=[
            pc.ObjectSpec(
                obj=view, skip=True, selectSet=[pc.TraversalSpec(name="v", path="view", type=vim.view.ContainerView)]
            )
        ],
        propSet=[pc.PropertySpec(type=vim.VirtualMachine, pathSet=VM_PROPERTIES)],
    )
    result = content.propertyCollector.RetrievePropertiesEx([spec], pc.RetrieveOptions(maxObjects=500))
    count = 0
    while result is not None:
        count += len(result.objects)
        result = content.propertyCollector.ContinueRetrievePropertiesEx(result.token) if result.token else None
    view.Destroy()
    return count


def best(repeat: int, fn):
    times, value = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - start)
    return min(times), value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--estate", default=str(REPO / "examples/estate-2000.yaml"))
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as state:
        seed = estate.load(args.estate)
        lab = vcenter.start(seed, Path(state))
        try:
            target = VCenter(url=lab.url, user=lab.user, password_file=lab.password_file, ca_file=lab.ca_file)

            def bare() -> int:
                with connect(target) as si:
                    return bare_retrieval(si)

            baseline, count = best(args.repeat, bare)
            ours, records = best(args.repeat, lambda: inventory(target))
        finally:
            vcenter.stop(Path(state))
    policy, maps = load_policy(), load_maps(REPO / "examples/estate-2000.maps.yaml")
    planning, plan = best(args.repeat, lambda: build_plan(records, policy, maps))
    with_plugins, _ = best(args.repeat, lambda: build_plan(records, policy, maps, **for_planning()))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"lab seeded {len(seed['vms'])} VMs in {lab.info['seed_seconds']:.2f}s")
    print(f"bare retrieval: {count} VMs in {baseline:.3f}s")
    print(f"vmwave inventory: {len(records)} records in {ours:.3f}s")
    print(f"plan: {len(plan.planned)} VMs in {len(plan.waves)} waves in {planning:.3f}s")
    print(f"plan with the built-in plugins: {with_plugins:.3f}s")
    print(
        f"vms={len(records)} inventory_ratio={ours / baseline:.2f} plan_seconds={planning:.3f} "
        f"plugins_ratio={with_plugins / planning:.2f} peak_rss_mb={peak:.0f}"
    )


if __name__ == "__main__":
    main()
