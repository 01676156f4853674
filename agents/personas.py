"""Tutor personas, one YAML file each in agents/personas/ (or LLMTUTOR_PERSONAS_DIR).

Adding a persona = adding a YAML file with the fields of `Persona`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from llmtutor.errors import ConfigError, PersonaNotFoundError

BUILTIN_DIR = Path(__file__).parent / "personas"


class Persona(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    title: str
    description: str
    system_prompt: str
    style: str = ""
    language_policy: str = "Answer in the learner's language (Chinese or English)."
    allowed_tools: list[str] | Literal["all"] = "all"
    temperature: float = Field(0.3, ge=0, le=2)
    greeting: str = ""
    # How it teaches (agents/policies/): direct answers, a check question after each cited
    # answer, a Socratic dialogue, a quiz before the answer, a lab offer, or the papers behind
    # it; `policy_params` tune it (e.g. socratic max_hints).
    policy: Literal["direct", "check", "socratic", "quiz", "lab", "research"] = "direct"
    policy_params: dict[str, Any] = Field(default_factory=dict)

    def tool_names(self, registered: list[str]) -> list[str]:
        if self.allowed_tools == "all":
            return list(registered)
        return [name for name in registered if name in self.allowed_tools]

    def system_message(self, language: str) -> str:
        lang = "Answer in Simplified Chinese (简体中文)." if language == "zh" else "Answer in English."
        parts = [self.system_prompt.strip(), self.style.strip(), f"{self.language_policy} {lang}"]
        return "\n".join(p for p in parts if p)


def load_personas(extra_dir: Path | None = None) -> dict[str, Persona]:
    """Built-in personas, overridden/extended by YAML files in `extra_dir`."""
    personas: dict[str, Persona] = {}
    folders = [BUILTIN_DIR] + ([Path(extra_dir)] if extra_dir else [])
    for folder in folders:
        if not folder.is_dir():
            raise ConfigError(
                f"personas folder not found: {folder}", "set LLMTUTOR_PERSONAS_DIR to an existing folder"
            )
        for path in sorted(folder.glob("*.y*ml")):
            try:
                data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
                persona = Persona.model_validate(data)
            except (yaml.YAMLError, ValidationError) as exc:
                raise ConfigError(
                    f"invalid persona file {path}: {exc}",
                    "fix the YAML fields (see agents/personas/tutor.yaml)",
                ) from exc
            personas[persona.name] = persona
    return personas


def get_persona(personas: dict[str, Persona], name: str) -> Persona:
    try:
        return personas[name]
    except KeyError:
        raise PersonaNotFoundError(
            f"persona not found: {name!r}",
            f"choose one of: {', '.join(sorted(personas))}, or add a YAML file",
        ) from None
