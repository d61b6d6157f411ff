"""Waves as Prefect deployments: the file itself, then a real server, a process worker and `prefect deployment run`.

Prefect prints a warning and skips a prefect.yaml it cannot read, so the file
is checked on its own first: every entrypoint is a flow, every parameter one
of its parameters, each documented, none a secret. Then it is deployed to a
real Prefect server, a process worker polls the pool, and CI's command runs a
good wave and a failing one: `--watch` exits 0 and 1, the ledger agrees, and
the UI names each task run for its VM and step. The worker has neither the
vCenter password file nor the kubeconfig: the runs get both from the Secret
blocks `vmwave secrets set` made, named in their parameters. The kubeconfig is
a token of the service account in deployments/kubernetes/rbac.yaml, which the
lab API authorizes as a real one would: the waves and their rollback need no
permission it lacks, and use every one it grants.
"""

import os
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from helpers import CONVERSION, REPO, VMWAVE, granted, rbac_audit, service_account_kubeconfig
from vmwave.adapters.ledger import Ledger
from vmwave.domain.steps import PIPELINE
from vmwave.settings import Settings
from vmwave_lab.process import wait_for

FILE = REPO / "deployments" / "prefect.yaml"
PREFECT = str(Path(VMWAVE).parent / "prefect")  # the environment's own, beside vmwave
SECRET_WORDS = ("password", "token", "secret_value", "key")


def deployments() -> list[dict]:
    return yaml.safe_load(FILE.read_text())["deployments"]


def test_every_deployment_names_a_flow_and_only_its_documented_parameters():
    from prefect.flows import load_flow_from_entrypoint

    seen = set()
    for deployment in deployments():
        flow = load_flow_from_entrypoint(deployment["entrypoint"])
        key = f"{flow.name}/{deployment['name']}"
        assert key not in seen, f"{key} twice"
        seen.add(key)
        schema = flow.parameters.model_dump()["properties"]
        assert set(deployment.get("parameters") or {}) <= set(schema), key
        undocumented = [name for name, field in schema.items() if not field.get("description")]
        assert undocumented == [], f"{key}: parameters without a description: {undocumented}"
        assert not [
            name
            for name in schema
            if any(word in name for word in SECRET_WORDS) and not name.endswith(("_file", "_block"))
        ], key  # a secret is a file or a block, by name
        assert deployment["work_pool"]["name"] == "vmwave" and deployment["pull"]
    assert {
        "migrate-wave/shared-storage",
        "migrate-wave/from-git",
        "rollback-wave/shared-storage",
        "plan-migration/shared-storage",
    } <= seen


@pytest.mark.prefect
def test_ci_runs_a_good_and_a_failing_wave_through_a_worker(
    prefect_server, wave_env, planned, tmp_path, agent_never_answers
):
    from prefect.settings import PREFECT_API_URL

    plan, doc, wave = planned
    half = len(wave["vms"]) // 2  # a person cuts the wave in two: the second half is the wave that fails
    failing = {**wave, "id": "w940", "vms": wave["vms"][half:]}
    wave["vms"] = wave["vms"][:half]
    wave["hooks"] = {
        "post_boot": {"image": "registry.access.redhat.com/ubi9/ubi-minimal:latest", "command": ["/bin/true"]}
    }  # a hook's Job, under the service account too
    doc["waves"].append(failing)
    plan.write_text(yaml.safe_dump(doc, sort_keys=False))
    stuck = failing["vms"][0]
    agent_never_answers(
        wave_env["VMWAVE_KUBECONFIG"], "vmwave", stuck["target_name"], wave_env["VMWAVE_LEDGER"], stuck["uuid"]
    )
    env = {
        **os.environ,
        **wave_env,
        "PREFECT_API_URL": PREFECT_API_URL.value(),
        "VMWAVE_PLAN_DIR": str(tmp_path),
        "VMWAVE_TIMEOUTS": "agent=8",
        "PREFECT_WORKER_QUERY_SECONDS": "1",
        "PREFECT_WORKER_PREFETCH_SECONDS": "1",
    }

    def prefect(*argv, timeout=120):
        return subprocess.run([PREFECT, *argv], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=timeout)

    worker_kubeconfig = service_account_kubeconfig(env["VMWAVE_KUBECONFIG"], tmp_path / "vmwave-worker.kubeconfig")
    for kind, flag, source, block in (
        ("vcenter", "--password-file", env["VMWAVE_VCENTER_PASSWORD_FILE"], "test-vcenter"),
        ("kubeconfig", "--file", str(worker_kubeconfig), "test-kubeconfig"),
    ):
        saved = subprocess.run(
            [VMWAVE, "secrets", "set", kind, flag, source, "--name", block], env=env, capture_output=True, text=True
        )
        assert saved.returncode == 0 and f"--param {kind}_secret_block={block}" in saved.stderr, saved.stderr
    blocks = ["--param", "vcenter_secret_block=test-vcenter", "--param", "kubeconfig_secret_block=test-kubeconfig"]
    worker_env = {k: v for k, v in env.items() if k not in ("VMWAVE_VCENTER_PASSWORD_FILE", "VMWAVE_KUBECONFIG")}
    created = prefect("work-pool", "create", "vmwave", "--type", "process", "--overwrite")
    assert created.returncode == 0, created.stdout + created.stderr
    deployed = prefect("--no-prompt", "deploy", "--all", "--prefect-file", str(FILE))
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    worker = subprocess.Popen(
        [PREFECT, "worker", "start", "--pool", "vmwave", "--type", "process"],
        env=worker_env,
        cwd=tmp_path,
        stdout=open(tmp_path / "worker.log", "w"),
        stderr=subprocess.STDOUT,
    )
    try:
        good = prefect(
            "deployment",
            "run",
            "migrate-wave/shared-storage",
            "--param",
            f"wave={wave['id']}",
            *blocks,
            "--param",
            f"report_dir={tmp_path}",
            "--watch",
            "--watch-timeout",
            "600",
            timeout=700,
        )
        assert good.returncode == 0, good.stdout + good.stderr + (tmp_path / "worker.log").read_text()[-3000:]
        bad = prefect(
            "deployment",
            "run",
            "migrate-wave/shared-storage",
            "--param",
            "wave=940",
            *blocks,  # a number
            "--param",
            f"report_dir={tmp_path}",
            "--watch",
            "--watch-timeout",
            "600",
            timeout=700,
        )
        assert bad.returncode == 1, bad.stdout + bad.stderr

        ledger = Ledger(Settings.load().ledger)
        done = {e["vm"]: {s["step"]: s["status"] for s in e["steps"]} for e in ledger.by_vm(wave["id"])}
        assert set(done) == {vm["name"] for vm in wave["vms"]}
        assert all(all(steps.get(s) in ("succeeded", "skipped") for s in PIPELINE) for steps in done.values())
        failed = {e["vm"]: e["steps"] for e in ledger.by_vm(failing["id"])}
        assert (
            next(s for s in failed[stuck["name"]] if s["step"] == "guest-agent")["cause"] == "guest-agent-not-connected"
        )
        assert (tmp_path / f"wave-{failing['id']}-report.md").exists()  # the failed run still published its report
        names = task_run_names(wave["id"])
        assert {
            f"{vm['name']} / {step}" for vm in wave["vms"] for step in ("snapshot", "cdi-import", "smoke-test")
        } <= names

        undone = prefect(
            "deployment",
            "run",
            "rollback-wave/shared-storage",
            "--param",
            f"wave={wave['id']}",
            *blocks,
            "--watch",
            "--watch-timeout",
            "300",
            timeout=400,
        )
        assert undone.returncode == 0, undone.stdout + undone.stderr
        undone_vms = {
            e["vm"]: next(s["status"] for s in e["steps"] if s["step"] == "rollback") for e in ledger.by_vm(wave["id"])
        }
        assert undone_vms == {vm["name"]: "succeeded" for vm in wave["vms"]}
    finally:
        worker.terminate()
        worker.wait(30)
    assert_rbac_is_what_the_waves_used(env["VMWAVE_KUBECONFIG"])


