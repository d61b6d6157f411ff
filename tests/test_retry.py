"""A VM whose conversion fails keeps its copy, and `vmwave retry` converts it again without copying."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
import yaml

from helpers import VMWAVE
from vmwave.adapters.kubernetes import Cluster
from vmwave.adapters.ledger import Ledger
from vmwave.domain.manifests import KEPT_FOR_RETRY
from vmwave.settings import Settings

pytestmark = [
    pytest.mark.prefect,
    pytest.mark.timeout(900),
    pytest.mark.skipif(not shutil.which("virt-v2v-in-place"), reason="apt-get install -y virt-v2v"),
]
CDI = "cdi.kubevirt.io/v1beta1"


def test_a_failed_conversion_is_retried_on_the_kept_copy(prefect_server, lab_settings, tmp_path):
    from prefect.settings import PREFECT_API_URL

    env = {
        **os.environ,
        **lab_settings,
        "VMWAVE_LEDGER": str(tmp_path / "ledger.db"),
        "VMWAVE_WORKDIR": str(tmp_path / "work"),
        "PREFECT_API_URL": PREFECT_API_URL.value(),
        "VMWAVE_TIMEOUTS": "convert=600",
    }
    plan = tmp_path / "plan.yaml"
    subprocess.run([VMWAVE, "plan", "--out", str(plan)], env=env, check=True, capture_output=True)
    doc = yaml.safe_load(plan.read_text())
    entry = next(vm for w in doc["waves"] for vm in w["vms"] if vm["name"] == "batch-old-01")
    entry.update(mode="cold", convert="virt-v2v")  # random bytes, no OS: virt-v2v-in-place finds no guest
    doc["waves"] = [{"id": "again", "class": "P3", "mode": "cold", "vms": [entry]}]
    plan.write_text(yaml.safe_dump(doc, sort_keys=False))
    cluster, ledger = Cluster(lab_settings["VMWAVE_KUBECONFIG"]), Ledger(Settings.load(env=env).ledger)
    try:
        failed = subprocess.run(
            [VMWAVE, "migrate", "--plan", str(plan), "--wave", "again", "--report-dir", str(tmp_path)],
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert failed.returncode == 1, failed.stdout + failed.stderr
        steps = {r["step"]: r for r in ledger.rows("again")}
        assert steps["convert"]["cause"] == "conversion-failed"
        kept = cluster.get(CDI, "DataVolume", "vmwave", "batch-old-01-disk0")
        assert kept["metadata"]["labels"][KEPT_FOR_RETRY] == "true"
        assert (
            cluster.get("v1", "PersistentVolumeClaim", "vmwave", "batch-old-01-disk0")["metadata"]["labels"][
                KEPT_FOR_RETRY
            ]
            == "true"
        )
        imported = steps["cdi-import"]["attempt"]

        entry.update(convert="copy")  # the plan as edited since
        plan.write_text(yaml.safe_dump(doc, sort_keys=False))
        retried = subprocess.run(
            [VMWAVE, "retry", "--plan", str(plan), "--wave", "again", "--report-dir", str(tmp_path / "retry")],
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert retried.returncode == 0, retried.stdout + retried.stderr
        steps = {r["step"]: r for r in ledger.rows("again")}
        assert steps["cdi-import"]["attempt"] == imported and steps["cdi-import"]["status"] == "succeeded"
        assert steps["convert"]["status"] == "skipped" and steps["smoke-test"]["status"] in ("succeeded", "skipped")
        now = cluster.get(CDI, "DataVolume", "vmwave", "batch-old-01-disk0")
        assert now["metadata"]["uid"] == kept["metadata"]["uid"] and KEPT_FOR_RETRY not in now["metadata"]["labels"]
        report = (tmp_path / "retry" / "wave-again-report.md").read_text()
        assert "kept copy was reused" in report, report

        nothing = subprocess.run(
            [VMWAVE, "retry", "--plan", str(plan), "--wave", "again", "--vm", "batch-old-01"],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            cwd=tmp_path,
        )
        assert nothing.returncode != 0 and "did not fail in this wave" in nothing.stderr, nothing.stderr
    finally:
        subprocess.run([VMWAVE, "rollback", "--plan", str(plan), "--wave", "again"], env=env, capture_output=True)
    assert cluster.find(CDI, "DataVolume", "vmwave", {"vmwave.io/wave": "again"}) == []
