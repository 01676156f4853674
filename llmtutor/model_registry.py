"""Models the learner made (fine-tuned, merged, quantized), findable by name.

A JSON file in the models folder: name -> {path, kind, base, created_at, meta}. The job runner
registers a job's model when its artifacts are in place; the tools (evaluate, merge, quantize,
the chat's model setting) resolve names through `find_model`.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from llmtutor.errors import ModelNotFoundError
from llmtutor.paths import check_name as check_name_policy

REGISTRY_FILE = "registry.json"
_lock = threading.Lock()


class RegisteredModel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    path: str  # absolute path of the HF folder (merged/full model), adapter folder or GGUF file
    kind: Literal["merged", "adapter", "full", "gguf", "quantized"]
    base: str | None = None  # base model name/path (adapters need it to load)
    created_at: str = Field(
        default_factory=lambda: datetime.now(UTC).replace(tzinfo=None).isoformat(timespec="seconds")
    )
    job_id: str | None = None
    meta: dict[str, Any] = Field(default_factory=dict)


def check_name(name: str) -> str:
    return check_name_policy(name, "model name")


def _path(models_dir: Path) -> Path:
    return Path(models_dir) / REGISTRY_FILE


def list_models(models_dir: Path) -> list[RegisteredModel]:
    path = _path(models_dir)
    if not path.is_file():
        return []
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return [RegisteredModel.model_validate(item) for item in raw.get("models", [])]


def register_model(models_dir: Path, model: RegisteredModel) -> RegisteredModel:
    """Add or replace `model.name` (atomic write)."""
    check_name(model.name)
    with _lock:
        models = [m for m in list_models(models_dir) if m.name != model.name] + [model]
        path = _path(models_dir)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".registry-", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump({"models": [m.model_dump() for m in models]}, handle, indent=2)
        os.replace(tmp, path)
    return model


def find_model(models_dir: Path, name: str) -> RegisteredModel | None:
    return next((m for m in list_models(models_dir) if m.name == name), None)


def require_model(models_dir: Path, name: str) -> RegisteredModel:
    found = find_model(models_dir, name)
    if found is None or not Path(found.path).exists():
        known = ", ".join(m.name for m in list_models(models_dir)) or "none yet"
        raise ModelNotFoundError(
            f"no registered model {name!r} (known: {known})",
            "fine-tune one first or pass a model folder path",
        )
    return found
