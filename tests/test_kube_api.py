"""The lab Kubernetes API, driven by the official client over HTTPS, as a real cluster would be."""

import json
import shutil
import ssl
import subprocess
import urllib.error
import urllib.request

import yaml

import pytest
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic.exceptions import ConflictError

from vmwave_lab import kubernetes as lab_kube


@pytest.fixture(scope="module")
def core(kclient):
    return client.CoreV1Api(kclient)


@pytest.fixture(scope="module")
def ns(core):
    core.create_namespace({"metadata": {"name": "api-test"}})
    return "api-test"


def raw(kube, method: str, path: str, body=None, content_type: str = "application/json", token: str | None = None):
    """A plain HTTPS request with the kubeconfig's token: for what the typed client has no call for."""
    cfg = yaml.safe_load(kube.kubeconfig.read_text())
    request = urllib.request.Request(
        kube.url + path,
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"Bearer {token or cfg['users'][0]['user']['token']}", "Content-Type": content_type},
    )
    context = ssl.create_default_context(cafile=str(kube.ca_file))
    try:
        with urllib.request.urlopen(request, context=context, timeout=30) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def status_of(exc: ApiException) -> dict:
    body = json.loads(exc.body)
    assert body["kind"] == "Status" and body["code"] == exc.status
    return body


def test_discovery_and_version(dyn, kclient, kube):
    for api_version, kind in [
        ("kubevirt.io/v1", "VirtualMachine"),
        ("kubevirt.io/v1", "VirtualMachineInstance"),
        ("kubevirt.io/v1", "KubeVirt"),
        ("cdi.kubevirt.io/v1beta1", "DataVolume"),
        ("k8s.cni.cncf.io/v1", "NetworkAttachmentDefinition"),
        ("v1", "PersistentVolumeClaim"),
        ("storage.k8s.io/v1", "StorageClass"),
        ("v1", "Event"),
        ("v1", "Secret"),
        ("v1", "Pod"),
    ]:
        assert dyn.resources.get(api_version=api_version, kind=kind).kind == kind
    assert client.VersionApi(kclient).get_code().git_version.startswith("v1.")
    for path in ("/version", "/version/"):
        assert raw(kube, "GET", path)[1]["major"] == "1"


def test_create_get_list_replace_delete(core, ns):
    made = core.create_namespaced_config_map(
        ns, {"metadata": {"name": "one", "labels": {"tier": "db"}}, "data": {"a": "1"}}
    )
    assert made.metadata.uid and made.metadata.resource_version and made.metadata.creation_timestamp
    got = core.read_namespaced_config_map("one", ns)
    assert got.data == {"a": "1"}
    got.data = {"a": "2"}
    replaced = core.replace_namespaced_config_map("one", ns, got)
    assert int(replaced.metadata.resource_version) > int(made.metadata.resource_version)
    listed = core.list_namespaced_config_map(ns)
    assert [c.metadata.name for c in listed.items] == ["one"] and listed.metadata.resource_version
    core.delete_namespaced_config_map("one", ns)
    with pytest.raises(ApiException) as gone:
        core.read_namespaced_config_map("one", ns)
    assert gone.value.status == 404 and status_of(gone.value)["reason"] == "NotFound"


