"""Which packages and data files the distribution holds, found on disk at build time.

All project metadata (name, version, dependencies, scripts) lives in pyproject.toml;
this file only computes what pyproject.toml can't express: the repository's top-level
folders are mapped under the one import root ``llmtutor`` (``agents/`` is
``llmtutor.agents``, ``knowledge/rag/`` is ``llmtutor.knowledge.rag``, ...), and every
package under them is discovered, so a new subpackage needs no edit here.

Data files: every file inside a package folder that is not one of its modules ships as
package data of the nearest package above it. Folders without ``__init__.py``
(``knowledge/course/``, ``training/datasets/``, ``agents/personas/``, ...) are data
folders of their parent package, not packages, and ship whole, ``.py`` files included
(``training/evaluate/tasks/*.py`` are lm-eval task files, read via ``Path(__file__)``).
``__pycache__`` folders and compiled ``*.pyc``/``*.pyo`` files never ship.

The helpers are also used by the tests and by ``make test`` (``runpy.run_path`` with a
run_name other than ``"__main__"`` defines them without calling ``setup()``).
"""

from __future__ import annotations

import glob
import os
import shutil
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).resolve().parent

# import name -> folder of the repository, relative to this file
PACKAGE_ROOTS: dict[str, str] = {
    "llmtutor": "llmtutor",
    "llmtutor.agents": "agents",
    "llmtutor.tools": "tools",
    "llmtutor.knowledge": "knowledge",
    "llmtutor.training": "training",
    "llmtutor.ui": "ui",
}

EXCLUDED_DIRS = frozenset({"__pycache__"})
EXCLUDED_SUFFIXES = (".pyc", ".pyo")


def discover_packages(base: Path = HERE) -> dict[str, str]:
    """Every package under the mapped folders: {dotted name: folder relative to base, '/'-separated}."""
    packages: dict[str, str] = {}
    for root, folder in PACKAGE_ROOTS.items():
        if not (base / folder / "__init__.py").is_file():
            raise RuntimeError(f"{folder}/__init__.py is missing: {root} must be a regular package")
        packages[root] = folder
        # find_packages only descends into folders with __init__.py, so data folders
        # (and anything below them) are never packages.
        for sub in sorted(find_packages(where=str(base / folder))):
            packages[f"{root}.{sub}"] = f"{folder}/{sub.replace('.', '/')}"
    return packages


def _shipped(name: str) -> bool:
    return not name.endswith(EXCLUDED_SUFFIXES)


def discover_package_data(base: Path = HERE) -> dict[str, list[str]]:
    """Every non-module file inside each package folder: {package: [paths relative to it]}."""
    packages = discover_packages(base)
    package_dirs = {base / folder for folder in packages.values()}
    data: dict[str, list[str]] = {}
    for package, folder in packages.items():
        pkg_dir = base / folder
        files: list[str] = []
        for dirpath, dirnames, filenames in os.walk(pkg_dir):
            here = Path(dirpath)
            # Subpackages carry their own data; skip caches.
            dirnames[:] = sorted(
                d for d in dirnames if d not in EXCLUDED_DIRS and (here / d) not in package_dirs
            )
            for name in sorted(filenames):
                if not _shipped(name):
                    continue
                if here == pkg_dir and name.endswith(".py"):
                    continue  # a module of this package, shipped by build_py
                rel = (here / name).relative_to(pkg_dir).as_posix()
                files.append(glob.escape(rel))  # package_data entries are glob patterns
        if files:
            data[package] = files
    return data


def copy_import_tree(dest: str | os.PathLike[str], base: Path = HERE) -> Path:
    """Copy the modules into dest the way they are installed (dest/llmtutor/agents/...).

    import-linter (grimp) finds a package's modules by walking its one folder, which
    for ``llmtutor`` would be llmtutor/ alone; it is run on this tree instead.
    """
    dest = Path(dest)
    for package, folder in discover_packages(base).items():
        target = dest.joinpath(*package.split("."))
        target.mkdir(parents=True, exist_ok=True)
        for module in (base / folder).glob("*.py"):
            shutil.copy2(module, target / module.name)
    return dest


if __name__ == "__main__":
    _packages = discover_packages()
    setup(
        packages=list(_packages),
        package_dir={root: PACKAGE_ROOTS[root] for root in PACKAGE_ROOTS},
        package_data=discover_package_data(),
    )
