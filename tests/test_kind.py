"""The real-cluster tier (`./dev test -m kind`): a kind cluster with KubeVirt (software emulation) and CDI.

The lab vCenter serves a generated estate on the kind network's gateway, so
CDI's importer pods read its disks as they would a real vCenter's; vmwave runs
one wave into the cluster as the service account of
deployments/kubernetes/rbac.yaml, with the worker image (built from
deployments/kubernetes/Containerfile and loaded into kind) as the conversion
image. It needs a Docker engine and the network (kind's node image, the
KubeVirt and CDI releases, Debian's packages for the image); where either is
missing it is skipped and says which. Our machines have neither: this tier
was written against kind's, KubeVirt's and CDI's documented installs and has
not run here.
"""

import os
import shutil
import subprocess
import urllib.request
from pathlib import Path

import pytest
import yaml

from helpers import REPO, VMWAVE, service_account_kubeconfig
from vmwave_lab import estate as estates
from vmwave_lab import lab as lab_control
from vmwave_lab import vcenter

pytestmark = [pytest.mark.kind, pytest.mark.timeout(3600)]
KUBEVIRT = "v1.5.2"
CDI = "v1.62.0"
IMAGE = "localhost/vmwave-worker:kind"


def missing() -> str:
    """Why this machine cannot run the tier, or "" when it can."""
    if not shutil.which("docker"):
        return "no docker command"
    if subprocess.run(["docker", "info"], capture_output=True).returncode:
        return "no Docker engine answers `docker info`"
    try:
        urllib.request.urlopen("https://github.com", timeout=10).close()
    except OSError as exc:
        return f"no network to github.com ({exc})"
    return ""


@pytest.fixture(scope="module")
def cluster(request):
    why = missing()
    if why:
        pytest.skip(f"the kind tier needs a Docker engine and the network: {why}")
    kind = request.getfixturevalue("kind_cluster")  # pytest-kind: created once, deleted at the end
    releases = "https://github.com/kubevirt/{}/releases/download/{}/{}"
    for project, version, files in (
        ("kubevirt", KUBEVIRT, ("kubevirt-operator.yaml", "kubevirt-cr.yaml")),
        ("containerized-data-importer", CDI, ("cdi-operator.yaml", "cdi-cr.yaml")),
    ):
        for file in files:
            kind.kubectl("apply", "-f", releases.format(project, version, file))
    kind.kubectl(
        "-n",
        "kubevirt",
        "patch",
        "kubevirt",
        "kubevirt",
        "--type=merge",
        "-p",
        '{"spec":{"configuration":{"developerConfiguration":{"useEmulation":true}}}}',
    )
    kind.kubectl("-n", "kubevirt", "wait", "kv", "kubevirt", "--for=condition=Available", "--timeout=15m")
    kind.kubectl("wait", "cdi", "cdi", "--for=condition=Available", "--timeout=15m")
    subprocess.run(
        ["docker", "build", "-f", str(REPO / "deployments/kubernetes/Containerfile"), "-t", IMAGE, str(REPO)],
        check=True,
    )
    kind.load_docker_image(IMAGE)
    return kind


def test_a_wave_migrates_into_a_kind_cluster(cluster, tmp_path):
    gateway = subprocess.run(
        ["docker", "network", "inspect", "kind", "-f", "{{(index .IPAM.Config 0).Gateway}}"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    seed = estates.expand(estates.generated(4), "generated(4)")
    center = vcenter.start(seed, tmp_path / "vcenter", listen=f"{gateway}:0")  # where the importer pods reach it
    try:
        vcenter.seed_disks(center, seed)
        maps = lab_control.generated_maps(seed)
        for entry in maps["storage"]:
            entry.update(storage_class="standard", volume_mode="Filesystem", access_modes=["ReadWriteOnce"])
        (tmp_path / "maps.yaml").write_text(yaml.safe_dump(maps))
        kubeconfig = service_account_kubeconfig(str(cluster.kubeconfig_path), tmp_path / "vmwave-worker.kubeconfig")
        env = {
            **os.environ,
            **center.env(),
            "VMWAVE_KUBECONFIG": str(kubeconfig),
            "VMWAVE_MAPS": str(tmp_path / "maps.yaml"),
            "VMWAVE_CONVERSION_IMAGE": IMAGE,
            "VMWAVE_LEDGER": str(tmp_path / "ledger.db"),
            "VMWAVE_TIMEOUTS": "import=1200,boot=900,agent=60",
        }
        plan = tmp_path / "plan.yaml"
        subprocess.run([VMWAVE, "plan", "--out", str(plan)], env=env, check=True)
        wave = next(w for w in yaml.safe_load(plan.read_text())["waves"] if w["class"] == "P3")
        run = subprocess.run(
            [VMWAVE, "migrate", "--plan", str(plan), "--wave", wave["id"], "--report-dir", str(tmp_path)],
            env=env,
            capture_output=True,
            text=True,
            timeout=3000,
        )
        report = Path(tmp_path / f"wave-{wave['id']}-report.md").read_text()
        assert f"{len(wave['vms'])} of {len(wave['vms'])} VMs succeeded" in report, run.stderr + report
        vms = cluster.kubectl("-n", maps["namespace"], "get", "vm", "-o", "name").split()
        assert len(vms) == len(wave["vms"])
    finally:
        vcenter.stop(tmp_path / "vcenter")
