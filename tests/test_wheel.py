"""A real install: vmwave's wheel, installed outside the checkout, runs `vmwave lab up` and `vmwave plan`."""

import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from helpers import REPO

pytestmark = [pytest.mark.lab, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(REPO)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    [built] = out.glob("vmwave-*.whl")
    return built


def test_the_wheel_holds_every_package_and_data_file(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for path in (
        "vmwave/cli/lab.py",
        "vmwave/domain/build.py",
        "vmwave_flows/wave.py",
        "vmwave_tasks/step.py",
        "vmwave_plugins/windows.py",
        "vmwave_lab/kube/server.py",
        "vmwave_lab/vcsim/main.go",
        "vmwave_lab/vcsim/faults.go",
        "vmwave_lab/estates/small.yaml",
        "vmwave_lab/estates/small.maps.yaml",
    ):
        assert path in names, path
    assert not any(name.startswith(("tests/", "benchmarks/")) for name in names)


def test_the_installed_wheel_runs_the_lab_and_plans(wheel, tmp_path):
    """A fresh environment with the wheel and vmwave's dependencies (borrowed from this one), run from elsewhere."""
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
    where = subprocess.run(
        [python, "-c", "import vmwave, vmwave_lab; print(vmwave.__file__, vmwave_lab.__file__)"],
        cwd=tmp_path,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert str(REPO) not in where and purelib in where, where
    vmwave = str(env_dir / "bin" / "vmwave")
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
