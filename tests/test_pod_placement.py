"""Where conversion pods run and which network importers copy over: from the maps, overridden per wave or VM."""

import pytest
import yaml

import schema_check
from helpers import REPO, planned_entry
from test_manifests import HTTPS, vm
from vmwave.domain.build import vm_objects
from vmwave.domain.conversion_pod import conversion_objects
from vmwave.domain.maps import parse_maps
from vmwave.domain.plan_file import PLAN_SCHEMA, parse_plan
from vmwave.domain.pod_placement import TRANSFER_NETWORK_ANNOTATION
from vmwave.errors import InputError

MAPS_DOC = {
    **yaml.safe_load((REPO / "examples/estate-2000.maps.yaml").read_text()),
    "conversion_pods": {
        "node_selector": {"vmwave.io/converter": "true"},
        "tolerations": [{"key": "dedicated", "value": "migration", "effect": "NoSchedule"}],
        "labels": {"cost-center": "migration"},
        "scratch": {"storage_class": "local-nvme", "size": "50Gi"},
    },
    "transfer_network": "vmwave/storage-net",
}
MAPS = parse_maps(MAPS_DOC, "maps.yaml")


def pod_of(entry):
    return conversion_objects(
        vm(),
        "orders-db",
        "w007",
        MAPS,
        "quay.io/kubev2v/forklift-virt-v2v:v2.8",
        (),
        {},
        ["orders-db-disk0", "orders-db-disk1"],
        placement=entry.conversion_pods or MAPS.conversion_pods,
    )[1]


def test_the_maps_place_conversion_pods_and_give_importers_the_transfer_network():
    entry = planned_entry(vm(), target_name="orders-db")
    pod = pod_of(entry)
    spec = pod["spec"]
    assert spec["nodeSelector"] == {"vmwave.io/converter": "true"}
    assert spec["tolerations"] == [
        {"key": "dedicated", "operator": "Equal", "value": "migration", "effect": "NoSchedule"}
    ]
    assert pod["metadata"]["labels"]["cost-center"] == "migration"
    assert pod["metadata"]["labels"]["app.kubernetes.io/component"] == "guest-conversion"  # vmwave's own stay
    scratch = next(v for v in spec["volumes"] if v["name"] == "scratch")
    claim = scratch["ephemeral"]["volumeClaimTemplate"]["spec"]
    assert (claim["storageClassName"], claim["resources"]["requests"]["storage"]) == ("local-nvme", "50Gi")
    container = spec["containers"][0]
    assert {"name": "scratch", "mountPath": "/var/tmp"} in container["volumeMounts"]
    assert {"name": "TMPDIR", "value": "/var/tmp"} in container["env"]
    assert schema_check.kubernetes_problems(pod) == []
    for dv in vm_objects(vm(), entry, "w007", MAPS, HTTPS).datavolumes:
        assert dv["metadata"]["annotations"][TRANSFER_NETWORK_ANNOTATION] == "vmwave/storage-net"
        if schema_check.available():
            assert schema_check.problems(dv) == []


def test_a_wave_or_vm_of_the_plan_places_its_own():
    own = {
        "conversion_pods": {"node_selector": {"zone": "b"}, "affinity": {"nodeAffinity": {}}},
        "transfer_network": "vmwave/fast",
    }
    plan = parse_plan(
        {
            "schema": PLAN_SCHEMA,
            "limits": {"wave_size": 50, "per_host": 10},
            "waves": [
                {
                    "id": "w001",
                    "class": "P3",
                    "transfer_network": "vmwave/wave-net",
                    "vms": [{"name": "a", "moref": "vm-1", **own}, {"name": "b", "moref": "vm-2"}],
                }
            ],
        },
        "plan.yaml",
    )
    first, second = plan.waves[0].vms
    spec = pod_of(first)["spec"]
    assert spec["nodeSelector"] == {"zone": "b"} and spec["affinity"] == {"nodeAffinity": {}}
    assert "tolerations" not in spec and not any(v["name"] == "scratch" for v in spec["volumes"])
    assert pod_of(second)["spec"]["nodeSelector"] == {"vmwave.io/converter": "true"}  # the maps'
    assert (first.transfer_network, second.transfer_network) == ("vmwave/fast", "vmwave/wave-net")
    dv = vm_objects(vm(), second, "w001", MAPS, HTTPS).datavolumes[0]
    assert dv["metadata"]["annotations"][TRANSFER_NETWORK_ANNOTATION] == "vmwave/wave-net"


def test_a_rebuild_copies_nothing_so_its_volumes_join_no_transfer_network():
    from dataclasses import replace

    images = replace(MAPS, images=(("rhel8_64Guest", "docker://registry.example/rhel8:latest"),))
    made = vm_objects(vm(), planned_entry(vm(), mode="rebuild"), "w002", images, HTTPS)
    assert all(TRANSFER_NETWORK_ANNOTATION not in (dv["metadata"].get("annotations") or {}) for dv in made.datavolumes)


@pytest.mark.parametrize(
    "change,field,fix",
    [
        ({"transfer_network": "storage-net"}, "transfer_network", "namespace/name"),
        ({"conversion_pods": {"labels": {"vmwave.io/wave": "x"}}}, "conversion_pods.labels", "outside vmwave.io/"),
        ({"conversion_pods": {"node_selector": {"bad key!": "x"}}}, "conversion_pods.node_selector", "[prefix/]name"),
        (
            {"conversion_pods": {"tolerations": [{"effect": "Never"}]}},
            "conversion_pods.tolerations[0].effect",
            "NoSchedule",
        ),
        (
            {"conversion_pods": {"scratch": {"storage_class": "fast", "size": "lots"}}},
            "conversion_pods.scratch.size",
            "",
        ),
        ({"conversion_pods": {"affinity": {"nodeAfinity": {}}}}, "conversion_pods.affinity", "nodeAffinity"),
        ({"conversion_pods": {"nodeSelector": {}}}, "conversion_pods.nodeSelector", "node_selector"),
    ],
)
def test_a_wrong_placement_is_one_error_with_its_field_and_fix(change, field, fix):
    with pytest.raises(InputError) as caught:
        parse_maps({"version": 1, **change}, "maps.yaml")
    assert caught.value.field.startswith(field) and fix in str(caught.value)
