"""The layers of ARCHITECTURE.md hold: import-linter's contracts in pyproject.toml, checked on every run."""

import ast
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
    assert "0 broken" in result.stdout and "10 kept" in result.stdout


def test_ruff_finds_nothing_and_the_code_is_formatted():
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent))
    assert ruff, "install the test extras: pip install -e '.[test]'"
    for args in (["check", "."], ["format", "--check", "."]):
        result = subprocess.run([ruff, *args], cwd=REPO, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, f"ruff {' '.join(args)}:\n{result.stdout}{result.stderr}"


PREFECT_API = ("prefect.client", "prefect.blocks", "prefect.events", "prefect.automations")


def test_only_the_prefect_adapter_speaks_to_prefects_api():
    """Flows and tasks use Prefect as their framework; its client, blocks, events and automations are the adapter's
    (``vmwave.adapters.prefect_api``). import-linter sees an outside package only whole, so this reads the imports."""
    found = []
    for folder in ("vmwave", "flows", "tasks", "plugins"):
        for path in sorted((REPO / folder).rglob("*.py")):
            if "prefect_api" in path.parts:
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ImportFrom) and node.module:
                    names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
                elif isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                else:
                    continue
                if any(n.startswith(PREFECT_API) or n == "prefect.get_client" for n in names):
                    found.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert found == [], found
