"""The transfer server hands converted images to the lab CDI over HTTPS, one token per image."""

import base64
import ssl
import subprocess
import urllib.error
import urllib.request

import pytest

from vmwave.adapters.datastore import download
from vmwave.adapters.kubernetes import Cluster
from vmwave.adapters.transfer import TransferServer
from vmwave_lab.kube.tls import write_certificates

NS = "transfer"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("transfer")
    ca, cert, key = write_certificates(folder)
    for name in ("a.qcow2", "b.qcow2"):
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(folder / name), "32M"], check=True)
    with TransferServer(cert, key) as running:
        yield running, folder, ca


def fetch(url: str, token: str, ca, headers=None) -> int:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}", **(headers or {})})
    try:
        with urllib.request.urlopen(request, context=ssl.create_default_context(cafile=str(ca)), timeout=30) as response:
            response.read()
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_a_token_opens_its_image_only(server):
    transfer, folder, ca = server
    url_a, url_b = f"{transfer.url}/images/w1/a/disk0", f"{transfer.url}/images/w1/b/disk0"
    token_a = transfer.publish("/images/w1/a/disk0", folder / "a.qcow2")
    transfer.publish("/images/w1/b/disk0", folder / "b.qcow2")
    assert fetch(url_a, token_a, ca) == 200
    assert fetch(url_b, token_a, ca) == 403
    assert fetch(url_a, "guess", ca) == 403
    assert fetch(url_a, token_a, ca, {"Range": "bytes=100-"}) == 206
    transfer.retract(token_a)
    assert fetch(url_a, token_a, ca) == 403


def test_downloads_through_it_resume(server, tmp_path):
    transfer, folder, ca = server
    url, token = f"{transfer.url}/images/w1/b/disk0", transfer.publish("/images/w1/b/disk0", folder / "b.qcow2")
    partial = tmp_path / "b.qcow2"
    partial.write_bytes((folder / "b.qcow2").read_bytes()[:1000])
    got = download(url, partial, {"Authorization": f"Bearer {token}"}, ssl.create_default_context(cafile=str(ca)))
    assert got.resumed_from == 1000 and partial.read_bytes() == (folder / "b.qcow2").read_bytes()


def test_cdi_imports_from_it_with_a_ca_config_map_and_a_token_secret(server, kube):
    transfer, folder, ca = server
    url, token = f"{transfer.url}/images/w1/a/disk0", transfer.publish("/images/w1/a/disk0", folder / "a.qcow2")
    cluster = Cluster(kube.kubeconfig)
    cluster.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
    cluster.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "vmwave-transfer-ca", "namespace": NS},
                   "data": {"ca.pem": ca.read_text()}})
    cluster.apply({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "a-token", "namespace": NS},
                   "data": {"auth": base64.b64encode(f"Authorization: Bearer {token}".encode()).decode()}})
    cluster.apply({"apiVersion": "cdi.kubevirt.io/v1beta1", "kind": "DataVolume", "metadata": {"name": "a", "namespace": NS},
                   "spec": {"source": {"http": {"url": url, "certConfigMap": "vmwave-transfer-ca",
                                                "secretExtraHeaders": ["a-token"]}},
                            "storage": {"resources": {"requests": {"storage": "64Mi"}}}}})
    done = cluster.wait_for("cdi.kubevirt.io/v1beta1", "DataVolume", NS, "a",
                            lambda o: (o or {}).get("status", {}).get("phase") in ("Succeeded", "Failed"), 60, "imported")
    assert done["status"]["phase"] == "Succeeded", done["status"]
