"""The fuzz tier: every file vmwave reads, valid and mutated, ends in a valid value or one clear error.

Each case starts from a valid file (a plan of the small estate, the built-in
rules, the small maps, an inventory) and mutates it as a person or an
attacker might: a value replaced by another type, a huge number, a hostile
string (paths, newlines, markup, terminal escapes, shell, other scripts), a
field removed or one added. Reading it, and planning what was read, must
return or raise vmwave's ``InputError`` naming the file, a field and a fix:
never another exception. Text-level attacks (aliases, deep nesting, bytes
that are not UTF-8, size) are checked on their own, with a time bound.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import time

import pytest
import yaml
from hypothesis import HealthCheck, given, settings, strategies as st

from helpers import REPO, VMWAVE, estate_records
from vmwave.adapters.documents import parse_yaml, read_json, read_secret, read_yaml
from vmwave.adapters.files import dump_plan, load_maps, load_plan, load_policy
from vmwave.cli.common import saved_inventory
from vmwave.domain.classes import DEFAULT_RULES
from vmwave.domain.rules_file import parse_rules
from vmwave.domain.maps import parse_maps
from vmwave.domain.plan import make_plan, parse_plan
from vmwave.errors import InputError
from vmwave.settings import Settings

MAPS = REPO / "lab" / "estates" / "small.maps.yaml"
HOSTILE = [
    "../../x",
    "/etc/passwd",
    "a/../../b",
    "x\ntouch /tmp/pwned\n#",
    "$(touch /tmp/pwned)",
    "`id`",
    "'\"",
    "[/]",
    "[bold]x[/bold]",
    "\x1b[31mred\x1b[0m",
    "\x00",
    "数据库-01",
    "🚀",
    "\u202eevil",
    "مرحبا",
    "x" * 5000,
    "{vm:d}",
    "{index:0>1500000000}",
    "{vm!z}",
    "%2f",
    "",
    " ",
    "-",
    "w003",
    "2026-12-05T22:00:00",
]
VALUES = st.one_of(
    st.sampled_from(HOSTILE),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.sampled_from(
        [0, -1, 1, 99999, 10**12, 1.5, float("inf"), float("nan"), True, False, None, [], {}, [1, "a"], {"x": 1}]
    ),
    st.text(max_size=40),
)
SETTINGS = settings(max_examples=300, deadline=2000, suppress_health_check=[HealthCheck.too_slow], derandomize=True)


def paths(doc, prefix=()):
    """Every place in a document: keys of mappings and items of lists."""
    found = [prefix]
    if isinstance(doc, dict):
        for key, value in doc.items():
            found += paths(value, prefix + (key,))
    elif isinstance(doc, list):
        for index, value in enumerate(doc):
            found += paths(value, prefix + (index,))
    return found


def mutated(doc, data):
    """``doc`` with one place replaced, removed, or given an unknown field."""
    doc = copy.deepcopy(doc)
    where = data.draw(st.sampled_from(paths(doc)[1:]), label="where")
    parent = doc
    for key in where[:-1]:
        parent = parent[key]
    how = data.draw(st.sampled_from(["replace", "remove", "extra"]), label="how")
    if how == "replace":
        parent[where[-1]] = data.draw(VALUES, label="value")
    elif how == "remove":
        del parent[where[-1]]
    elif isinstance(parent, dict):
        parent[data.draw(st.sampled_from(["colour", "nmae", "[/]", "x\ny"]), label="key")] = 1
    return doc


def clear_error(caught: InputError, source: str) -> None:
    """Today's form: file, field (or line), what is wrong, the fix."""
    text = str(caught)
    assert text.startswith(f"{source}: "), text
    assert caught.fix.strip(), text


@pytest.fixture(scope="module")
def estate_vms():
    return estate_records()


@pytest.fixture(scope="module")
def plan_doc(estate_vms):
    """A plan of the small estate with every optional field somewhere, so mutations reach them all."""
    doc = make_plan(estate_vms, load_policy(), load_maps(MAPS), "https://vc/sdk")
    doc["names"] = {"pvc": "{vm}-{wave}-disk{index:02d}", "volume": "disk{index}", "interface": "nic{index}"}
    wave, vm = doc["waves"][0], doc["waves"][0]["vms"][0]
    wave.update(
        window={"start": "2026-12-05T22:00:00+00:00", "end": "2026-12-06T04:00:00+00:00"},
        precopy_interval="30m",
        keep_for_debug=True,
        node_selector={"node-role.kubernetes.io/worker": ""},
        hooks={
            "pre_cutover": {"image": "registry.example/drain:1", "command": ["/bin/sh", "-c", "true"], "deadline": 60}
        },
    )
    vm.update(
        labels={"example.com/tier": "web"},
        affinity={"nodeAffinity": {}},
        target_power_state="source",
        smoke=[{"tcp": 22}, {"http": "http://{ip}:8080/", "status": 200}, {"agent": "os", "expect": {"id": "^d"}}],
        preparation=["install the agent"],
        compatibility=True,
        convert="copy",
    )
    return doc


