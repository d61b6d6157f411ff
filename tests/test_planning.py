"""Classes and waves: rules, overrides, groups, the size cap, determinism, windows."""

from dataclasses import replace

import pytest
import yaml

from vmwave.domain.rules_file import parse_rules
from vmwave.domain.plan import find_wave, make_plan, parse_plan, plan_to_dict
from vmwave.domain.records import SourceVM
from vmwave.domain.waves import build_plan, classify
from vmwave.errors import InputError, VmwaveError
from helpers import REPO
from vmwave.adapters.files import dump_plan, load_maps, load_policy


def classes(estate, policy=None):
    return {p.vm.name: (p.cls, p.reason) for p in classify(estate, policy or load_policy())}


def test_default_classes_of_the_small_estate(estate):
    got = classes(estate)
    assert got["batch-old-01"][0] == "P1"  # powered off, no shared disks
    assert got["static-1"][0] == got["static-2"][0] == "P2"  # stateless tier
    assert got["win-app-01"][0] == "P3"  # standard
    assert got["db-01"][0] == "P4"  # criticality attribute
    assert got["sql-node-1"][0] == got["sql-node-2"][0] == "P5"  # shared disk: critical concern
    assert got["web-01"] == ("P4", "group app=shop moves as P4")  # web tier follows its database


def test_rules_file_conditions_and_overrides(estate, estate_by_name):
    policy = parse_rules(
        yaml.safe_load(f"""
version: 1
rules:
  - {{class: P5, when: {{folder: "prod/db*"}}}}
  - {{class: P2, when: {{any: [{{name: "^web-0[12]$"}}, {{tag: public}}]}}}}
  - {{class: P1, when: {{all: [{{guest_family: linux}}, {{not: {{power_state: poweredOn}}}}]}}}}
  - {{class: P4, when: {{concern: vtpm}}}}
default: P3
group_by: none
overrides: {{app-01: P4, {estate_by_name["web-01"].moref}: P5}}
"""),
        "rules.yaml",
    )
    got = classes(estate, policy)
    assert got["db-01"] == ("P5", "rule 1")
    assert got["web-02"][0] == "P2" and got["static-1"][0] == "P2"
    assert got["batch-old-01"][0] == "P1"
    assert got["win-app-01"][0] == "P4"
    assert got["app-01"] == ("P4", "override")
    assert got["web-01"] == ("P5", "override")  # overrides match a moref too
    assert got["App_01"] == ("P3", "default")


def synthetic(n, groups=0, hosts=8):
    """n records, the first `groups * 5` in groups of five."""
    return [
        SourceVM(
            name=f"vm-{i:05d}",
            moref=f"vm-{i + 100}",
            instance_uuid=f"uuid-{i}",
            host=f"esx{i % hosts}",
            power_state="poweredOn",
            guest_id="rhel8_64Guest",
            tools="running",
            attributes={"app": f"app{i // 5}"} if i < groups * 5 else {},
        )
        for i in range(n)
    ]


def test_waves_respect_the_size_cap_and_keep_groups_together():
    plan = build_plan(synthetic(2000, groups=60), load_policy())
    assert all(len(w.vms) <= 50 for w in plan.waves)
    assert sum(len(w.vms) for w in plan.waves) == 2000
    wave_of = {p.vm.name: w.id for w in plan.waves for p in w.vms}
    for g in range(60):
        assert len({wave_of[f"vm-{i:05d}"] for i in range(g * 5, g * 5 + 5)}) == 1
    assert len(plan.waves) == 40  # first-fit keeps waves full


def test_classes_come_in_order(estate):
    order = [w.cls for w in build_plan(estate, load_policy()).waves]
    assert order == sorted(order)


def test_same_input_same_plan(estate):
    first = dump_plan(plan_to_dict(build_plan(estate, load_policy(), source="x")))
    again = dump_plan(plan_to_dict(build_plan(list(reversed(estate)), load_policy(), source="x")))
    assert first == again