def test_errors_are_status_bodies_with_the_right_codes(core, ns, kube, kclient):
    core.create_namespaced_secret(ns, {"metadata": {"name": "s"}, "stringData": {"k": "v"}})
    with pytest.raises(ApiException) as dup:
        core.create_namespaced_secret(ns, {"metadata": {"name": "s"}})
    assert dup.value.status == 409 and status_of(dup.value)["reason"] == "AlreadyExists"
    with pytest.raises(ApiException) as invalid:
        core.create_namespaced_secret(ns, {"metadata": {"name": "Not_Valid"}})
    assert invalid.value.status == 422 and status_of(invalid.value)["reason"] == "Invalid"
    with pytest.raises(ApiException) as missing_ns:
        core.create_namespaced_secret("nope", {"metadata": {"name": "s"}})
    assert missing_ns.value.status == 404
    with pytest.raises(ApiException) as bad:
        core.list_namespaced_secret(ns, label_selector="a in (b")
    assert bad.value.status == 400
    stale = core.read_namespaced_secret("s", ns)
    core.patch_namespaced_secret("s", ns, {"metadata": {"labels": {"x": "1"}}})
    with pytest.raises(ApiException) as conflict:
        core.replace_namespaced_secret("s", ns, stale)
    assert conflict.value.status == 409 and status_of(conflict.value)["reason"] == "Conflict"

    code, body = raw(kube, "GET", "/api/v1/namespaces", token="not-the-token")
    assert code == 401 and body["reason"] == "Unauthorized"
    viewer = client.CoreV1Api(config.new_client_from_config(str(kube.state_dir / "kubeconfig-viewer")))
    assert viewer.list_namespaced_secret(ns).items
    with pytest.raises(ApiException) as forbidden:
        viewer.create_namespaced_config_map(ns, {"metadata": {"name": "x"}})
    assert forbidden.value.status == 403 and status_of(forbidden.value)["reason"] == "Forbidden"


def test_merge_and_json_patch(core, ns, kube):
    core.create_namespaced_config_map(ns, {"metadata": {"name": "p"}, "data": {"a": "1", "b": "2"}})
    core.patch_namespaced_config_map("p", ns, {"data": {"a": None, "c": "3"}})
    assert core.read_namespaced_config_map("p", ns).data == {"b": "2", "c": "3"}
    path = f"/api/v1/namespaces/{ns}/configmaps/p"
    code, _ = raw(
        kube,
        "PATCH",
        path,
        [{"op": "replace", "path": "/data/b", "value": "20"}, {"op": "add", "path": "/data/d", "value": "4"}],
        "application/json-patch+json",
    )
    assert code == 200
    assert core.read_namespaced_config_map("p", ns).data == {"b": "20", "c": "3", "d": "4"}
    code, body = raw(kube, "PATCH", path, [{"op": "remove", "path": "/data/zzz"}], "application/json-patch+json")
    assert code == 422 and body["reason"] == "Invalid"


def vm_body(name, ns, labels=None, memory="1Gi"):
    return {
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachine",
        "metadata": {"name": name, "namespace": ns, "labels": labels or {}},
        "spec": {
            "runStrategy": "Halted",
            "template": {"spec": {"domain": {"memory": {"guest": memory}, "devices": {}}}},
        },
    }


def nad_body(name, ns, labels=None, config="{}"):
    return {
        "apiVersion": "k8s.cni.cncf.io/v1",
        "kind": "NetworkAttachmentDefinition",
        "metadata": {"name": name, "namespace": ns, "labels": labels or {}},
        "spec": {"config": config},
    }


