"""The lab's simulated CDI and KubeVirt: every phase and every failure, through the real client."""

from __future__ import annotations

import http.server
import json
import re
import shutil
import subprocess
import threading
import time
import urllib.error
import urllib.request
import ssl

import pytest

from helpers import kubevirt_metrics, kubevirt_metrics_text
from vmwave.adapters.kubernetes import Cluster
from vmwave.errors import VmwaveError
from vmwave_lab.process import wait_for

CDI = "cdi.kubevirt.io/v1beta1"
KV = "kubevirt.io/v1"
NS = "ctrl"


@pytest.fixture(scope="module")
def cluster(kube):
    c = Cluster(kube.kubeconfig)
    c.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
    return c


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("images")
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(folder / "disk.qcow2"), "64M"], check=True)
    with open(folder / "big.raw", "wb") as handle:  # 8 MiB of data, served slowly: progress shows
        for i in range(8):
            handle.write(bytes([i + 1]) * (1 << 20))
    (folder / "page.html").write_text("<html><body>not a disk</body></html>\n" * 50)
    return folder


@pytest.fixture(scope="module")
def web(images):
    """A small HTTP server for CDI to import from; /private/ needs a bearer token."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            path = self.path
            if path.startswith("/private/"):
                if self.headers.get("Authorization") != "Bearer sesame":
                    self.send_error(401)
                    return
                path = path.removeprefix("/private")
            file = images / path.lstrip("/")
            if not file.is_file():
                self.send_error(404)
                return
            data = file.read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            for start in range(0, len(data), 1 << 20):
                self.wfile.write(data[start : start + (1 << 20)])
                if file.name == "big.raw":
                    time.sleep(0.15)  # a slow link, so the importer reports progress on the way

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def dv(name: str, source: dict, size: str = "1Gi", storage_class: str | None = None) -> dict:
    storage = {"resources": {"requests": {"storage": size}}}
    if storage_class:
        storage["storageClassName"] = storage_class
    return {
        "apiVersion": CDI,
        "kind": "DataVolume",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"source": source, "storage": storage},
    }


def phase_in(*phases):
    return lambda obj: obj is not None and (obj.get("status") or {}).get("phase") in phases


def running_condition(obj: dict) -> dict:
    return next(c for c in obj["status"]["conditions"] if c["type"] == "Running")


def events_for(cluster: Cluster, name: str) -> list[tuple[str, str]]:
    found = cluster.resource("v1", "Event").get(namespace=NS).items
    return [(e.reason, e.message) for e in found if e.involvedObject.name == name]


def test_http_import_walks_the_phases_with_progress(cluster, web, kube):
    seen: list[tuple[str, str]] = []

    def record(obj):
        status = (obj or {}).get("status") or {}
        seen.append((status.get("phase"), status.get("progress")))
        return status.get("phase") in ("Succeeded", "Failed")

    made = cluster.apply(dv("slow", {"http": {"url": f"{web}/big.raw"}}, "64Mi"))
    done = cluster.wait_for(CDI, "DataVolume", NS, "slow", record, 60, "imported", since=made)
    assert done["status"]["phase"] == "Succeeded" and done["status"]["progress"] == "100.0%"
    phases = [p for p, _ in seen]
    assert (
        phases.index("Pending")
        < phases.index("ImportScheduled")
        < phases.index("ImportInProgress")
        < phases.index("Succeeded")
    )
    middle = [p for _, p in seen if p and re.match(r"^\d+\.\d\d%$", p) and 0 < float(p[:-1]) < 100]
    assert middle, f"no progress between 0 and 100% in {seen}"
    conditions = {c["type"]: c["status"] for c in done["status"]["conditions"]}
    assert conditions == {"Bound": "True", "Ready": "True", "Running": "False"}
    pvc = cluster.get("v1", "PersistentVolumeClaim", NS, "slow")
    assert pvc["status"]["phase"] == "Bound" and pvc["metadata"]["ownerReferences"][0]["kind"] == "DataVolume"
    backing = kube.state_dir / "volumes" / NS / "slow.img"
    assert backing.read_bytes()[:1] == b"\x01" and backing.stat().st_size == 8 << 20
    assert ("ImportSucceeded", "Successfully imported into PVC slow") in events_for(cluster, "slow")


def test_qcow2_is_converted_to_raw_like_cdi_does(cluster, web, kube):
    cluster.apply(
        dv("qcow", {"http": {"url": f"{web}/private/disk.qcow2", "extraHeaders": ["Authorization: Bearer sesame"]}})
    )
    cluster.wait_for(CDI, "DataVolume", NS, "qcow", phase_in("Succeeded"), 60, "imported")
    info = json.loads(
        subprocess.run(
            ["qemu-img", "info", "--output=json", str(kube.state_dir / "volumes" / NS / "qcow.img")],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    assert info["format"] == "raw" and info["virtual-size"] == 64 << 20


@pytest.mark.parametrize(
    "name,source,size,message",
    [
        ("missing", {"http": {"url": "/nothing-here.qcow2"}}, "1Gi", "expected status code 200, got 404"),
        ("denied", {"http": {"url": "/private/disk.qcow2"}}, "1Gi", "got 401"),
        ("html", {"http": {"url": "/page.html"}}, "1Gi", "is not a disk image"),
        (
            "small",
            {"http": {"url": "/disk.qcow2"}},
            "32Mi",
            "Virtual image size 67108864 is larger than the reported available storage",
        ),
    ],
)
def test_import_failures_carry_cdis_reasons(cluster, web, name, source, size, message):
    source["http"]["url"] = web + source["http"]["url"]
    cluster.apply(dv(name, source, size))
    failed = cluster.wait_for(CDI, "DataVolume", NS, name, phase_in("Failed", "Succeeded"), 60, "finished")
    assert failed["status"]["phase"] == "Failed"
    running = running_condition(failed)
    assert running["reason"] == "Error" and message in running["message"]
    assert any(reason == "ErrImportFailed" and message in text for reason, text in events_for(cluster, name))


@pytest.mark.parametrize(
    "name,storage_class,size,message",
    [
        ("nosc", "missing-class", "1Gi", 'storageclass.storage.k8s.io "missing-class" not found'),
        ("full", "tiny", "2Gi", "insufficient capacity"),
    ],
)
def test_unprovisionable_claims_stay_pending(cluster, name, storage_class, size, message):
    cluster.apply(dv(name, {"blank": {}}, size, storage_class))
    pending = cluster.wait_for(CDI, "DataVolume", NS, name, phase_in("Pending"), 30, "pending")
    bound = next(c for c in pending["status"]["conditions"] if c["type"] == "Bound")
    assert (bound["status"], bound["reason"], bound["message"]) == ("False", "Pending", f"PVC {name} Pending")
    pvc_events = [
        e
        for e in cluster.resource("v1", "Event").get(namespace=NS).items
        if e.involvedObject.kind == "PersistentVolumeClaim" and e.involvedObject.name == name
    ]
    assert [e.reason for e in pvc_events] == ["ProvisioningFailed"] and message in pvc_events[0].message


def test_blank_and_registry_sources(cluster, kube, images):
    cluster.apply(dv("blank", {"blank": {}}, "100Mi"))
    cluster.wait_for(CDI, "DataVolume", NS, "blank", phase_in("Succeeded"), 30, "created")
    assert (kube.state_dir / "volumes" / NS / "blank.img").stat().st_size > 90 << 20
    registry = kube.state_dir / "registry"
    registry.mkdir(exist_ok=True)
    (registry / "debian12_latest.qcow2").write_bytes((images / "disk.qcow2").read_bytes())
    cluster.apply(dv("fromregistry", {"registry": {"url": "docker://registry.lab/debian12:latest"}}))
    cluster.wait_for(CDI, "DataVolume", NS, "fromregistry", phase_in("Succeeded"), 30, "imported")
    cluster.apply(dv("noimage", {"registry": {"url": "docker://registry.lab/none:1"}}))
    failed = cluster.wait_for(CDI, "DataVolume", NS, "noimage", phase_in("Failed"), 30, "failed")
    assert "failed to pull image" in running_condition(failed)["message"]


def test_upload_with_a_token(cluster, kube, images):
    cluster.apply(dv("upl", {"upload": {}}))
    cluster.wait_for(CDI, "DataVolume", NS, "upl", phase_in("UploadReady"), 30, "ready for upload")
    tokens = cluster.resource("upload.cdi.kubevirt.io/v1beta1", "UploadTokenRequest")
    token = tokens.create(
        namespace=NS,
        body={
            "apiVersion": "upload.cdi.kubevirt.io/v1beta1",
            "kind": "UploadTokenRequest",
            "metadata": {"name": "upl"},
            "spec": {"pvcName": "upl"},
        },
    ).status.token
    context = ssl.create_default_context(cafile=str(kube.ca_file))

    def upload(with_token: str) -> int:
        request = urllib.request.Request(
            f"{kube.url}/v1beta1/upload",
            data=(images / "disk.qcow2").read_bytes(),
            method="POST",
            headers={"Authorization": f"Bearer {with_token}"},
        )
        try:
            with urllib.request.urlopen(request, context=context, timeout=60) as response:
                return response.status
        except urllib.error.HTTPError as exc:
            return exc.code

    assert upload("wrong") == 401
    assert upload(token) == 200
    cluster.wait_for(CDI, "DataVolume", NS, "upl", phase_in("Succeeded"), 30, "uploaded")


# ---- KubeVirt ----


def vm(
    name: str,
    volumes: list[str],
    networks: list[dict] | None = None,
    memory: str = "1Gi",
    cpu: dict | None = None,
    annotations: dict | None = None,
    hugepages: bool = False,
    run: str = "Always",
) -> dict:
    networks = networks or [{"name": "default", "pod": {}}]
    interfaces = [
        {
            "name": n["name"],
            **({"masquerade": {}} if "pod" in n else {"bridge": {}}),
            "macAddress": f"00:50:56:0a:00:{i:02x}",
        }
        for i, n in enumerate(networks)
    ]
    memory_spec = {"guest": memory, **({"hugepages": {"pageSize": "1Gi"}} if hugepages else {})}
    return {
        "apiVersion": KV,
        "kind": "VirtualMachine",
        "metadata": {"name": name, "namespace": NS, "annotations": annotations or {}},
        "spec": {
            "runStrategy": run,
            "template": {
                "spec": {
                    "domain": {
                        "cpu": cpu or {"cores": 1},
                        "memory": memory_spec,
                        "devices": {
                            "disks": [{"name": v, "disk": {"bus": "virtio"}} for v in volumes],
                            "interfaces": interfaces,
                        },
                    },
                    "networks": networks,
                    "volumes": [{"name": v, "dataVolume": {"name": v}} for v in volumes],
                }
            },
        },
    }


def printable(*states):
    return lambda obj: obj is not None and (obj.get("status") or {}).get("printableStatus") in states


def has_condition(kind):
    return lambda obj: (
        obj is not None
        and any(c["type"] == kind and c["status"] == "True" for c in (obj.get("status") or {}).get("conditions", []))
    )


def test_vm_runs_and_its_guest_agent_reports(cluster):
    cluster.apply(dv("boot1", {"blank": {}}))
    cluster.apply(
        {
            "apiVersion": "k8s.cni.cncf.io/v1",
            "kind": "NetworkAttachmentDefinition",
            "metadata": {"name": "vlan100", "namespace": NS},
            "spec": {"config": "{}"},
        }
    )
    cluster.apply(
        vm(
            "web1",
            ["boot1"],
            [{"name": "nic0", "multus": {"networkName": f"{NS}/vlan100"}}],
            annotations={"lab.vmwave.io/guest-os": "debian 12", "lab.vmwave.io/guest-ips": "10.100.0.7"},
        )
    )
    cluster.wait_for(KV, "VirtualMachine", NS, "web1", printable("Running"), 60, "Running")
    vmi = cluster.wait_for(
        KV, "VirtualMachineInstance", NS, "web1", has_condition("AgentConnected"), 30, "agent connected"
    )
    assert vmi["status"]["phase"] == "Running" and vmi["status"]["nodeName"].startswith("lab-node-")
    assert vmi["status"]["guestOSInfo"]["id"] == "debian" and vmi["status"]["guestOSInfo"]["versionId"] == "12"
    assert [(i["mac"], i["ipAddress"]) for i in vmi["status"]["interfaces"]] == [("00:50:56:0a:00:00", "10.100.0.7")]
    assert vmi["metadata"]["ownerReferences"][0]["name"] == "web1"
    assert cluster.get(KV, "VirtualMachine", NS, "web1")["status"]["ready"] is True


def test_running_vmis_have_kubevirts_metrics_with_their_labels(cluster, kube):
    """Simulated guests say so (source="simulated"); their counters grow; a halted VM has none."""
    cluster.apply(dv("metrics1", {"blank": {}}))
    machine = vm("metered", ["metrics1"], cpu={"cores": 2}, memory="2Gi")
    machine["spec"]["template"]["metadata"] = {
        "labels": {"vmwave.io/wave": "w042", "app.kubernetes.io/managed-by": "vmwave"}
    }
    cluster.apply(machine)
    vmi = cluster.wait_for(KV, "VirtualMachineInstance", NS, "metered", has_condition("AgentConnected"), 60, "running")
    labels = {
        "name": "metered",
        "namespace": NS,
        "node": vmi["status"]["nodeName"],
        "source": "simulated",
        "kubernetes_vmi_label_vmwave_io_wave": "w042",
        "kubernetes_vmi_label_app_kubernetes_io_managed_by": "vmwave",
    }
    first = kubevirt_metrics(kube, name="metered")
    assert first[("kubevirt_vmi_memory_available_bytes", frozenset(labels.items()))] == 2 << 30
    assert 0 < first[("kubevirt_vmi_memory_usable_bytes", frozenset(labels.items()))] < 2 << 30
    nic = frozenset({**labels, "interface": "default", "network": "default"}.items())
    drive = frozenset({**labels, "drive": "metrics1"}.items())
    assert {
        ("kubevirt_vmi_network_receive_bytes_total", nic),
        ("kubevirt_vmi_network_transmit_bytes_total", nic),
        ("kubevirt_vmi_storage_iops_read_total", drive),
        ("kubevirt_vmi_storage_iops_write_total", drive),
        ("kubevirt_vmi_cpu_usage_seconds_total", frozenset(labels.items())),
    } <= set(first)
    cpu = ("kubevirt_vmi_cpu_usage_seconds_total", frozenset(labels.items()))
    assert wait_for(lambda: kubevirt_metrics(kube, name="metered")[cpu] > first[cpu], time.monotonic() + 10)
    cluster.patch(KV, "VirtualMachine", NS, "metered", {"spec": {"runStrategy": "Halted"}})
    cluster.wait_for(KV, "VirtualMachineInstance", NS, "metered", lambda o: o is None, 30, "deleted")
    assert kubevirt_metrics(kube, name="metered") == {}


def test_a_live_migration_walks_kubevirts_phases_and_moves_the_vmi(cluster, kube):
    """Its copy shows in the metrics while it runs, its phases in virt-controller's histogram after."""
    cluster.apply(dv("moving1", {"blank": {}}))
    cluster.apply(vm("mover", ["moving1"], memory="1Gi"))
    vmi = cluster.wait_for(KV, "VirtualMachineInstance", NS, "mover", has_condition("AgentConnected"), 60, "running")
    source = vmi["status"]["nodeName"]
    migration = {
        "apiVersion": KV,
        "kind": "VirtualMachineInstanceMigration",
        "metadata": {"name": "mover-move", "namespace": NS},
        "spec": {"vmiName": "mover"},
    }
    cluster.apply(migration)
    copying = ("kubevirt_vmi_migration_data_remaining_bytes", "kubevirt_vmi_migration_data_processed_bytes")
    assert wait_for(
        lambda: all(any(name == wanted for name, _ in kubevirt_metrics(kube, name="mover")) for wanted in copying),
        time.monotonic() + 30,
    )
    done = cluster.wait_for(
        KV,
        "VirtualMachineInstanceMigration",
        NS,
        "mover-move",
        lambda o: (o.get("status") or {}).get("phase") in ("Succeeded", "Failed"),
        60,
        "finished",
    )
    assert [p["phase"] for p in done["status"]["phaseTransitionTimestamps"]] == [
        "Pending",
        "Scheduling",
        "Scheduled",
        "PreparingTarget",
        "TargetReady",
        "Running",
        "Succeeded",
    ]
    moved = cluster.get(KV, "VirtualMachineInstance", NS, "mover")
    assert moved["status"]["nodeName"] != source and moved["status"]["migrationState"]["completed"] is True
    after = kubevirt_metrics(kube)
    histogram = "kubevirt_vmi_migration_phase_transition_time_from_creation_seconds_count"
    assert after[(histogram, frozenset({("phase", "Succeeded")}))] >= 1  # labelled by phase only
    assert not any(name in copying for name, labels in kubevirt_metrics(kube, name="mover"))  # the copy is over
    if shutil.which("promtool"):
        check = subprocess.run(
            ["promtool", "check", "metrics"], input=kubevirt_metrics_text(kube), capture_output=True, text=True
        )
        assert check.returncode == 0, check.stdout + check.stderr
    cluster.apply({**migration, "metadata": {"name": "ghost-move", "namespace": NS}, "spec": {"vmiName": "ghost"}})
    failed = cluster.wait_for(
        KV,
        "VirtualMachineInstanceMigration",
        NS,
        "ghost-move",
        lambda o: (o.get("status") or {}).get("phase") == "Failed",
        30,
        "failed",
    )
    assert "not running" in failed["status"]["migrationState"]["failureReason"]


