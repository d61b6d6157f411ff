"""The layers of ARCHITECTURE.md hold: import-linter's contracts in pyproject.toml, checked on every run."""

import shutil
import subprocess
import sys
from pathlib import Path

from helpers import REPO


def test_the_import_contracts_are_kept():
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert lint, "install the test extras: pip install -e '.[test]'"
    result = subprocess.run([lint, "--no-cache"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout and "9 kept" in result.stdout


def test_ruff_finds_nothing_and_the_code_is_formatted():
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent))
    assert ruff, "install the test extras: pip install -e '.[test]'"
    for args in (["check", "."], ["format", "--check", "."]):
        result = subprocess.run([ruff, *args], cwd=REPO, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, f"ruff {' '.join(args)}:\n{result.stdout}{result.stderr}"
