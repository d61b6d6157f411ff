"""A wave whose VMs reference common-instancetypes preferences starts only when the cluster has them."""

import re
from pathlib import Path

import pytest
import yaml

from vmwave.adapters.files import load_policy
from vmwave.adapters.kubernetes import Cluster
from vmwave.domain.maps import parse_maps
from vmwave.domain.plan import make_plan
from vmwave.domain.preferences import CLUSTER_PREFERENCE, PREFERENCE_API
from vmwave.errors import VmwaveError
from vmwave.plugins import for_planning
from vmwave.settings import Settings
from vmwave_tasks.clients import open_clients
from vmwave_tasks.wave import planned_wave, prepare_wave


def test_a_wave_referencing_preferences_the_cluster_lacks_is_refused_before_anything_changes(
    lab_settings, records, tmp_path
):
    maps_doc = {**yaml.safe_load(Path(lab_settings["VMWAVE_MAPS"]).read_text()), "preferences": "cluster"}
    maps_file = tmp_path / "maps.yaml"
    maps_file.write_text(yaml.safe_dump(maps_doc))
    settings = Settings.load(
        env={**lab_settings, "VMWAVE_MAPS": str(maps_file), "VMWAVE_VIRTIO_WIN": "/usr/share/virtio-win/virtio-win.iso"}
    )
    doc = make_plan(records, load_policy(), parse_maps(maps_doc, "maps.yaml"), "lab", **for_planning())
    wave = next(w for w in doc["waves"] if w["class"] == "P3")
    plan = tmp_path / "plan.yaml"
    plan.write_text(yaml.safe_dump(doc, sort_keys=False))
    cluster = Cluster(lab_settings["VMWAVE_KUBECONFIG"])
    vms_before = cluster.find("kubevirt.io/v1", "VirtualMachine", "vmwave", {"vmwave.io/wave": wave["id"]})

    with open_clients(settings) as clients, pytest.raises(VmwaveError) as refused:
        prepare_wave.fn(planned_wave(str(plan), wave["id"], settings), records, settings, clients)
    said = re.search(rf"has no {CLUSTER_PREFERENCE} ([\w., -]+): deploy them", str(refused.value))
    assert said and "set `preferences: inline` in the maps" in str(refused.value)
    missing = said.group(1).split(", ")
    assert {"debian", "windows.2k19.virtio"} <= set(missing)  # the lab's P3 wave: Debian and Windows Server 2019
    assert cluster.find("kubevirt.io/v1", "VirtualMachine", "vmwave", {"vmwave.io/wave": wave["id"]}) == vms_before

    try:
        for name in missing:  # as `kubectl apply -k` of kubevirt/common-instancetypes leaves them
            cluster.apply(
                {
                    "apiVersion": PREFERENCE_API,
                    "kind": CLUSTER_PREFERENCE,
                    "metadata": {"name": name, "labels": {"instancetype.kubevirt.io/vendor": "kubevirt.io"}},
                    "spec": {},
                }
            )
        with open_clients(settings) as clients:
            prepared = prepare_wave.fn(planned_wave(str(plan), wave["id"], settings), records, settings, clients)
        referenced = {job.objects.virtual_machine["spec"]["preference"]["name"] for job in prepared.jobs}
        assert referenced == set(missing)
    finally:
        for name in missing:
            cluster.delete(PREFERENCE_API, CLUSTER_PREFERENCE, None, name)