@pytest.fixture(scope="module")
def rules_doc():
    return yaml.safe_load(DEFAULT_RULES)


@pytest.fixture(scope="module")
def maps_doc():
    return yaml.safe_load(MAPS.read_text())


@given(data=st.data())
@SETTINGS
def test_a_mutated_plan_is_a_plan_or_one_clear_error(plan_doc, data):
    doc = mutated(plan_doc, data)
    try:
        parse_plan(doc, "plan.yaml")
    except InputError as caught:
        clear_error(caught, "plan.yaml")


@given(data=st.data())
@SETTINGS
def test_mutated_rules_are_rules_or_one_clear_error(rules_doc, estate_vms, data):
    doc = mutated(rules_doc, data)
    try:
        policy = parse_rules(doc, "rules.yaml")
    except InputError as caught:
        clear_error(caught, "rules.yaml")
        return
    make_plan(estate_vms, policy, None, "https://vc/sdk")  # what was accepted plans


@given(data=st.data())
@SETTINGS
def test_mutated_maps_are_maps_or_one_clear_error(maps_doc, estate_vms, data):
    doc = mutated(maps_doc, data)
    try:
        maps = parse_maps(doc, "maps.yaml")
    except InputError as caught:
        clear_error(caught, "maps.yaml")
        return
    make_plan(estate_vms, load_policy(), maps, "https://vc/sdk")


@given(data=st.data())
@settings(
    max_examples=80,
    deadline=3000,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    derandomize=True,
)
def test_a_mutated_inventory_plans_or_is_one_clear_error(estate_vms, tmp_path, data):
    doc = {"source": "https://vc/sdk", "vms": [r.to_dict() for r in estate_vms[:4]]}
    path = tmp_path / "inventory.json"
    path.write_text(json.dumps(mutated(doc, data), allow_nan=True))
    try:
        _, found = saved_inventory(path, Settings.load(env={}))
        make_plan(found, load_policy(), load_maps(MAPS), "https://vc/sdk")
    except InputError as caught:
        clear_error(caught, str(path))


@pytest.fixture(scope="module")
def estate_doc():
    return yaml.safe_load((REPO / "lab" / "estates" / "small.yaml").read_text())


@given(data=st.data())
@SETTINGS
def test_a_mutated_lab_estate_is_an_estate_or_one_clear_error(estate_doc, data):
    from vmwave_lab.estate import EstateError, expand

    doc = mutated(estate_doc, data)
    try:
        expand(doc, "estate.yaml")
    except EstateError as caught:
        assert str(caught).startswith("estate.yaml: ")


def test_an_estate_cannot_ask_for_a_billion_vms(estate_doc):
    from vmwave_lab.estate import EstateError, expand

    doc = copy.deepcopy(estate_doc)
    doc["vms"][0]["count"] = 10**9
    with pytest.raises(EstateError, match="count"):
        expand(doc, "estate.yaml")


def test_a_plan_whose_vms_share_checks_is_written_without_aliases_and_reads_back(plan_doc, tmp_path):
    doc = copy.deepcopy(plan_doc)
    shared = [{"tcp": 443}]  # one rule's checks, the same objects in every VM it matches
    for vm in doc["waves"][1]["vms"]:
        vm["smoke"] = shared
    path = tmp_path / "plan.yaml"
    path.write_text(dump_plan(doc))
    assert "&id" not in path.read_text() and load_plan(path).waves[1].vms[0].smoke == shared


def test_a_written_plan_reads_back_as_it_was_parsed(plan_doc, tmp_path):
    path = tmp_path / "plan.yaml"
    path.write_text(dump_plan(plan_doc))
    assert load_plan(path) == parse_plan(plan_doc, str(path))