ELSEWHERE = CONVERSION | {
    ("", "namespaces", "create"),  # the first wave into a target namespace; the lab's exists already
    ("cdi.kubevirt.io", "datavolumes", "patch"),  # a retried import or conversion applies its objects again
    ("", "configmaps", "patch"),
    ("", "pods", "patch"),
    ("", "persistentvolumeclaims", "get"),
    ("", "persistentvolumeclaims", "watch"),  # warm copies' rounds
    ("instancetype.kubevirt.io", "virtualmachineclusterpreferences", "create"),  # the Windows and latency-
    ("instancetype.kubevirt.io", "virtualmachineclusterpreferences", "patch"),  # sensitive profiles' preferences
    ("", "persistentvolumeclaims", "list"),  # the preflight, in a namespace with a ResourceQuota
    ("", "events", "list"),  # `vmwave bundle`
}


def assert_rbac_is_what_the_waves_used(admin: str) -> None:
    """Nothing the service account asked was refused, and what its ClusterRole grants was used."""
    denied, used = rbac_audit(admin)
    assert used and denied == []
    assert sorted(granted() - used - ELSEWHERE) == [], "the ClusterRole grants what no wave used"
    assert ELSEWHERE <= granted()


def task_run_names(wave: str) -> set[str]:
    """The task runs of the wave's flow run (named wave-<id>), as the Prefect UI lists them."""
    import asyncio

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName

    async def read() -> set[str]:
        async with get_client() as client:
            runs = await client.read_flow_runs(
                flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[f"wave-{wave}"]))
            )
            tasks = await client.read_task_runs(flow_run_filter=FlowRunFilter(id={"any_": [r.id for r in runs]}))
            return {t.name for t in tasks}

    deadline = time.monotonic() + 30
    found: set[str] = set()
    assert wait_for(lambda: bool(found.update(asyncio.run(read())) or found), deadline)
    return found


def test_the_example_ci_workflow_runs_a_wave_with_watch_and_keeps_secrets_in_the_environment():
    workflow = yaml.safe_load((REPO / "examples/ci/migrate-wave.yml").read_text())
    inputs = workflow[True]["workflow_dispatch"]["inputs"]  # YAML 1.1 reads the key `on` as true
    assert {"wave", "deployment", "plan"} <= set(inputs) and inputs["wave"]["required"] is True
    job = workflow["jobs"]["wave"]
    assert job["env"] == {
        "PREFECT_API_URL": "${{ secrets.PREFECT_API_URL }}",
        "PREFECT_API_KEY": "${{ secrets.PREFECT_API_KEY }}",
    }
    command = job["steps"][-1]["run"]
    assert command.startswith('prefect deployment run "migrate-wave/${{ inputs.deployment }}"') and "--watch" in command
    assert "secrets." not in command  # secrets never on a command line
    names = {d["name"] for d in deployments() if d["entrypoint"].endswith(":migrate_wave")}
    assert inputs["deployment"]["default"] in names