def test_missing_datavolume_then_created(cluster):
    cluster.apply(vm("late", ["late-disk"]))
    waiting = cluster.wait_for(
        KV, "VirtualMachine", NS, "late", printable("ErrorPvcNotFound"), 30, "waiting for its PVC"
    )
    failure = next(c for c in waiting["status"]["conditions"] if c["type"] == "Failure")
    assert "late-disk does not exist" in failure["message"]
    cluster.apply(dv("late-disk", {"blank": {}}))
    cluster.wait_for(KV, "VirtualMachine", NS, "late", printable("Running"), 60, "Running")


def test_failed_datavolume_is_a_datavolume_error(cluster, web):
    cluster.apply(dv("broken-disk", {"http": {"url": f"{web}/nothing.qcow2"}}))
    cluster.apply(vm("broken", ["broken-disk"]))
    failed = cluster.wait_for(KV, "VirtualMachine", NS, "broken", printable("DataVolumeError"), 60, "failed")
    assert "got 404" in next(c for c in failed["status"]["conditions"] if c["type"] == "Failure")["message"]


def test_missing_nad_fails_like_kubevirt_until_it_exists(cluster):
    cluster.apply(dv("nonet-disk", {"blank": {}}))
    cluster.apply(vm("nonet", ["nonet-disk"], [{"name": "nic0", "multus": {"networkName": "vlan999"}}]))
    stuck = cluster.wait_for(
        KV,
        "VirtualMachine",
        NS,
        "nonet",
        lambda o: o is not None and any(c["type"] == "Failure" for c in (o.get("status") or {}).get("conditions", [])),
        30,
        "failing",
    )
    failure = next(c for c in stuck["status"]["conditions"] if c["type"] == "Failure")
    assert failure["reason"] == "FailedCreate" and f"network attachment definition {NS}/vlan999" in failure["message"]
    cluster.apply(
        {
            "apiVersion": "k8s.cni.cncf.io/v1",
            "kind": "NetworkAttachmentDefinition",
            "metadata": {"name": "vlan999", "namespace": NS},
            "spec": {"config": "{}"},
        }
    )
    cluster.wait_for(KV, "VirtualMachine", NS, "nonet", printable("Running"), 60, "Running")


