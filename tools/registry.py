"""The tool registry: every tool is defined once, here-shaped, and exposed by
generic adapters to the agent (routing + native tool calling), the CLI, the
HTTP API and the UI.

A tool module defines ``TOOL = ToolSpec(...)`` with typed pydantic input and
output models. Output models may implement ``to_markdown()`` (how the result
reads in chat), ``images()`` (paths of plots to show), ``citations()``
(numbered passages for a cited answer), a ``found: bool`` field (False: the
tutor says the course does not cover it instead of answering) and a
``final_answer`` class attribute (True: the markdown is the whole answer).
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from llmtutor.database import Database
from llmtutor.errors import (
    CancelledError,
    LLMTutorError,
    ToolExecutionError,
    ToolInputError,
    ToolNotFoundError,
)
from llmtutor.paths import learner_space
from llmtutor.text import clean_display_text

# Fixed tool names (see the foundation issue). Only tools that really work are
# registered; the others join `TOOL_MODULES` as they become real.
TOOL_MODULES: tuple[str, ...] = (
    "llmtutor.tools.estimate_memory",
    "llmtutor.tools.compare_decoding",
    "llmtutor.tools.quiz",
    "llmtutor.tools.search_course",
    "llmtutor.tools.query_course_db",
    "llmtutor.tools.finetune_model",
    "llmtutor.tools.evaluate_model",
    "llmtutor.tools.merge_models",
    "llmtutor.tools.quantize_model",
    "llmtutor.tools.job_status",
    "llmtutor.tools.learner_progress",
    "llmtutor.tools.next_step",
    "llmtutor.tools.review_cards",
    "llmtutor.tools.update_progress",
    "llmtutor.tools.study_plan",
)


class ProgressEvent(BaseModel):
    model_config = ConfigDict(extra="forbid")
    stage: str
    step: int | None = None
    total: int | None = None
    message: str = ""


@dataclass
class ToolContext:
    """Everything a tool may use, passed explicitly (no global settings below entry points)."""

    workspace: Path
    device: str = "auto"
    progress: Callable[[ProgressEvent], None] | None = None
    cancel_event: threading.Event = field(default_factory=threading.Event)
    # A chat-model factory for tools that can use a capable model (text-to-SQL writes SQL with
    # it); None on the default 135M model, which tools must not rely on for free-form work.
    llm_factory: Callable[[], Any] | None = None
    # Folders outside the workspace the learner allowed tools to read (LLMTUTOR_ALLOWED_DIRS).
    allowed_dirs: tuple[Path, ...] = ()
    # Whose data the tool reads and writes (learner model rows, models, outputs, files);
    # "local" without users.
    learner_id: str = "local"
    # postgresql://… when learner rows and jobs live in Postgres (LLMTUTOR_DATABASE_URL); None: SQLite.
    database_url: str | None = None

    @property
    def database(self) -> Database:
        """Where the learner model, plans and jobs live: what the stores are given."""
        return Database(workspace=self.workspace, url=self.database_url)

    @property
    def space(self) -> Path:
        """The learner's own folder: their models, outputs and files; paths they give resolve and
        stay here (the workspace itself for the local learner)."""
        return learner_space(self.workspace, self.learner_id)

    @property
    def outputs_dir(self) -> Path:
        return self.space / "outputs"

    @property
    def models_dir(self) -> Path:
        return self.space / "models"

    def report(
        self, stage: str, step: int | None = None, total: int | None = None, message: str = ""
    ) -> None:
        if self.progress is not None:
            self.progress(ProgressEvent(stage=stage, step=step, total=total, message=message))

    def check_cancelled(self) -> None:
        if self.cancel_event.is_set():
            raise CancelledError("cancelled by the user")


@dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str
    input_model: type[BaseModel]
    output_model: type[BaseModel]
    func: Callable[[Any, ToolContext], BaseModel]
    # Requests (English and Chinese) that should route to this tool: they train
    # the routing classifier and appear in `tools list` and the docs.
    examples: tuple[str, ...] = ()
    expensive: bool = False  # pauses for the learner's approval before running
    writes: bool = False  # creates or changes files/models/databases
    # Rule-based argument extraction from a request (English/Chinese), used when
    # the chat model is too small for native tool calling. Returns only the
    # fields it found; the input model's defaults fill the rest.
    extract_args: Callable[[str], dict[str, Any]] | None = None
    # For tools with open sessions (a quiz): given the workspace, the learner's next
    # message, the conversation's last reply (which shows the session's id) and the learner,
    # the arguments that continue the session, or None.
    continues: Callable[[Path, str, str | None, str], dict[str, Any] | None] | None = None
    # For expensive tools: the plan the learner approves (settings, data, memory estimate
    # against free memory), as Markdown. Side-effect free; raises a typed error when the run
    # cannot work (bad dataset, does not fit), so nothing is asked or started.
    preview: Callable[[Any, ToolContext], str] | None = None

    def validate(self, args: dict[str, Any] | BaseModel) -> BaseModel:
        if isinstance(args, self.input_model):
            return args
        if isinstance(args, BaseModel):
            args = args.model_dump()
        try:
            return self.input_model.model_validate(args)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or 'args'}: {_without_input(err)}"
                for err in exc.errors()[:5]
            )
            raise ToolInputError(
                f"invalid arguments for {self.name}: {problems}",
                f"see `llmtutor tools list` for the fields of {self.name}",
            ) from None

    def run(self, args: dict[str, Any] | BaseModel, ctx: ToolContext) -> BaseModel:
        validated = self.validate(args)
        try:
            if self.preview is not None:
                # Checked again right before running (CLI, API and scripts skip the chat's
                # approval step, and free memory may have changed since the plan was shown).
                ctx.report("plan", message=self.preview(validated, ctx))
            return self.func(validated, ctx)
        except LLMTutorError:
            raise
        except Exception as exc:  # a tool bug or library failure: typed, with the tool named
            raise ToolExecutionError(
                f"{self.name} failed: {type(exc).__name__}: {exc}",
                "check the arguments; `llmtutor doctor` shows the models and libraries in use",
            ) from exc

    def input_schema(self) -> dict[str, Any]:
        return self.input_model.model_json_schema()

    def openai_schema(self) -> dict[str, Any]:
        """Function-calling schema for backends with native tool calling."""
        schema = self.input_schema()
        schema.pop("title", None)
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": schema},
        }

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "expensive": self.expensive,
            "writes": self.writes,
            "examples": list(self.examples),
            "input_schema": self.input_schema(),
        }


def _without_input(error: Any) -> str:
    """The validator's reason with the offending value left out: errors reach HTTP clients and
    logs, and a value can be long or someone else's data."""
    message = str(error.get("msg", "invalid"))
    value = error.get("input")
    for shown in {repr(value), str(value)} if value not in (None, "", True, False) else ():
        if len(shown) > 2:
            message = message.replace(shown, "the given value")
    return message[:300]


