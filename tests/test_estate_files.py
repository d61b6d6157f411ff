"""Estate files: every kind of mistake is named with its field and fix; the examples are valid."""

import pytest
import yaml

from vmwave_lab.estate import EstateError, expand, generated, load, load_nodes
from helpers import REPO

BASE = """
version: 1
datacenters:
  - name: dc
    datastores: [ds1]
    portgroups: [{name: pg1, vlan: 10}]
    clusters: [{name: c1, hosts: 2}]
vms:
  - {name: "vm-{n}", count: 3, disks: [{size_gb: 1}], nics: [{portgroup: pg1}]}
"""


def test_count_stamps_out_vms_with_unique_macs_and_round_robin_hosts():
    seed = expand(yaml.safe_load(BASE))
    assert [v["name"] for v in seed["vms"]] == ["vm-1", "vm-2", "vm-3"]
    assert [v["host"] for v in seed["vms"]] == ["c1-esx01", "c1-esx02", "c1-esx01"]
    assert len({v["nics"][0]["mac"] for v in seed["vms"]}) == 3


@pytest.mark.parametrize(
    "change,field,fix",
    [
        ("version: 1", "datacenters", "add at least one"),
        (BASE.replace("portgroup: pg1", "portgroup: pg9"), "vms[0].nics[0].portgroup", "declare it"),
        (BASE.replace("size_gb: 1", "size_gb: 1, controller: scsi"), "vms[0].disks[0].controller", "use one of"),
        (BASE.replace("count: 3", "count: 3, power: off"), "vms[0].power", "quote it"),
        (BASE.replace("count: 3", "count: 3, colour: red"), "vms[0].colour", "use one of"),
        (BASE.replace('"vm-{n}", count: 3', '"vm", count: 2'), "vms[0].name", "{n}"),
        (BASE.replace("count: 3", "count: 3, secure_boot: true"), "vms[0].secure_boot", "firmware: efi"),
        (BASE.replace("count: 3", "count: 3, cluster: c2"), "vms[0].cluster", "declare it"),
    ],
)
def test_estate_errors_name_field_and_fix(change, field, fix):
    with pytest.raises(EstateError) as caught:
        expand(yaml.safe_load(change), "estate.yaml")
    assert str(caught.value).startswith(f"estate.yaml: {field}: ") and fix in str(caught.value)


def test_examples_are_valid_and_the_big_one_is_seed_shaped():
    seed = load(str(REPO / "examples/estate-2000.yaml"))
    vms = seed["vms"]
    assert len(vms) == 2000
    windows = sum(v["guest_id"].startswith("windows") for v in vms)
    assert 0.1 * 2000 < windows < 0.3 * 2000
    assert sum(v["power"] == "poweredOff" for v in vms) > 300
    assert sum(any(d["sharing"] for d in v["disks"]) for v in vms) >= 4
    assert sum(v["firmware"] == "efi" for v in vms) > 100
    assert sum(v["template"] for v in vms) >= 3
    assert {n["portgroup"] for v in vms for n in v["nics"]} >= {"pg-vlan100", "pg-vlan200"}
    assert len(expand(generated(2000))["vms"]) == 2000


def test_nodes_for_the_lab_cluster():
    seed = expand(
        yaml.safe_load(
            BASE + "nodes: [{name: n1, cpu: 8, memory_gi: 32, hugepages_1gi: 4, labels: {cpumanager: 'true'}}]"
        )
    )
    assert seed["nodes"] == [
        {"name": "n1", "cpu": 8, "memory_gi": 32, "hugepages_1gi": 4, "labels": {"cpumanager": "true"}}
    ]
    assert expand(yaml.safe_load(BASE))["nodes"] is None
    with pytest.raises(EstateError, match=r"nodes\[0\].cpu: is missing"):
        expand(yaml.safe_load(BASE + "nodes: [{name: n1, memory_gi: 32}]"), "estate.yaml")


def test_nodes_alone_size_a_lab_as_the_real_cluster(tmp_path):
    given = tmp_path / "nodes.yaml"
    given.write_text("version: 1\nnodes: [{name: db-1, cpu: 96, memory_gi: 768, hugepages_1gi: 512}]\n")
    assert load_nodes(str(given)) == [{"name": "db-1", "cpu": 96, "memory_gi": 768, "hugepages_1gi": 512, "labels": {}}]
    given.write_text("version: 1\nnodes: []\n")
    with pytest.raises(EstateError, match="declares no nodes"):
        load_nodes(str(given))
    given.write_text("version: 1\nvms: []\n")
    with pytest.raises(EstateError, match="vms"):  # a nodes file holds nodes only
        load_nodes(str(given))
