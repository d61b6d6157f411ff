"""The Kubernetes work pool example, checked without a cluster: our machines cannot run one.

The base job template renders, with Prefect's own templating, to a Job the
Kubernetes API types accept; the RBAC names only resources the Kubernetes,
KubeVirt and CDI APIs serve, and wildcards nowhere (that the waves need all of
it and nothing more is test_deployments', under the lab API's RBAC); the
worker image installs vmwave with virt-v2v's Debian packages and talks to its
own cluster as its pod's service account; a real Prefect server takes the pool
and its deployments.
"""

import json
import os
import re
import shlex
import subprocess

import pytest
import yaml

import schema_check
from helpers import RBAC, REPO
from vmwave_lab.servers import PREFECT
from vmwave_lab.kube.resources import BY_PATH

HERE = REPO / "deployments" / "kubernetes"
TEMPLATE = json.loads((HERE / "base-job-template.json").read_text())
VIRT_V2V_PACKAGES = ("virt-v2v", "libguestfs-tools", "nbdkit", "libnbd-bin", "qemu-utils", "linux-image-amd64")
needs_schemas = pytest.mark.skipif(not schema_check.available(), reason="../shared/schemas is not beside the repo")


def rendered_job(**values) -> dict:
    """The Job a Kubernetes worker creates for a flow run: the template's defaults, then ``values``."""
    from prefect.utilities.templating import apply_values

    variables = TEMPLATE["variables"]["properties"]
    filled = {name: spec.get("default") for name, spec in variables.items()} | values
    job = apply_values(TEMPLATE["job_configuration"], filled)["job_manifest"]
    container = job["spec"]["template"]["spec"]["containers"][0]
    container["env"] = [{"name": k, "value": v} for k, v in container["env"].items()]  # as prefect-kubernetes
    container["args"] = shlex.split(container["args"])  # does with the flow run's environment and command
    return job


def test_the_base_job_template_renders_a_job_the_kubernetes_api_accepts():
    placeholders = set(re.findall(r"\{\{\s*(\w+)\s*\}\}", json.dumps(TEMPLATE["job_configuration"])))
    assert placeholders <= set(TEMPLATE["variables"]["properties"])
    assert all(spec.get("description") for spec in TEMPLATE["variables"]["properties"].values())
    job = rendered_job(
        image="registry.example/vmwave-worker:1",
        name="wave-w003",
        env={"VMWAVE_IN_FLIGHT": "4"},
        command="prefect flow-run execute",
        labels={"prefect.io/flow-run-name": "wave-w003"},
    )
    assert schema_check.kubernetes_problems(job) == []
    pod = job["spec"]["template"]["spec"]
    assert job["metadata"]["namespace"] == "vmwave-system" and pod["serviceAccountName"] == "vmwave-worker"
    assert job["spec"]["backoffLimit"] == 0  # a rerun of a wave is Prefect's retry, never the Job's
    assert pod["containers"][0]["envFrom"] == [{"secretRef": {"name": "vmwave-settings"}}]
    assert schema_check.kubernetes_problems({**job, "spec": {**job["spec"], "parallelism": "1"}})  # it can fail


def rbac() -> list[dict]:
    return list(yaml.safe_load_all(RBAC.read_text()))


@needs_schemas
def test_the_rbac_names_only_served_resources_and_no_wildcard():
    objects = rbac()
    for obj in objects:
        assert schema_check.kubernetes_problems(obj) == [], obj["metadata"]["name"]
    accounts = {(o["metadata"]["namespace"], o["metadata"]["name"]) for o in objects if o["kind"] == "ServiceAccount"}
    roles = {(o["kind"], o["metadata"]["name"]) for o in objects if o["kind"] in ("Role", "ClusterRole")}
    for binding in (o for o in objects if o["kind"].endswith("Binding")):
        assert (binding["roleRef"]["kind"], binding["roleRef"]["name"]) in roles
        assert {(s["namespace"], s["name"]) for s in binding["subjects"]} <= accounts
    for role in (o for o in objects if o["kind"] in ("Role", "ClusterRole")):
        for rule in role["rules"]:
            assert "*" not in rule["apiGroups"] + rule["resources"] + rule["verbs"], rule
            assert set(rule["verbs"]) <= {"get", "list", "watch", "create", "patch", "update", "delete"}
            for group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    plural = resource.split("/")[0]
                    if group.endswith("kubevirt.io"):
                        assert schema_check.served(group, plural), f"{group}/{resource}"
                    else:  # the core, batch and Multus kinds the lab API serves with Kubernetes' own names
                        assert any((g, p) == (group, plural) for g, _, p in BY_PATH), f"{group}/{resource}"


def test_the_worker_image_has_virt_v2v_and_uses_its_pods_service_account():
    containerfile = (HERE / "Containerfile").read_text()
    installed = set(re.search(r"apt-get install[^&]*", containerfile, re.S).group(0).replace("\\", " ").split())
    assert set(VIRT_V2V_PACKAGES) <= installed
    dev_packages = re.search(r'APT_PACKAGES="([^"]+)"', (REPO / "dev").read_text()).group(1).split()
    assert set(VIRT_V2V_PACKAGES) <= set(dev_packages)  # the image and ./dev setup install the same tools
    assert "'/src[postgresql]'" in containerfile and "prefect-kubernetes" in containerfile
    copied = re.search(r"COPY deployments/kubernetes/in-cluster.kubeconfig (\S+)", containerfile).group(1)
    assert f"VMWAVE_KUBECONFIG={copied}" in containerfile
    config = yaml.safe_load((HERE / "in-cluster.kubeconfig").read_text())
    mount = "/var/run/secrets/kubernetes.io/serviceaccount"
    assert config["users"][0]["user"] == {"tokenFile": f"{mount}/token"}
    assert config["clusters"][0]["cluster"]["certificate-authority"] == f"{mount}/ca.crt"


@pytest.mark.prefect
def test_a_prefect_server_takes_the_pool_and_its_deployments(prefect_server, tmp_path):
    from prefect.settings import PREFECT_API_URL

    env = {
        **os.environ,
        "PREFECT_API_URL": PREFECT_API_URL.value(),
        "VMWAVE_WORKER_IMAGE": "registry.example/vmwave:1",
        "VMWAVE_PLAN_REPO": "https://git.example/ops/migration.git",
        "VMWAVE_PLAN_BRANCH": "main",
    }

    def prefect(*argv):
        done = subprocess.run([PREFECT, *argv], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    prefect(
        "work-pool",
        "create",
        "vmwave-kubernetes",
        "--type",
        "kubernetes",
        "--overwrite",
        "--base-job-template",
        str(HERE / "base-job-template.json"),
    )
    prefect("--no-prompt", "deploy", "--all", "--prefect-file", str(HERE / "prefect.yaml"))
    shown = prefect("deployment", "inspect", "migrate-wave/kubernetes")
    assert "registry.example/vmwave:1" in shown and "https://git.example/ops/migration.git" in shown