def test_hugepages_schedule_only_where_they_exist(cluster):
    cluster.apply(dv("huge-disk", {"blank": {}}))
    cluster.apply(vm("huge", ["huge-disk"], memory="32Gi", hugepages=True))
    stuck = cluster.wait_for(KV, "VirtualMachine", NS, "huge", printable("ErrorUnschedulable"), 30, "unschedulable")
    message = next(c for c in stuck["status"]["conditions"] if c["type"] == "Failure")["message"]
    assert message.startswith("0/2 nodes are available:") and "Insufficient hugepages-1Gi" in message
    cluster.apply(dv("pinned-disk", {"blank": {}}))
    cluster.apply(
        vm("pinned", ["pinned-disk"], memory="4Gi", hugepages=True, cpu={"cores": 4, "dedicatedCpuPlacement": True})
    )
    cluster.wait_for(KV, "VirtualMachine", NS, "pinned", printable("Running"), 60, "Running")
    assert cluster.get(KV, "VirtualMachineInstance", NS, "pinned")["status"]["nodeName"] == "lab-node-2"


def test_an_agent_that_never_connects(cluster):
    cluster.apply(dv("quiet-disk", {"blank": {}}))
    cluster.apply(vm("quiet", ["quiet-disk"], annotations={"lab.vmwave.io/guest-agent": "never"}))
    cluster.wait_for(KV, "VirtualMachine", NS, "quiet", printable("Running"), 60, "Running")
    with pytest.raises(VmwaveError, match="timed out after 1s waiting for VirtualMachineInstance") as waited:
        cluster.wait_for(
            KV, "VirtualMachineInstance", NS, "quiet", has_condition("AgentConnected"), 1, "agent connected"
        )
    assert waited.value.cause == "timed-out"
    assert cluster.get(KV, "VirtualMachineInstance", NS, "quiet")["status"]["phase"] == "Running"  # up, agent silent


