"""The wheel holds every module and data file of the six mapped folders, at its import path.

Builds a wheel offline (no build isolation, no index) from a copy of the checkout's
files in a temporary folder, so the repository gets no build/ or *.egg-info, and a
stray local file can't hide a file that a clean clone would miss.
"""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# repository folder -> import path in the wheel (pyproject.toml / setup.py map them so)
ROOTS = {
    "llmtutor": "llmtutor",
    "agents": "llmtutor/agents",
    "tools": "llmtutor/tools",
    "knowledge": "llmtutor/knowledge",
    "training": "llmtutor/training",
    "ui": "llmtutor/ui",
}
NOT_SHIPPED_DIRS = {"__pycache__"}
NOT_SHIPPED_SUFFIXES = (".pyc", ".pyo")
# never copied when the checkout is not a git repository
NOT_COPIED = {".git", ".venv", "build", "dist", ".pytest_cache", ".ruff_cache", "__pycache__"}


def _shipped(rel: str) -> bool:
    parts = rel.split("/")
    return not NOT_SHIPPED_DIRS.intersection(parts) and not rel.endswith(NOT_SHIPPED_SUFFIXES)


def _checkout_files() -> list[str]:
    """The checkout's files ('/'-separated, relative): git's view when it is a git checkout
    (tracked plus new files that aren't ignored), else everything on disk but build leftovers."""
    if (REPO / ".git").exists() and shutil.which("git"):
        out = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=REPO,
            capture_output=True,
            check=True,
        ).stdout.decode()
        return sorted({f for f in out.split("\0") if f and (REPO / f).is_file()})
    files = []
    for dirpath, dirnames, filenames in os.walk(REPO):
        dirnames[:] = [d for d in dirnames if d not in NOT_COPIED and not d.endswith(".egg-info")]
        for name in filenames:
            files.append((Path(dirpath) / name).relative_to(REPO).as_posix())
    return sorted(files)


def _expected_in_wheel(files: list[str]) -> dict[str, str]:
    """{path in the repository: path in the wheel} for every file under the six folders."""
    expected = {}
    for rel in files:
        top, _, rest = rel.partition("/")
        if top in ROOTS and rest and _shipped(rel):
            expected[rel] = f"{ROOTS[top]}/{rest}"
    return expected


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    files = _checkout_files()
    src = tmp_path_factory.mktemp("src")
    for rel in files:
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, src / rel)
    out = tmp_path_factory.mktemp("wheel")
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index"]
        + ["-q", "-w", str(out), str(src)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, f"pip wheel failed:\n{proc.stdout}\n{proc.stderr}"
    wheels = list(out.glob("llmtutor-*.whl"))
    assert len(wheels) == 1, wheels
    with zipfile.ZipFile(wheels[0]) as whl:
        names = set(whl.namelist())
        dist_info = {n.split("/", 1)[0] for n in names if n.split("/", 1)[0].endswith(".dist-info")}
        assert len(dist_info) == 1, dist_info
        entry_points = whl.read(f"{dist_info.pop()}/entry_points.txt").decode()
    return files, names, entry_points


def test_every_module_and_data_file_is_in_the_wheel(built):
    files, names, _ = built
    expected = _expected_in_wheel(files)
    assert any(rel.endswith(".py") for rel in expected) and any(
        not rel.endswith(".py") for rel in expected
    ), "found no modules or no data files: is the checkout complete?"
    missing = sorted(f"{rel} -> {dest}" for rel, dest in expected.items() if dest not in names)
    assert not missing, "not in the wheel:\n" + "\n".join(missing)


def test_wheel_holds_only_the_package_and_no_caches(built):
    _, names, _ = built
    stray = sorted(
        n for n in names if not (n.startswith("llmtutor/") or n.split("/", 1)[0].endswith(".dist-info"))
    )
    assert not stray, f"outside the llmtutor package: {stray}"
    cached = sorted(n for n in names if not _shipped(n))
    assert not cached, f"caches or compiled files in the wheel: {cached}"


def test_data_folders_ship_as_package_data_not_packages(built):
    files, names, _ = built
    # Folders without __init__.py (knowledge/course/, training/datasets/, agents/personas/,
    # ...) are data of the package above them, found with Path(__file__): their files
    # ship, and the wheel must not turn them into packages.
    expected = _expected_in_wheel(files)
    dirs = {dest.rsplit("/", 1)[0] for dest in expected.values()}
    data_dirs = sorted(d for d in dirs if f"{d}/__init__.py" not in expected.values())
    assert data_dirs, "found no data folders"
    for folder in data_dirs:
        assert any(n.startswith(folder + "/") for n in names), f"{folder}/ is missing"
        assert f"{folder}/__init__.py" not in names, f"{folder} became a package"


def test_console_script_entry_point(built):
    _, _, entry_points = built
    parser = configparser.ConfigParser()
    parser.read_string(entry_points)
    assert parser.get("console_scripts", "llmtutor").strip() == "llmtutor.ui.cli:main"