class ToolRegistry:
    def __init__(self, tools: Iterable[ToolSpec] = ()):
        self._tools: dict[str, ToolSpec] = {}
        for tool in tools:
            self.register(tool)

    def register(self, tool: ToolSpec) -> None:
        if tool.name in self._tools:
            raise ValueError(f"tool registered twice: {tool.name}")
        self._tools[tool.name] = tool

    def get(self, name: str) -> ToolSpec:
        try:
            return self._tools[name]
        except KeyError:
            raise ToolNotFoundError(
                f"unknown tool: {name!r}", f"available tools: {', '.join(self.names()) or 'none'}"
            ) from None

    def names(self) -> list[str]:
        return list(self._tools)

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def __iter__(self):
        return iter(self._tools.values())

    def __len__(self) -> int:
        return len(self._tools)


def default_registry() -> ToolRegistry:
    """All real tools. Tool modules import nothing heavy at import time."""
    return ToolRegistry(importlib.import_module(module).TOOL for module in TOOL_MODULES)


def render_markdown(output: BaseModel) -> str:
    """The output as Markdown for people, with no remote images or chat-template tokens (tool
    results can carry text from documents and models)."""
    to_md = getattr(output, "to_markdown", None)
    text = to_md() if callable(to_md) else "```json\n" + output.model_dump_json(indent=2) + "\n```"
    return clean_display_text(text)


def output_citations(output: BaseModel) -> list[dict[str, Any]]:
    """Numbered passages ({n, source, heading, text, …}) for outputs that cite sources."""
    citations = getattr(output, "citations", None)
    return list(citations()) if callable(citations) else []


def output_is_final(output: BaseModel) -> bool:
    """Outputs that are the whole answer (a quiz question): shown as they are, no model call."""
    return bool(getattr(output, "final_answer", False))


def output_images(output: BaseModel) -> list[str]:
    images = getattr(output, "images", None)
    return [str(p) for p in images()] if callable(images) else []
