"""Warm migration in the plan, without a server: who moves warm, the plan's fields, the window, CDI's DataVolume."""

from datetime import datetime, timezone

import pytest
import yaml

import schema_check
from helpers import REPO
from vmwave.adapters.files import load_maps, load_policy
from vmwave.domain.build import datavolume
from vmwave.domain.classes import DEFAULT_RULES
from vmwave.domain.rules_file import parse_rules
from vmwave.domain.plan import check_window, make_plan, parse_plan
from vmwave.domain.plan_file import WavePlan
from vmwave.domain.warm import DEFAULT_PRECOPY_INTERVAL, cold_because, cutover_state, staged, tracks_changes
from vmwave.errors import InputError, VmwaveError

MAPS = REPO / "lab/estates/small.maps.yaml"
WINDOW = {"start": "2026-12-05T22:00:00+00:00", "end": "2026-12-06T04:00:00+00:00"}


def planned(estate, policy=None) -> dict:
    return make_plan(estate, policy or load_policy(), load_maps(MAPS), "x")


def test_p4_vms_whose_disks_vcenter_tracks_are_planned_warm_the_rest_cold(estate):
    vms = {vm["name"]: vm for w in planned(estate)["waves"] for vm in w["vms"]}
    by_name = {vm.name: vm for vm in estate}
    for name, vm in vms.items():
        warm = vm["class"] == "P4" and tracks_changes(by_name[name])
        assert (vm.get("migration") == "warm") == warm, name
    assert vms["db-01"]["migration"] == "warm"  # a business-critical database with CBT on
    assert "migration" not in vms["win-app-01"]  # P3: cold


def test_a_vm_without_tracking_says_how_to_enable_it(estate_by_name):
    why, fix = cold_because(estate_by_name["win-app-01"], vddk=True)
    assert "Changed Block Tracking is off" in why and "ctkEnabled = TRUE" in fix
    assert cold_because(estate_by_name["db-01"], vddk=True) is None
    assert "VMWAVE_VDDK_IMAGE" in cold_because(estate_by_name["db-01"], vddk=False)[1]


def test_the_rules_interval_reaches_waves_with_warm_vms_and_the_plan_reads_it(estate):
    policy = parse_rules({**yaml.safe_load(DEFAULT_RULES), "precopy_interval": "30m"}, "rules.yaml")
    doc = planned(estate, policy)
    warm = [w for w in doc["waves"] if any(vm.get("migration") == "warm" for vm in w["vms"])]
    assert warm and all(w["precopy_interval"] == "30m" for w in warm)
    assert all("precopy_interval" not in w for w in doc["waves"] if w not in warm)
    parsed = parse_plan(yaml.safe_load(yaml.safe_dump(doc)), "plan.yaml")
    intervals = {w.id: w.precopy_interval for w in parsed.waves}
    assert {intervals[w["id"]] for w in warm} == {1800}
    assert {intervals[w["id"]] for w in doc["waves"] if w not in warm} == {DEFAULT_PRECOPY_INTERVAL}


@pytest.mark.parametrize(
    "field, value, said", [("migration", "hot", "migration"), ("precopy_interval", "often", "not a duration")]
)
def test_a_bad_warm_field_is_refused_naming_it(estate, field, value, said):
    doc = planned(estate)
    doc["waves"][0][field] = value
    with pytest.raises(InputError, match=said):
        parse_plan(doc, "plan.yaml")


def test_a_warm_wave_starts_before_its_window_and_not_after_it():
    now = datetime(2026, 12, 5, 21, 0, tzinfo=timezone.utc)  # an hour before the window

    def wave(*migrations: str) -> WavePlan:
        return WavePlan.model_validate(
            {
                "id": "w004",
                "class": "P4",
                "window": WINDOW,
                "vms": [{"name": f"vm-{i}", "moref": f"vm-{i}", "migration": m} for i, m in enumerate(migrations)],
            }
        )

    cold = wave("cold")
    with pytest.raises(VmwaveError, match="may only run in its window"):
        check_window(cold, now, ignore=False)
    warm = wave("warm", "cold")
    check_window(warm, now, ignore=False)  # precopy now; every VM goes down at the window's start
    with pytest.raises(VmwaveError, match="may only run in its window"):
        check_window(warm, datetime(2026, 12, 6, 5, 0, tzinfo=timezone.utc), ignore=False)
    start = warm.window.start
    end = datetime(2026, 12, 6, 2, 0, tzinfo=timezone.utc)
    assert cutover_state(start, end, now, requested=False) == "wait"
    assert cutover_state(start, end, now, requested=True) == "due"
    assert cutover_state(start, end, datetime(2026, 12, 5, 22, 0, tzinfo=timezone.utc), requested=False) == "due"
    assert cutover_state(None, None, now, requested=False) == "wait"  # no window or time: a person cuts it over
    assert cutover_state(start, end, end, requested=False) == "missed"  # the window ended before it could start
    assert cutover_state(start, end, end, requested=True) == "due"  # a person asked: it goes now


@pytest.mark.skipif(not schema_check.available(), reason="../shared/schemas is not beside the repo")
def test_a_warm_datavolume_is_cdis_multi_stage_import(estate_by_name):
    vm = estate_by_name["db-01"]
    source = {
        "vddk": {
            "url": "https://vc/sdk",
            "uuid": vm.bios_uuid,
            "backingFile": vm.disks[0].file,
            "thumbprint": "AA",
            "secretRef": "s",
            "initImageURL": "vddk:8",
        }
    }
    dv = datavolume(vm, 0, load_maps(MAPS), "w004", source)
    rounds = [
        {"previous": "", "current": "snapshot-1"},
        {"previous": "52 de c0 d9 b9 43 9d 10-61 d5 4c 1b e9 7b 65 63/1", "current": "snapshot-2"},
    ]
    made = staged(dv, rounds, final=True)
    assert schema_check.problems(made) == []
    assert made["spec"]["checkpoints"] == rounds and made["spec"]["finalCheckpoint"] is True
    assert "checkpoints" not in dv["spec"]  # the builder's own stays cold
    assert schema_check.problems({**made, "spec": {**made["spec"], "checkpoints": [{"prev": "x"}]}})  # it can fail
