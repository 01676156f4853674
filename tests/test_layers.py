"""Import contracts (pyproject.toml [tool.importlinter]) hold, and cover the whole core.

ui -> agents -> tools -> knowledge | training -> core (the modules directly in llmtutor/).
lint-imports runs on a temporary copy of the installed layout (setup.py's
copy_import_tree), as `make lint-imports` does: grimp walks one folder per package,
and our subpackages live in other top-level folders of the repository.
"""

from __future__ import annotations

import os
import re
import runpy
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CORE_DIR = REPO / "llmtutor"
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
PROJECT_LAYERS = {"agents", "tools", "knowledge", "training", "ui"}
ROOT_FOLDERS = ["llmtutor", *sorted(PROJECT_LAYERS)]


def _contracts() -> dict[str, dict]:
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    return {c["id"]: c for c in config["tool"]["importlinter"]["contracts"]}


def _core_modules() -> set[str]:
    """Every module and package directly in llmtutor/, but the root package itself."""
    found = set()
    for path in CORE_DIR.iterdir():
        if path.suffix == ".py" and path.stem != "__init__":
            found.add(f"llmtutor.{path.stem}")
        elif path.is_dir() and (path / "__init__.py").is_file():
            found.add(f"llmtutor.{path.name}")
    return found


def _module_count() -> int:
    """Python files in package folders (with __init__.py) under the six mapped folders."""
    count = 0
    for root in ROOT_FOLDERS:
        for dirpath, dirnames, filenames in os.walk(REPO / root):
            dirnames[:] = [d for d in dirnames if (Path(dirpath) / d / "__init__.py").is_file()]
            count += sum(name.endswith(".py") for name in filenames)
    return count


def test_lint_imports_keeps_every_contract(tmp_path):
    if not LINT_IMPORTS.exists():
        pytest.fail(f"{LINT_IMPORTS} is missing: install the dev extra (pip install -e '.[dev]')")
    tree = runpy.run_path(str(REPO / "setup.py"), run_name="layout")["copy_import_tree"](tmp_path / "tree")
    proc = subprocess.run(
        [str(LINT_IMPORTS), "--config", str(REPO / "pyproject.toml"), "--no-cache"],
        cwd=tree,  # not the repository: its llmtutor/ folder would shadow the copy
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"lint-imports failed (exit {proc.returncode}):\n{output}"
    assert "Contracts: " in output and " 0 broken" in output, output
    # Every module of the six folders was analysed, not only what lives in llmtutor/.
    analysed = re.search(r"Analyzed (\d+) files", output)
    assert analysed and int(analysed.group(1)) == _module_count(), output


def test_every_core_module_is_in_the_core_contract():
    core = _contracts()["core"]
    assert core["type"] == "forbidden"
    found = _core_modules()
    assert found, "found no core modules in llmtutor/"
    missing = sorted(found - set(core["source_modules"]))
    assert not missing, f"add to the 'core' contract's source_modules in pyproject.toml: {missing}"
    assert {m.removeprefix("llmtutor.") for m in core["forbidden_modules"]} == PROJECT_LAYERS


def test_layers_contract_covers_every_project_layer():
    layers = _contracts()["layers"]
    assert layers["type"] == "layers" and layers["containers"] == ["llmtutor"]
    named = {name.strip() for layer in layers["layers"] for name in layer.replace(":", "|").split("|")}
    assert named == PROJECT_LAYERS