def test_a_group_larger_than_a_wave_is_refused():
    with pytest.raises(VmwaveError, match="group app=app0 has 5 VMs, more than the wave size 4"):
        build_plan(synthetic(10, groups=1), load_policy(wave_size=4))


def test_templates_are_skipped(estate):
    doc = plan_to_dict(build_plan(estate, load_policy()))
    assert doc["skipped"] == [{"name": "tpl-rhel8", "moref": doc["skipped"][0]["moref"], "reason": "template"}]
    assert "tpl-rhel8" not in {vm["name"] for w in doc["waves"] for vm in w["vms"]}


def test_maintenance_windows_and_per_host_cap():
    policy = parse_rules(
        yaml.safe_load("""
version: 1
waves: {size: 10, per_host: 3}
schedule: {start: "2026-12-05T22:00:00+00:00", every: 1d, length: 6h, waves_per_window: 2}
"""),
        "rules.yaml",
    )
    doc = plan_to_dict(build_plan(synthetic(45), policy))
    assert doc["limits"] == {"wave_size": 10, "per_host": 3}
    starts = [w["window"]["start"] for w in doc["waves"]]
    assert starts == ["2026-12-05T22:00:00+00:00"] * 2 + ["2026-12-06T22:00:00+00:00"] * 2 + [
        "2026-12-07T22:00:00+00:00"
    ]
    assert doc["waves"][0]["window"]["end"] == "2026-12-06T04:00:00+00:00"


def test_a_written_plan_reads_back(estate):
    doc = plan_to_dict(build_plan(estate, load_policy(), source="https://vc/sdk"))
    again = parse_plan(yaml.safe_load(dump_plan(doc)), "plan.yaml")
    assert [w.id for w in again.waves] == [w["id"] for w in doc["waves"]]
    assert [vm.moref for w in again.waves for vm in w.vms] == [vm["moref"] for w in doc["waves"] for vm in w["vms"]]


@pytest.mark.parametrize(
    "edit,field,fix",
    [
        (lambda d: d.update(schema="vmwave.io/plan/v0"), "schema", "vmwave plan"),
        (lambda d: d["waves"][1].update(id=d["waves"][0]["id"]), "waves[1].id", "own id"),
        (lambda d: d["waves"][1]["vms"].append(d["waves"][0]["vms"][0]), "waves[1].vms[", "exactly one wave"),
        (lambda d: d["waves"][0].update(**{"class": "P9"}), "waves[0].class", "one of: P1"),
        (lambda d: d["limits"].update(wave_size=1), "waves[", "limits.wave_size"),
        (
            lambda d: d["waves"][0].update(window={"start": "2026-12-05T22:00:00Z", "end": "2026-12-05T21:00:00Z"}),
            "waves[0].window.end",
            "after it starts",
        ),
        (
            lambda d: d["waves"][0].update(window={"start": "2026-12-05T22:00:00", "end": "2026-12-06T04:00:00+00:00"}),
            "waves[0].window.start",
            "add one",
        ),
        (lambda d: d["waves"][0].update(id="../../x"), "waves[0].id", "lower-case letters"),
        (lambda d: d["waves"][0].update(id=""), "waves[0].id", "lower-case letters"),
        (lambda d: d["waves"][0].update(vms=[]), "waves[0].vms", "remove the wave"),
        (lambda d: d["limits"].update(per_host=0), "limits.per_host", "at least 1"),
        (lambda d: d["waves"][0].update(precopy_interval="0s"), "waves[0].precopy_interval", "from 10s"),
        (lambda d: d["waves"][0]["vms"][0].update(colour="red"), "waves[0].vms[0].colour", "remove it"),
        (
            lambda d: d["waves"][0]["vms"][0].update(smoke=[{"tcp": 22, "http": "http://{ip}/"}]),
            "waves[0].vms[0].smoke[0]",
            "one check per kind",
        ),
        (lambda d: d["waves"][0]["vms"][0].update(smoke=[{"tcp": 70000}]), "waves[0].vms[0].smoke[0].tcp", "1-65535"),
        (lambda d: d["waves"][0].update(keep_for_debug="yes"), "waves[0].keep_for_debug", "true or false"),
    ],
)
def test_bad_plan_edits_name_the_field_and_the_fix(estate, edit, field, fix):
    doc = plan_to_dict(build_plan(estate, load_policy()))
    edit(doc)
    with pytest.raises(InputError) as caught:
        parse_plan(doc, "plan.yaml")
    assert caught.value.field.startswith(field) and fix in str(caught.value)
    assert str(caught.value).startswith("plan.yaml: ")


