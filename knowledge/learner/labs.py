"""Which lab goes with which course module (labs.yaml): the lab engineer's offers and the study
plans' lab sessions read the same data."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict

LABS_FILE = Path(__file__).with_name("labs.yaml")


class Lab(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tool: str
    args: dict[str, Any]
    request: str
    request_zh: str


@lru_cache(maxsize=1)
def labs() -> dict[str, Lab]:
    data = yaml.safe_load(LABS_FILE.read_text(encoding="utf-8")) or {}
    return {module: Lab.model_validate(entry) for module, entry in data.items()}