def test_server_side_apply_owns_fields_and_conflicts(dyn, ns):
    nads = dyn.resources.get(api_version="k8s.cni.cncf.io/v1", kind="NetworkAttachmentDefinition")
    apply = lambda manager, force=None, **kw: dyn.server_side_apply(  # noqa: E731
        nads, body=nad_body("ssa", ns, **kw), field_manager=manager, force_conflicts=force
    ).to_dict()
    first = apply("vmwave", labels={"a": "1"})
    assert first["metadata"]["generation"] == 1
    assert [m["manager"] for m in first["metadata"]["managedFields"]] == ["vmwave"]
    again = apply("vmwave", labels={"a": "1"})
    assert again["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]  # a no-op changes nothing
    with pytest.raises(ConflictError) as conflict:
        apply("someone-else", labels={"a": "2"})
    assert "metadata.labels.a" in str(conflict.value.body)
    forced = apply("someone-else", force=True, labels={"a": "2"})
    assert forced["metadata"]["labels"] == {"a": "2"}
    assert apply("someone-else", labels={"a": "2"}, config='{"mtu": 9000}')["metadata"]["generation"] == 2
    dropped = apply("someone-else", config='{"mtu": 9000}')
    assert "a" not in (dropped["metadata"].get("labels") or {})  # fields a manager stops applying go away


def test_status_subresource(dyn, ns):
    vms = dyn.resources.get(api_version="kubevirt.io/v1", kind="VirtualMachine")
    vms.create(body={**vm_body("st", ns), "status": {"printableStatus": "Hacked"}}, namespace=ns)
    assert not (vms.get(name="st", namespace=ns).to_dict().get("status") or {}).get("printableStatus") == "Hacked"
    status_api = dyn.resources.get(api_version="kubevirt.io/v1", kind="VirtualMachine").subresources["status"]
    status_api.patch(
        body={"status": {"printableStatus": "Stopped"}},
        name="st",
        namespace=ns,
        content_type="application/merge-patch+json",
    )
    vm = vms.get(name="st", namespace=ns).to_dict()
    assert vm["status"]["printableStatus"] == "Stopped" and vm["metadata"]["generation"] == 1
    vms.patch(
        body={"status": {"printableStatus": "Nope"}, "metadata": {"labels": {"b": "1"}}},
        name="st",
        namespace=ns,
        content_type="application/merge-patch+json",
    )
    assert vms.get(name="st", namespace=ns).status.printableStatus == "Stopped"


def test_label_and_field_selectors(core, ns):
    for name, labels in (
        ("s1", {"app": "erp", "tier": "db"}),
        ("s2", {"app": "erp", "tier": "web"}),
        ("s3", {"app": "crm"}),
    ):
        core.create_namespaced_config_map(ns, {"metadata": {"name": name, "labels": labels}})
    names = lambda **kw: sorted(c.metadata.name for c in core.list_namespaced_config_map(ns, **kw).items)  # noqa: E731
    assert names(label_selector="app=erp") == ["s1", "s2"]
    assert names(label_selector="app=erp,tier!=db") == ["s2"]
    assert names(label_selector="tier in (db,web)") == ["s1", "s2"]
    assert names(label_selector="app,!tier") == ["s3"]
    assert names(field_selector="metadata.name=s3") == ["s3"]
    assert names(label_selector="app,app notin (erp)") == ["s3"]  # notin alone also matches unlabelled objects


def test_owner_references_cascade(core, ns):
    owner = core.create_namespaced_config_map(ns, {"metadata": {"name": "owner"}})
    ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner.metadata.uid}
    core.create_namespaced_config_map(ns, {"metadata": {"name": "child", "ownerReferences": [ref]}})
    child = core.read_namespaced_config_map("child", ns)
    core.create_namespaced_secret(
        ns,
        {
            "metadata": {
                "name": "grandchild",
                "ownerReferences": [
                    {"apiVersion": "v1", "kind": "ConfigMap", "name": "child", "uid": child.metadata.uid}
                ],
            }
        },
    )
    core.delete_namespaced_config_map("owner", ns)
    with pytest.raises(ApiException):
        core.read_namespaced_config_map("child", ns)
    with pytest.raises(ApiException):
        core.read_namespaced_secret("grandchild", ns)


def test_watch_from_a_resource_version(dyn, core, ns):
    cms = dyn.resources.get(api_version="v1", kind="ConfigMap")
    start = core.list_namespaced_config_map(ns).metadata.resource_version
    core.create_namespaced_config_map(ns, {"metadata": {"name": "w1"}})
    core.patch_namespaced_config_map("w1", ns, {"data": {"x": "1"}})
    core.delete_namespaced_config_map("w1", ns)
    seen = []
    for event in dyn.watch(cms, namespace=ns, resource_version=start, timeout=5):
        seen.append((event["type"], event["raw_object"]["metadata"]["name"]))
        if event["type"] == "DELETED":
            break
    assert seen == [("ADDED", "w1"), ("MODIFIED", "w1"), ("DELETED", "w1")]


@pytest.mark.lab  # starts its own lab servers
def test_state_survives_a_restart(tmp_path):
    state = tmp_path / "k"
    first = lab_kube.start(state)
    api = client.CoreV1Api(config.new_client_from_config(str(first.kubeconfig)))
    api.create_namespaced_config_map("default", {"metadata": {"name": "keep"}, "data": {"k": "v"}})
    version = api.read_namespaced_config_map("keep", "default").metadata.resource_version
    lab_kube.stop(state)
    second = lab_kube.start(state)
    api = client.CoreV1Api(config.new_client_from_config(str(second.kubeconfig)))
    kept = api.read_namespaced_config_map("keep", "default")
    assert kept.data == {"k": "v"} and kept.metadata.resource_version == version
    api.create_namespaced_config_map("default", {"metadata": {"name": "after"}})
    assert int(api.read_namespaced_config_map("after", "default").metadata.resource_version) > int(version)
    code, body = raw(second, "GET", "/api/v1/namespaces/default/configmaps?watch=true&resourceVersion=1")
    assert code == 410 and body["reason"] == "Expired"  # watch history does not survive a restart
    lab_kube.stop(state)