@pytest.mark.parametrize(
    "text,field,fix",
    [
        ("version: 2", "version", "use one of: 1"),
        ("version: 1\nrules: [{class: P7, when: {name: x}}]", "rules[0].class", "use one of"),
        ("version: 1\nrules: [{class: P1, when: {}}]", "rules[0].when", "at least one condition"),
        ("version: 1\nrules: [{class: P1, when: {name: '('}}]", "rules[0].when.name", "fix the pattern"),
        ("version: 1\nrules: [{class: P1, when: {colour: red}}]", "rules[0].when.colour", "use one of"),
        ("version: 1\nwaves: {size: 0}", "waves.size", "positive"),
        ("version: 1\nschedule: {start: tomorrow, every: 1d, length: 6h}", "schedule.start", "ISO"),
        ("version: 1\nschedule: {start: '2026-12-05T22:00:00', every: 1d, length: 6h}", "schedule.start", "time zone"),
        ("version: 1\nschedule: {start: '2026-12-05T22:00:00Z', every: daily, length: 6h}", "schedule.every", "1d"),
        (
            "version: 1\nsmoke: [{when: {name: x}, checks: [{http: 'ftp://x'}]}]",
            "smoke[0].checks[0].http",
            "http://{ip}",
        ),
        (
            "version: 1\nsmoke: [{when: {name: x}, checks: [{agent: uptime}]}]",
            "smoke[0].checks[0].agent",
            "use one of: os",
        ),
    ],
)
def test_bad_rules_name_the_field_and_the_fix(text, field, fix):
    with pytest.raises(InputError) as caught:
        parse_rules(yaml.safe_load(text), "rules.yaml")
    assert caught.value.field == field and fix in str(caught.value)


def test_smoke_rules_reach_the_plan_and_keep_for_debug_is_read_back(estate):
    policy = parse_rules(
        yaml.safe_load("""
version: 1
smoke:
  - when: {attribute: {tier: "^web$"}}
    checks: [{tcp: 443}, {http: "http://{ip}:8080/health", status: 204, timeout: 30}]
  - when: {name: "^web-01$"}
    checks: [{agent: os, expect: {id: "^rhel$"}}]
"""),
        "rules.yaml",
    )
    doc = plan_to_dict(build_plan(estate, policy))
    vms = {vm["name"]: vm for w in doc["waves"] for vm in w["vms"]}
    assert vms["web-01"]["smoke"] == [
        {"tcp": 443},
        {"http": "http://{ip}:8080/health", "status": 204, "timeout": 30},
        {"agent": "os", "expect": {"id": "^rhel$"}},
    ]  # every matching rule adds its checks
    assert vms["web-02"]["smoke"][:1] == [{"tcp": 443}] and "smoke" not in vms["db-01"]
    doc["waves"][0]["keep_for_debug"] = True
    again = parse_plan(yaml.safe_load(dump_plan(doc)), "plan.yaml")
    assert {vm.name: vm.smoke for w in again.waves for vm in w.vms}["web-01"] == vms["web-01"]["smoke"]
    assert all(vm.keep_for_debug for vm in again.waves[0].vms)
    assert not any(vm.keep_for_debug for w in again.waves[1:] for vm in w.vms)


def test_plan_policy_cli_overrides():
    policy = load_policy(wave_size=7, per_host=2)
    assert (policy.wave_size, policy.per_host) == (7, 2)