SILENT = {  # what was once accepted and failed later (or never): each now refused, naming its field
    "a path as wave id": (lambda d: d["waves"][0].update(id="../../x"), "waves[0].id"),
    "an empty wave": (lambda d: d["waves"][0].update(vms=[]), "waves[0].vms"),
    "per_host 0": (lambda d: d["limits"].update(per_host=0), "limits.per_host"),
    "a naive window": (
        lambda d: d["waves"][0].update(window={"start": "2026-12-05T22:00:00", "end": "2026-12-06T04:00:00"}),
        "waves[0].window.start",
    ),
    "precopy 0s": (lambda d: d["waves"][0].update(precopy_interval="0s"), "waves[0].precopy_interval"),
    "an empty hook image": (
        lambda d: d["waves"][0]["hooks"]["pre_cutover"].update(image=""),
        "waves[0].hooks.pre_cutover.image",
    ),
    "a uuid that is a path": (lambda d: d["waves"][0]["vms"][0].update(uuid="../../etc"), "waves[0].vms[0].uuid"),
    "a moref that is a path": (lambda d: d["waves"][0]["vms"][0].update(moref="../x"), "waves[0].vms[0].moref"),
    "a node selector that is no label": (
        lambda d: d["waves"][0]["vms"][0].update(node_selector={"[/]": "x y"}),
        "waves[0].vms[0].node_selector.[/]",
    ),
    "a smoke pattern that is none": (
        lambda d: d["waves"][0]["vms"][0].update(smoke=[{"agent": "os", "expect": {"id": "("}}]),
        "waves[0].vms[0].smoke[0].expect.id",
    ),
    "a name template with a format": (lambda d: d.update(names={"pvc": "{vm:d}-{index}"}), "names.pvc"),
    "a name template with a conversion": (lambda d: d.update(names={"pvc": "{vm!z}-{index}"}), "names.pvc"),
    "a name template 1.5 GB wide": (lambda d: d.update(names={"pvc": "{vm}-{index:0>1500000000}"}), "names.pvc"),
    "a preparation step of a megabyte": (
        lambda d: d["waves"][0]["vms"][0].update(preparation=["x" * 10**6]),
        "waves[0].vms[0].preparation[0]",
    ),
}


@pytest.mark.parametrize("name", sorted(SILENT))
def test_what_was_silently_accepted_is_refused(plan_doc, name):
    edit, field = SILENT[name]
    doc = copy.deepcopy(plan_doc)
    edit(doc)
    with pytest.raises(InputError) as caught:
        parse_plan(doc, "plan.yaml")
    assert caught.value.field == field
    clear_error(caught.value, "plan.yaml")


def test_a_file_reports_all_its_errors_at_once(plan_doc, maps_doc, rules_doc):
    plan = copy.deepcopy(plan_doc)
    plan["waves"][0]["id"] = "../x"
    plan["waves"][1]["vms"][0]["uuid"] = "$(id)"
    plan["limits"]["per_host"] = 0
    maps = {**copy.deepcopy(maps_doc), "namespace": "Bad_NS", "colour": "red"}
    rules = {**rules_doc, "default": "P9", "waves": {"size": 0}}
    for parse, doc, source, fields in (
        (parse_plan, plan, "plan.yaml", {"waves[0].id", "waves[1].vms[0].uuid", "limits.per_host"}),
        (parse_maps, maps, "maps.yaml", {"namespace", "colour"}),
        (parse_rules, rules, "rules.yaml", {"default", "waves.size"}),
    ):
        with pytest.raises(InputError) as caught:
            parse(doc, source)
        assert {p.field for p in caught.value.problems} == fields
        assert all(line.startswith(f"{source}: ") for line in str(caught.value).splitlines())


MAPS_SILENT = {
    "a StorageClass that is no name": (
        lambda d: d["storage"][0].update(storage_class="Not A Name"),
        "storage[0].storage_class",
    ),
    "VLAN 99999": (lambda d: d["network"][0].update(vlan=99999), "network[0].vlan"),
    "VLAN -1": (lambda d: d["network"][0].update(vlan=-1), "network[0].vlan"),
    "a datastore mapped twice": (lambda d: d["storage"].append(dict(d["storage"][0])), "storage[3].datastore"),
}


@pytest.mark.parametrize("name", sorted(MAPS_SILENT))
def test_maps_once_silently_accepted_are_refused(maps_doc, name):
    edit, field = MAPS_SILENT[name]
    doc = copy.deepcopy(maps_doc)
    edit(doc)
    with pytest.raises(InputError) as caught:
        parse_maps(doc, "maps.yaml")
    assert caught.value.field == field


@pytest.mark.parametrize(
    "edit,field",
    [
        ({"overrides": {"no-such-vm": "P1"}}, "overrides.no-such-vm"),
        ({"groups": {"g": ["nope-1", "nope-2"]}}, "groups.g"),
    ],
)
def test_rules_naming_a_vm_the_estate_lacks_are_refused_when_planned(rules_doc, estate_vms, edit, field):
    policy = parse_rules({**rules_doc, **edit}, "rules.yaml")
    with pytest.raises(InputError) as caught:
        make_plan(estate_vms, policy, None, "https://vc/sdk")
    assert caught.value.field == field and str(caught.value).startswith("rules.yaml: ")


