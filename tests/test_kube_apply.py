"""Applying a wave's objects to the lab cluster: idempotent, found again by source labels, clear errors."""

import pytest
import yaml

from helpers import REPO
from vmwave.adapters.kubernetes import Cluster
from vmwave.domain.manifests import LABEL_UUID, LABEL_WAVE
from vmwave.adapters.files import load_maps, load_policy
from vmwave.domain.build import SourceAccess, wave_objects
from vmwave.domain.plan import make_plan, parse_plan
from vmwave.errors import ConnectionFailed, InputError, VmwaveError


@pytest.fixture(scope="module")
def cluster(kube):
    c = Cluster(kube.kubeconfig)
    c.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "vmwave"}})
    return c


def test_a_wave_applied_twice_exists_once(cluster, estate):
    maps = load_maps(REPO / "lab/estates/small.maps.yaml")
    doc = make_plan(estate, load_policy(), maps, "estate")
    wave = next(w for w in doc["waves"] if w["class"] == "P3")
    objects, failed = wave_objects(
        parse_plan(doc, "plan.yaml"),
        wave["id"],
        estate,
        maps,
        SourceAccess("https://vcenter.invalid/sdk", "reader", "CA"),
    )
    assert failed == {}
    first = [cluster.apply(o) for o in objects]
    second = [cluster.apply(o) for o in objects]  # a rerun of the same objects changes nothing
    assert [(o["metadata"]["uid"], o["metadata"]["generation"]) for o in second] == [
        (o["metadata"]["uid"], o["metadata"]["generation"]) for o in first
    ]  # no spec was written again
    still = [
        (f, s) for f, s in zip(first, second) if f["kind"] in ("Secret", "ConfigMap", "NetworkAttachmentDefinition")
    ]
    assert still and all(f["metadata"]["resourceVersion"] == s["metadata"]["resourceVersion"] for f, s in still)
    for vm in wave["vms"]:
        found = cluster.find("kubevirt.io/v1", "VirtualMachine", "vmwave", {LABEL_UUID: vm["uuid"]})
        assert len(found) == 1 and found[0]["metadata"]["labels"][LABEL_WAVE] == wave["id"]
        disks = cluster.find("cdi.kubevirt.io/v1beta1", "DataVolume", "vmwave", {LABEL_UUID: vm["uuid"]})
        assert len(disks) == len(found[0]["spec"]["template"]["spec"]["volumes"])
    everything = cluster.find("kubevirt.io/v1", "VirtualMachine", "vmwave", {LABEL_WAVE: wave["id"]})
    assert len(everything) == len(wave["vms"])


def test_a_field_owned_by_someone_else_is_a_clear_error(cluster):
    nad = {
        "apiVersion": "k8s.cni.cncf.io/v1",
        "kind": "NetworkAttachmentDefinition",
        "metadata": {"name": "owned", "namespace": "vmwave"},
        "spec": {"config": '{"mtu": 1500}'},
    }
    cluster.dynamic.server_side_apply(
        cluster.resource("k8s.cni.cncf.io/v1", "NetworkAttachmentDefinition"), body=nad, field_manager="network-team"
    )
    with pytest.raises(VmwaveError, match=r"applying NetworkAttachmentDefinition vmwave/owned failed \(409\)"):
        cluster.apply({**nad, "spec": {"config": '{"mtu": 9000}'}})
    assert cluster.apply({**nad, "spec": {"config": '{"mtu": 9000}'}}, force=True)["spec"]["config"] == '{"mtu": 9000}'


def test_waits_end_with_the_last_status(cluster):
    with pytest.raises(VmwaveError, match="timed out after 1s waiting for DataVolume vmwave/never to be there"):
        cluster.wait_for(
            "cdi.kubevirt.io/v1beta1", "DataVolume", "vmwave", "never", lambda o: o is not None, 1, "there"
        )


def test_bad_kubeconfigs(tmp_path, kube):
    with pytest.raises(InputError, match="kubeconfig not found"):
        Cluster(tmp_path / "missing")
    config = yaml.safe_load(kube.kubeconfig.read_text())
    config["users"][0]["user"]["token"] = "wrong"
    (tmp_path / "wrong").write_text(yaml.safe_dump(config))
    with pytest.raises(ConnectionFailed, match="refused the kubeconfig's credentials"):
        Cluster(tmp_path / "wrong").resource("v1", "Pod")
    config["clusters"][0]["cluster"]["server"] = "https://127.0.0.1:1"
    (tmp_path / "down").write_text(yaml.safe_dump(config))
    with pytest.raises(ConnectionFailed, match="cannot reach the Kubernetes API"):
        Cluster(tmp_path / "down").resource("v1", "Pod")