@pytest.mark.skipif(not shutil.which("kubectl"), reason="kubectl is not installed")
def test_kubectl_works_with_the_kubeconfig(kube, ns):
    def run(*a):
        return subprocess.run(
            ["kubectl", "--kubeconfig", str(kube.kubeconfig), *a], capture_output=True, text=True, timeout=60
        )

    created = run("-n", ns, "create", "configmap", "from-kubectl", "--from-literal=a=b")
    assert created.returncode == 0, created.stderr
    got = run("-n", ns, "get", "configmap", "from-kubectl", "-o", "jsonpath={.data.a}")
    assert got.stdout == "b"
    assert run("get", "storageclass", "-o", "name").stdout.split() == [
        "storageclass.storage.k8s.io/rook-ceph-block-vm",
        "storageclass.storage.k8s.io/tiny",
    ]


def test_every_write_with_dry_run_answers_as_the_real_one_and_stores_nothing(core, ns, kube):
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "dry"}, "data": {"a": "1"}}
    code, made = raw(kube, "POST", f"/api/v1/namespaces/{ns}/configmaps?dryRun=All", body)
    assert code == 201 and made["metadata"]["name"] == "dry"
    code, _ = raw(
        kube,
        "PATCH",
        f"/api/v1/namespaces/{ns}/configmaps/dry-applied?dryRun=All&fieldManager=t",
        body | {"metadata": {"name": "dry-applied"}},
        "application/apply-patch+yaml",
    )
    assert code == 201
    assert [
        c.metadata.name for c in core.list_namespaced_config_map(ns).items if c.metadata.name.startswith("dry")
    ] == []
    core.create_namespaced_config_map(ns, body)
    code, _ = raw(kube, "PUT", f"/api/v1/namespaces/{ns}/configmaps/dry?dryRun=All", body | {"data": {"a": "2"}})
    assert code == 200
    code, _ = raw(kube, "DELETE", f"/api/v1/namespaces/{ns}/configmaps/dry?dryRun=All")
    assert code == 200 and core.read_namespaced_config_map("dry", ns).data == {"a": "1"}
    code, refused = raw(kube, "POST", "/api/v1/namespaces/no-such-ns/configmaps?dryRun=All", body)
    assert code == 404 and refused["reason"] == "NotFound"


def test_a_resource_quota_counts_what_the_namespace_holds_and_refuses_what_passes_it(core, kube):
    core.create_namespace({"metadata": {"name": "quota-test"}})
    core.create_namespaced_resource_quota(
        "quota-test", {"metadata": {"name": "q"}, "spec": {"hard": {"requests.storage": "10Gi", "pods": "5"}}}
    )
    claim = {
        "metadata": {"name": "c1"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "8Gi"}}},
    }
    core.create_namespaced_persistent_volume_claim("quota-test", claim)
    quota = core.read_namespaced_resource_quota("q", "quota-test")
    assert quota.status.used == {"requests.storage": str(8 * 2**30), "pods": "0"}
    assert quota.status.hard == {"requests.storage": "10Gi", "pods": "5"}
    second = {**claim, "metadata": {"name": "c2"}}
    for dry in ("All", None):  # admission answers a dry run as it answers the write
        with pytest.raises(ApiException) as caught:
            core.create_namespaced_persistent_volume_claim("quota-test", second, dry_run=dry)
        assert caught.value.status == 403
        assert "exceeded quota: q, requested: requests.storage=" in status_of(caught.value)["message"]
    assert [c.metadata.name for c in core.list_namespaced_persistent_volume_claim("quota-test").items] == ["c1"]