def test_group_class_is_strongest_member():
    a, b = synthetic(2, groups=1)[:2]
    b = replace(b, attributes={**b.attributes, "criticality": "critical"})
    assert {p.cls for p in classify([a, b], load_policy())} == {"P4"}


def test_vms_sharing_a_disk_are_one_group():
    from vmwave.domain.records import Disk

    quorum = Disk(
        9, "Hard disk 2", "[ds-01] shared/quorum.vmdk", "ds-01", 1 << 30, "pvscsi", 1, 0, sharing="multiwriter"
    )
    a, b, c = (replace(vm, attributes={}, disks=(*vm.disks, quorum)) for vm in synthetic(3))
    planned = {p.vm.name: p.group for p in classify([a, b, c], load_policy())}
    assert len(set(planned.values())) == 1 and planned[a.name] == "shared-disk=shared/quorum.vmdk"
    b = replace(b, attributes={"app": "one"})
    assert {p.group for p in classify([a, b, c], load_policy())} == {"app=one"}  # the group one of them has
    with pytest.raises(VmwaveError, match="share disk .* but are in groups app=one, app=two"):
        classify([a, b, replace(c, attributes={"app": "two"})], load_policy())


def test_planned_window_waves_run_only_in_their_window():
    from datetime import datetime, timezone

    from vmwave.domain.plan import check_window
    from vmwave.domain.plan_file import WavePlan

    def wave(**fields):
        return WavePlan.model_validate({"vms": [{"name": "vm", "moref": "vm-1"}], **fields})

    p4 = wave(
        id="w004", **{"class": "P4"}, window={"start": "2026-12-05T22:00:00+00:00", "end": "2026-12-06T04:00:00Z"}
    )
    check_window(p4, datetime(2026, 12, 5, 23, 0, tzinfo=timezone.utc), ignore=False)
    with pytest.raises(VmwaveError, match="may only run in its window"):
        check_window(p4, datetime(2026, 12, 5, 21, 59, tzinfo=timezone.utc), ignore=False)
    check_window(p4, datetime(2026, 12, 5, 21, 59, tzinfo=timezone.utc), ignore=True)
    with pytest.raises(VmwaveError, match="has no maintenance window"):
        check_window(wave(id="w004", **{"class": "P4"}), datetime.now(timezone.utc), ignore=False)
    check_window(wave(id="w003", **{"class": "P3"}), datetime.now(timezone.utc), ignore=False)


def test_the_plan_records_everything_a_migration_uses(estate):
    from vmwave.plugins import planned_tool

    maps = load_maps(REPO / "lab/estates/small.maps.yaml")
    doc = make_plan(estate, load_policy(), maps, "x", convert=planned_tool)
    vms = {vm["name"]: vm for w in doc["waves"] for vm in w["vms"]}
    db = vms["db-01"]
    assert (db["class"], db["mode"], db["profile"], db["convert"], db["target_name"]) == (
        "P4",
        "planned-window",
        "latency-sensitive",
        "copy",
        "db-01",
    )  # the lab marks disks without an OS `copy`
    assert vms["debian-12"]["convert"] == "virt-v2v"  # the Linux plugin's choice
    assert vms["Legacy_FileServer.corp"]["target_name"] == "legacy-fileserver-corp"
    assert all(c["fix"] for vm in vms.values() for c in vm["concerns"])
    # two VMs that would collide get distinct names in the plan; the concern still says so
    assert vms["App_01"]["target_name"] != vms["app-01"]["target_name"]
    assert "name_collision" in {c["id"] for c in vms["App_01"]["concerns"]}
    again = parse_plan(yaml.safe_load(dump_plan(doc)), "plan.yaml")
    assert {vm.name: vm for w in again.waves for vm in w.vms}["db-01"].profile == "latency-sensitive"


