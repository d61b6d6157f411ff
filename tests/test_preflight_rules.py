"""The preflight's arithmetic: what a VM takes from a node, what a node has left, what a wave adds to a quota."""

from decimal import Decimal

from vmwave.domain.preflight import GI, Usage, fit_problem, need_of, place, quantity, quota_problems, rooms


def vm(name, cores=2, memory="4Gi", dedicated=False, hugepages=False, selector=None):
    domain = {
        "cpu": {"cores": cores, **({"dedicatedCpuPlacement": True} if dedicated else {})},
        "memory": {"guest": memory, **({"hugepages": {"pageSize": "1Gi"}} if hugepages else {})},
    }
    return {
        "metadata": {"name": name},
        "spec": {"template": {"spec": {"domain": domain, "nodeSelector": selector or {}}}},
    }


def node(name, cpu="16", memory="64Gi", huge="0", labels=None, ready="True", unschedulable=False):
    return {
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {"unschedulable": unschedulable},
        "status": {
            "allocatable": {"cpu": cpu, "memory": memory, "hugepages-1Gi": huge},
            "conditions": [{"type": "Ready", "status": ready}],
        },
    }


def test_quantities_read_as_kubernetes_writes_them():
    assert quantity("512Mi") == 512 * 2**20 and quantity("500m") == Decimal("0.5") and quantity("2") == 2
    assert quantity("1.5Gi") == Decimal("1.5") * GI and quantity(None) == 0


def test_a_vm_requests_a_tenth_of_a_core_per_vcpu_unless_dedicated_and_hugepages_instead_of_memory():
    plain = need_of("a", vm("a", cores=4))
    assert (plain.cpu, plain.memory, plain.hugepages) == (Decimal("0.4"), 4 * GI, 0)
    pinned = need_of("b", vm("b", cores=4, dedicated=True, hugepages=True))
    assert (pinned.cpu, pinned.memory, pinned.hugepages, pinned.dedicated) == (4, 0, 4 * GI, True)


def test_room_counts_pods_and_running_vms_once_and_skips_nodes_that_cannot_run_vms():
    pods = [
        {
            "metadata": {"name": "p"},
            "spec": {"nodeName": "n1", "containers": [{"resources": {"requests": {"cpu": "2", "memory": "8Gi"}}}]},
            "status": {"phase": "Running"},
        },
        {
            "metadata": {"name": "launcher", "labels": {"kubevirt.io": "virt-launcher"}},  # counted as its VMI
            "spec": {"nodeName": "n1", "containers": [{"resources": {"requests": {"memory": "4Gi"}}}]},
        },
        {
            "metadata": {"name": "done"},
            "spec": {"nodeName": "n1", "containers": [{"resources": {"requests": {"memory": "30Gi"}}}]},
            "status": {"phase": "Succeeded"},
        },
    ]
    running = [
        {
            "metadata": {"name": "vmi"},
            "spec": vm("vmi")["spec"]["template"]["spec"],
            "status": {"nodeName": "n1", "phase": "Running"},
        }
    ]
    found = rooms([node("n1"), node("down", ready="False"), node("cordoned", unschedulable=True)], pods, running)
    assert [(r.name, r.cpu, r.memory) for r in found] == [("n1", Decimal("13.8"), 52 * GI)]


def test_a_wave_is_placed_largest_first_and_what_fits_nowhere_is_one_problem():
    free = rooms(
        [node("small", memory="8Gi"), node("db", memory="64Gi", huge="32Gi", labels={"cpumanager": "true"})], [], []
    )
    needs = [
        need_of(n, v)
        for n, v in [
            ("web", vm("web", memory="6Gi")),
            ("db", vm("db", memory="24Gi", dedicated=True, hugepages=True)),
            ("big", vm("big", memory="100Gi")),
            ("zone", vm("zone", selector={"z": "b"})),
        ]
    ]
    unplaced = place(free, needs)
    assert sorted(n.vm for n in unplaced) == ["big", "zone"]
    assert free[1].hugepages == 8 * GI  # the next wave sees what this one took
    problem = fit_problem("w001", unplaced, len(needs), free)
    assert problem.wave == "w001" and "2 of its 4 VMs fit on no node" in problem.what and "add nodes" in problem.fix
    assert fit_problem("w001", [], 4, free) is None


def test_a_quota_is_a_problem_only_where_the_wave_would_pass_it():
    quotas = [
        {
            "metadata": {"name": "q"},
            "spec": {"hard": {"requests.storage": "100Gi", "pods": "10"}},
            "status": {"hard": {"requests.storage": "100Gi", "pods": "10"}, "used": {"requests.storage": "90Gi"}},
        }
    ]
    adds = Usage().add("requests.storage", 20 * GI).add("pods", Decimal(3))
    [problem] = quota_problems("w002", "vmwave", quotas, adds)
    assert "allows requests.storage 100Gi; 90.0 GiB is used and the wave needs 20.0 GiB more" in problem.what
    assert "at least 110.0 GiB" in problem.fix
