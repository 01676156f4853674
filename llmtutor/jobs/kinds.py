"""Job kinds: what a job runs, registered by the code that defines the recipe::

    register_kind("finetune", FinetuneConfig, run)   # in llmtutor/training/finetune/__init__.py

The job row stores the module of the kind's `run`, so the worker process (and a resume after a
restart) imports that module, which registers the kind again there. The runner itself names no
recipe: adding a kind is one `register_kind` call next to the recipe.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from llmtutor.errors import ToolInputError


@dataclass(frozen=True)
class JobKind:
    name: str
    config: type[BaseModel]
    run: Callable[..., Any]  # run(config, progress=..., cancel=...) -> a pydantic result

    @property
    def module(self) -> str:
        return self.run.__module__


_KINDS: dict[str, JobKind] = {}


def register_kind(name: str, config: type[BaseModel], run: Callable[..., Any]) -> JobKind:
    """Make `name` runnable as a job; importing `run`'s module must register it (the worker does)."""
    kind = JobKind(name, config, run)
    _KINDS[name] = kind
    return kind


def get_kind(name: str, module: str | None = None) -> JobKind:
    """The registered kind, importing `module` first when this process has not registered it yet."""
    if name not in _KINDS and module:
        importlib.import_module(module)
    if name not in _KINDS:
        known = ", ".join(sorted(_KINDS)) or "none registered yet"
        raise ToolInputError(f"unknown job kind {name!r}", f"one of: {known}")
    return _KINDS[name]


def import_root(module: str) -> str | None:
    """The folder a kind's module was imported from, when the worker could not find it otherwise.

    Project kinds are importable anywhere; a kind defined outside the package (a plugin, a test)
    needs its folder on the worker's path.
    """
    if module.split(".")[0] == "llmtutor":
        return None
    loaded = sys.modules.get(module)
    file = getattr(loaded, "__file__", None)
    if not file:
        return None
    depth = module.count(".") + (2 if Path(file).name == "__init__.py" else 1)
    return str(Path(file).resolve().parents[depth - 1])
