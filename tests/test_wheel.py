"""A real install: vmwave's wheel alone plans; with vmwave-lab's beside it, `vmwave lab up` and `vmwave plan` run."""

import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from helpers import REPO

pytestmark = [pytest.mark.lab, pytest.mark.timeout(900)]


def build(source: Path, out: Path, name: str) -> Path:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(source)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    [built] = out.glob(f"{name}-*.whl")
    return built


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    return build(REPO, tmp_path_factory.mktemp("dist"), "vmwave")


@pytest.fixture(scope="module")
def lab_wheel(tmp_path_factory) -> Path:
    return build(REPO / "lab", tmp_path_factory.mktemp("dist-lab"), "vmwave_lab")


def test_the_wheels_hold_their_own_packages_and_vmwave_needs_no_lab(wheel, lab_wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for path in (
        "vmwave/cli/lab.py",
        "vmwave/cli/no_lab.py",
        "vmwave/domain/build.py",
        "vmwave_flows/wave.py",
        "vmwave_tasks/step.py",
        "vmwave_plugins/windows.py",
    ):
        assert path in names, path
    assert not any(name.startswith(("tests/", "benchmarks/", "vmwave_lab")) for name in names)
    [metadata] = [n for n in names if n.endswith(".dist-info/METADATA")]
    requires = [
        line
        for line in zipfile.ZipFile(wheel).read(metadata).decode().splitlines()
        if line.startswith("Requires-Dist:") and "extra ==" not in line
    ]
    assert requires and not [
        r for r in requires if any(d in r.lower() for d in ("starlette", "uvicorn", "cryptography"))
    ]
    lab = set(zipfile.ZipFile(lab_wheel).namelist())
    for path in (
        "vmwave_lab/kube/server.py",
        "vmwave_lab/vcsim/main.go",
        "vmwave_lab/vcsim/faults.go",
        "vmwave_lab/estates/small.yaml",
        "vmwave_lab/estates/small.maps.yaml",
    ):
        assert path in lab, path
    assert not any(name.startswith(("vmwave/", "vmwave_flows/", "tests/")) for name in lab)


def test_the_installed_wheels_plan_without_the_lab_and_run_it_beside(wheel, lab_wheel, tmp_path):
    """A fresh environment with vmwave's wheel and its dependencies (borrowed from this one), run from elsewhere:
    it plans from an inventory and says how to get the lab; with vmwave-lab's wheel beside it, the lab runs."""
    env_dir = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(env_dir)], check=True, timeout=120)
    python = env_dir / "bin" / "python"
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    # this environment's site-packages for the dependencies; its editable vmwave is not loaded from a plain path
    Path(purelib, "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [python, "-m", "pip", "install", "--no-deps", "--no-index", "-q", str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VMWAVE_", "PYTHONPATH"))}
    vmwave = str(env_dir / "bin" / "vmwave")
    inventory = tmp_path / "inventory.json"
    inventory.write_text('{"source": "offline", "vms": [{"name": "a", "moref": "vm-1", "instance_uuid": "u-1"}]}')
    alone = subprocess.run(
        [vmwave, "plan", "--inventory", str(inventory), "--out", "alone.yaml"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert alone.returncode == 0 and (tmp_path / "alone.yaml").exists(), alone.stderr
    asked = subprocess.run([vmwave, "lab", "up"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert asked.returncode == 2 and "pip install vmwave-lab" in asked.stderr, asked.stderr
    subprocess.run(
        [python, "-m", "pip", "install", "--no-deps", "--no-index", "-q", str(lab_wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    where = subprocess.run(
        [python, "-c", "import vmwave, vmwave_lab; print(vmwave.__file__, vmwave_lab.__file__)"],
        cwd=tmp_path,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert str(REPO) not in where and purelib in where, where
    state = tmp_path / "lab"
    up = subprocess.run(
        [vmwave, "lab", "up", "--state-dir", str(state)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert up.returncode == 0, up.stderr
    try:
        settings = dict(line.split("=", 1) for line in up.stdout.splitlines())
        plan = subprocess.run(
            [vmwave, "plan", "--out", "plan.yaml"],
            cwd=tmp_path,
            env={**env, **settings},
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert plan.returncode == 0, plan.stderr
        assert "plan written to plan.yaml" in plan.stderr and (tmp_path / "plan.yaml").exists()
    finally:
        subprocess.run([vmwave, "lab", "down", "--state-dir", str(state)], cwd=tmp_path, env=env, timeout=120)