def test_edited_values_are_honoured_never_recomputed(estate):
    doc = plan_to_dict(build_plan(estate, load_policy()))
    wave = next(w for w in doc["waves"] if w["class"] == "P3")
    wave["mode"] = "offline-batch"
    wave["vms"][0].update(profile="latency-sensitive", target_name="renamed-by-hand", convert="copy")
    del wave["vms"][1]["mode"]  # an entry without a mode takes its wave's
    parsed = find_wave(parse_plan(doc, "plan.yaml"), wave["id"])
    assert parsed.mode == "offline-batch" and parsed.vms[1].mode == "offline-batch"
    assert (parsed.vms[0].profile, parsed.vms[0].target_name, parsed.vms[0].convert) == (
        "latency-sensitive",
        "renamed-by-hand",
        "copy",
    )


def test_fence_cutover_and_on_failure_come_from_the_plan_wave_or_vm(estate):
    doc = plan_to_dict(build_plan(estate, load_policy()))
    wave = next(w for w in doc["waves"] if len(w["vms"]) > 2)
    doc["fence"] = {"folder": "migrated"}
    doc["on_failure"] = "delete"
    wave["vms"][1]["fence"] = False
    wave["vms"][2].update(
        fence={"rename": "gone-{wave}-{name}"}, on_failure="keep", cutover="2026-12-12T23:30:00+01:00"
    )
    vms = find_wave(parse_plan(doc, "plan.yaml"), wave["id"]).vms
    assert (vms[0].fencing.enabled, vms[0].fencing.rename, vms[0].fencing.folder) == (
        True,
        "{name}-migrated",
        "migrated",
    )
    assert not vms[1].fencing.enabled and vms[0].on_failure == "delete" and vms[2].on_failure == "keep"
    assert vms[2].fencing.rename == "gone-{wave}-{name}" and vms[2].fencing.folder is None
    assert vms[2].cutover_at.isoformat() == "2026-12-12T23:30:00+01:00" and vms[0].cutover_at is None


@pytest.mark.parametrize(
    "edit,field,fix",
    [
        (lambda w: w.update(mode="warm"), "mode", "use one of: offline-batch"),
        (lambda w: w["vms"][0].update(mode="fast"), "vms[0].mode", "use one of"),
        (lambda w: w["vms"][0].update(profile="turbo"), "vms[0].profile", "latency-sensitive"),
        (lambda w: w["vms"][0].update(convert="v2v"), "vms[0].convert", "copy, virt-v2v"),
        (lambda w: w["vms"][0].update(target_name="Not_A_Name"), "vms[0].target_name", "lower case"),
        (lambda w: w["vms"][1].update(target_name=w["vms"][0]["target_name"]), "vms[1].target_name", "another"),
        (lambda w: w.update(fence={"rename": "old-vm"}), "fence.rename", "{name}-migrated"),
        (lambda w: w["vms"][0].update(fence={"rename": "{name!r}"}), "vms[0].fence.rename", "{name}-migrated"),
        (lambda w: w["vms"][0].update(fence={"folder": "../elsewhere"}), "vms[0].fence.folder", "migrated/2026"),
        (lambda w: w["vms"][0].update(fence="yes"), "vms[0].fence", ""),
        (lambda w: w["vms"][0].update(cutover="2026-12-12T23:30:00"), "vms[0].cutover", "time zone"),
        (
            lambda w: w.update(
                window={"start": "2026-12-12T22:00:00Z", "end": "2026-12-13T02:00:00Z"},
                vms=[{**w["vms"][0], "cutover": "2026-12-13T03:00:00Z"}],
            ),
            "vms[0].cutover",
            "window",
        ),
        (lambda w: w["vms"][0].update(on_failure="forget"), "vms[0].on_failure", "keep, delete"),
    ],
)
def test_invalid_edits_are_refused_with_the_field(estate, edit, field, fix):
    doc = plan_to_dict(build_plan(estate, load_policy()))
    wave = next(w for w in doc["waves"] if len(w["vms"]) > 1)
    edit(wave)
    with pytest.raises(InputError) as caught:
        parse_plan(doc, "plan.yaml")
    assert caught.value.field.endswith(field) and fix in str(caught.value)