EXPLOSIVE = {  # what once took minutes or gigabytes, now refused at once
    "billion laughs": "a: &a [x, x, x, x, x, x, x, x, x]\n"
    + "".join(
        f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n" for p, c in zip("abcdefgh", "bcdefghi")
    ),
    "an alias in a hook": "waves:\n- id: w001\n  hooks: {pre_cutover: {command: &c [sh]}, post_boot: {command: *c}}\n",
    "3000 levels": "a: " + "[" * 3000 + "]" * 3000 + "\n",
    "3000 mapping levels": "".join(" " * i + f"k{i}:\n" for i in range(3000)) + " " * 3000 + "x: 1\n",
    "a merge key": "base: {a: 1}\nother:\n  <<: {a: 2}\n",
    "a python tag": "a: !!python/object/apply:os.system [id]\n",
    "duplicate keys": "schema: x\nschema: y\n",
    "two documents": "a: 1\n---\nb: 2\n",
}


@pytest.mark.parametrize("name", sorted(EXPLOSIVE))
def test_explosive_yaml_is_refused_at_once(name, tmp_path):
    path = tmp_path / "plan.yaml"
    path.write_text(EXPLOSIVE[name])
    start = time.perf_counter()
    with pytest.raises(InputError) as caught:
        load_plan(path)
    assert time.perf_counter() - start < 1
    clear_error(caught.value, str(path))
    assert "line " in caught.value.field


def test_bytes_that_are_not_utf8_are_named_with_their_offset(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_bytes(b"version: 1\ndefault: P3\n# caf\xe9\n")
    with pytest.raises(InputError) as caught:
        read_yaml(path, "rules")
    assert caught.value.field == "line 3 (byte 28)" and "UTF-8" in str(caught.value)


def test_a_file_over_the_size_limit_is_refused_before_it_is_read(tmp_path):
    path = tmp_path / "plan.yaml"
    with path.open("wb") as handle:
        handle.truncate(2 << 20)
    with pytest.raises(InputError) as caught:
        read_yaml(path, "plan", limit=1 << 20)
    assert "larger than 1 MiB" in str(caught.value) and "VMWAVE_MAX_FILE_MB" in str(caught.value)


def test_the_size_limit_is_a_setting(tmp_path):
    path = tmp_path / "plan.yaml"
    path.write_text("schema: vmwave.io/plan/v1\n" + "# padding\n" * 120_000)  # 1.2 MB
    env = {**os.environ, "VMWAVE_MAX_FILE_MB": "1"}
    refused = subprocess.run([VMWAVE, "check", str(path)], env=env, capture_output=True, text=True)
    assert refused.returncode == 2 and "larger than 1 MiB" in refused.stderr, refused.stderr
    env["VMWAVE_MAX_FILE_MB"] = "2"
    read = subprocess.run([VMWAVE, "check", str(path)], env=env, capture_output=True, text=True)
    assert "larger than" not in read.stderr and "limits" in read.stderr  # read, then refused for what it lacks


def test_json_is_bounded_as_yaml_is(tmp_path):
    path = tmp_path / "inventory.json"
    for text, problem in (("[" * 5000 + "]" * 5000, "deeper"), ('{"a": 1, "a": 2}', "twice"), ("{", "not valid JSON")):
        path.write_text(text)
        with pytest.raises(InputError, match=problem):
            read_json(path, "inventory")


@pytest.mark.parametrize(
    "text,ok",
    [("s3cret\n", True), ("s3cret", True), ("s3cret\r\n", True), ("", False), ("\n", False), ("two\nlines\n", False)],
)
def test_a_password_file_is_one_line_everywhere(tmp_path, text, ok):
    path = tmp_path / "password"
    path.write_text(text)
    if ok:
        assert read_secret(path, "password") == "s3cret"
    else:
        with pytest.raises(InputError, match="exactly one line"):
            read_secret(path, "password")


def test_timestamps_stay_text_for_the_models_to_check():
    assert parse_yaml("start: 2026-12-05T22:00:00\nday: 2026-12-05\n", "x.yaml") == {
        "start": "2026-12-05T22:00:00",
        "day": "2026-12-05",
    }


def test_an_estate_cannot_ask_for_millions_of_hosts(estate_doc):
    """Hypothesis found it: `hosts: 3284661` took minutes and gigabytes to refuse nothing."""
    from vmwave_lab.estate import EstateError, expand

    doc = copy.deepcopy(estate_doc)
    doc["datacenters"][0]["clusters"][0]["hosts"] = 3284661
    with pytest.raises(EstateError, match="hosts"):
        expand(doc, "estate.yaml")