def test_halting_a_vm_removes_its_instance(cluster):
    cluster.apply(dv("halt-disk", {"blank": {}}))
    cluster.apply(vm("halt", ["halt-disk"]))
    cluster.wait_for(KV, "VirtualMachine", NS, "halt", printable("Running"), 60, "Running")
    cluster.patch(KV, "VirtualMachine", NS, "halt", {"spec": {"runStrategy": "Halted"}})
    cluster.wait_for(KV, "VirtualMachineInstance", NS, "halt", lambda o: o is None, 30, "deleted")
    cluster.wait_for(KV, "VirtualMachine", NS, "halt", printable("Stopped"), 30, "Stopped")


def test_https_source_with_a_ca_config_map_and_secret_headers(cluster, images, tmp_path):
    """How vmwave's transfer server is reached: HTTPS with its own CA, a per-image token from a Secret."""
    import base64

    from vmwave_lab.kube.tls import write_certificates

    ca, cert, key = write_certificates(tmp_path)

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            if self.headers.get("Authorization") != "Bearer per-image-token":
                self.send_error(403)
                return
            data = (images / "disk.qcow2").read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"https://127.0.0.1:{server.server_address[1]}/disk.qcow2"
        cluster.apply(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "transfer-ca", "namespace": NS},
                "data": {"ca.pem": ca.read_text()},
            }
        )
        cluster.apply(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "disk-token", "namespace": NS},
                "data": {"auth": base64.b64encode(b"Authorization: Bearer per-image-token").decode()},
            }
        )
        cluster.apply(
            dv("tls", {"http": {"url": url, "certConfigMap": "transfer-ca", "secretExtraHeaders": ["disk-token"]}})
        )
        cluster.wait_for(CDI, "DataVolume", NS, "tls", phase_in("Succeeded"), 60, "imported")
        cluster.apply(dv("tls-untrusted", {"http": {"url": url, "secretExtraHeaders": ["disk-token"]}}))
        failed = cluster.wait_for(CDI, "DataVolume", NS, "tls-untrusted", phase_in("Failed"), 60, "failed")
        assert "CERTIFICATE_VERIFY_FAILED" in running_condition(failed)["message"]
    finally:
        server.shutdown()


def test_a_guests_services_answer_where_they_did_after_the_api_restarts(cluster, kube):
    """A control plane's restart does not move a running guest's services: the VMI's forward still answers (the
    rehearsal restarts the API mid-wave, and a smoke check then found a closed port)."""
    import socket

    from vmwave_lab import kubernetes as lab_kube

    cluster.apply(dv("boot-kept", {"blank": {}}))
    cluster.apply(vm("kept", ["boot-kept"], annotations={"lab.vmwave.io/guest-os": "debian 12"}))
    vmi = cluster.wait_for(KV, "VirtualMachineInstance", NS, "kept", has_condition("AgentConnected"), 30, "agent")
    forwards = dict(item.split("=", 1) for item in vmi["metadata"]["annotations"]["vmwave.io/port-forwards"].split(","))
    host, _, port = forwards["22"].rpartition(":")
    socket.create_connection((host, int(port)), timeout=5).close()
    lab_kube.restart(kube.state_dir)
    wait_for(lambda: cluster.get(KV, "VirtualMachineInstance", NS, "kept") is not None, time.monotonic() + 30)
    socket.create_connection((host, int(port)), timeout=5).close()  # refused before: the listener moved
