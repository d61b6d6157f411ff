"""What people decide per VM in the plan reaches every object: names, placement, labels from tags, power state."""

import copy

import pytest
import yaml

import schema_check
from helpers import REPO, estate_records
from vmwave.adapters.files import load_policy
from vmwave.domain.build import SourceAccess, vm_objects
from vmwave.domain.rules_file import parse_rules
from vmwave.domain.conversion_pod import conversion_objects
from vmwave.domain.maps import parse_maps
from vmwave.domain.plan import make_plan, parse_plan
from vmwave.errors import InputError

MAPS_DOC = yaml.safe_load((REPO / "lab/estates/small.maps.yaml").read_text())
MAPS = parse_maps(MAPS_DOC, "maps.yaml")
VCENTER = SourceAccess("https://vc.example/sdk", "migrator")
RECORDS = {r.moref: r for r in estate_records()}


@pytest.fixture
def doc():
    return make_plan(RECORDS.values(), load_policy(), MAPS, "estate")


def entry_of(doc, name):
    """A VM's entry in a plan document (the file's dicts)."""
    return next(vm for w in doc["waves"] for vm in w["vms"] if vm["name"] == name)


def read_entry(plan, name):
    """A VM's entry in a read plan (its models), with its wave's id."""
    return next((vm, w.id) for w in plan.waves for vm in w.vms if vm.name == name)


def made(doc, name, maps=MAPS):
    parsed = parse_plan(copy.deepcopy(doc), "plan.yaml")
    entry, wave = read_entry(parsed, name)
    objects = vm_objects(RECORDS[entry.moref], entry, wave, maps, VCENTER)
    if schema_check.available():
        assert [
            p
            for obj in objects.all()
            if obj["kind"] in ("VirtualMachine", "DataVolume")
            for p in schema_check.problems(obj)
        ] == []
    return objects


def test_name_templates_name_the_pvcs_volumes_and_interfaces(doc):
    doc["names"] = {"pvc": "{vm}-{wave}-d{index}", "volume": "root{index}", "interface": "eth{index}"}
    objects = made(doc, "db-01")
    wave = next(w["id"] for w in doc["waves"] if entry_of(doc, "db-01") in w["vms"])
    assert [dv["metadata"]["name"] for dv in objects.datavolumes] == [f"db-01-{wave}-d0", f"db-01-{wave}-d1"]
    spec = objects.virtual_machine["spec"]["template"]["spec"]
    assert [d["name"] for d in spec["domain"]["devices"]["disks"]] == ["root0", "root1"]
    assert [v["dataVolume"]["name"] for v in spec["volumes"]] == [dv["metadata"]["name"] for dv in objects.datavolumes]
    assert {i["name"] for i in spec["domain"]["devices"]["interfaces"]} == {n["name"] for n in spec["networks"]}
    assert spec["networks"][0]["name"] == "eth0"
    claims = [dv["metadata"]["name"] for dv in objects.datavolumes]
    _, pod = conversion_objects(RECORDS[entry_of(doc, "db-01")["moref"]], "db-01", "w004", MAPS, "img", (), {}, claims)
    assert [v["persistentVolumeClaim"]["claimName"] for v in pod["spec"]["volumes"][1:]] == claims


@pytest.mark.parametrize(
    "names,said",
    [
        ({"pvc": "{vm}-disk"}, "must use {index}"),
        ({"volume": "{host}-{index}"}, "may use only"),
        ({"interface": "NIC_{index}"}, "not a Kubernetes name"),
        ({"pvcs": "{vm}{index}"}, "not a known field"),
    ],
)
def test_a_bad_name_template_is_refused_naming_it(doc, names, said):
    doc["names"] = names
    with pytest.raises(InputError, match=said.replace("{", r"\{").replace("}", r"\}")):
        parse_plan(doc, "plan.yaml")


def test_placement_comes_from_the_vm_else_its_wave_else_the_maps(doc):
    maps = parse_maps({**MAPS_DOC, "placement": {"node_selector": {"zone": "a"}}}, "maps.yaml")
    assert made(doc, "db-01", maps).virtual_machine["spec"]["template"]["spec"]["nodeSelector"] == {"zone": "a"}
    wave = next(w for w in doc["waves"] if entry_of(doc, "db-01") in w["vms"])
    wave["node_selector"] = {"zone": "b"}
    assert made(doc, "db-01", maps).virtual_machine["spec"]["template"]["spec"]["nodeSelector"] == {"zone": "b"}
    affinity = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "cpumanager", "operator": "In", "values": ["true"]}]}
                ]
            }
        }
    }
    entry_of(doc, "db-01").update(node_selector={"zone": "c"}, affinity=affinity)
    spec = made(doc, "db-01", maps).virtual_machine["spec"]["template"]["spec"]
    assert spec["nodeSelector"] == {"zone": "c"} and spec["affinity"] == affinity
    entry_of(doc, "db-01")["affinity"] = {"nodeAfinity": {}}
    with pytest.raises(InputError, match="'nodeAfinity' is not part of a Kubernetes Affinity"):
        parse_plan(doc, "plan.yaml")


def test_vsphere_tags_become_labels_through_tag_labels(doc):
    assert entry_of(doc, "web-01")["labels"] == {"app.kubernetes.io/part-of": "shop"}  # built-in rules: app/shop
    assert "labels" not in entry_of(doc, "db-01")  # no tag of a mapped category
    vm = made(doc, "web-01").virtual_machine
    assert vm["metadata"]["labels"]["app.kubernetes.io/part-of"] == "shop"
    assert vm["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/part-of"] == "shop"
    assert vm["metadata"]["labels"]["vmwave.io/wave"]  # vmwave's own labels stay
    with pytest.raises(InputError, match="not a Kubernetes label key"):
        parse_rules({"version": 1, "tag_labels": {"app": "not a key"}}, "rules.yaml")
    entry_of(doc, "db-01")["labels"] = {"tier": "db/primary"}
    with pytest.raises(InputError, match="is not a Kubernetes label"):
        parse_plan(doc, "plan.yaml")


def test_target_power_state_is_on_off_or_as_the_source_was(doc):
    assert read_entry(parse_plan(copy.deepcopy(doc), "plan.yaml"), "db-01")[0].target_power_state == "on"
    entry_of(doc, "db-01")["target_power_state"] = "source"
    assert read_entry(parse_plan(copy.deepcopy(doc), "plan.yaml"), "db-01")[0].target_power_state == "source"
    entry_of(doc, "db-01")["target_power_state"] = "halted"
    with pytest.raises(InputError, match="target_power_state"):
        parse_plan(doc, "plan.yaml")
