"""One lab pipeline from a recipe: fine-tune → merge → quantize → evaluate → chat-ready model.

    llmtutor lab run                      # the bundled recipe (recipes/course_lab.yaml)
    llmtutor lab run my_recipe.yaml

A recipe names steps, each a registered tool with its arguments (the same JSON the CLI, API and
chat use, validated by the tool's own input model). `{step_id}` in an argument is replaced by
the model that step produced. Every step runs as a job through the tool (plan check, progress,
cancel, registration with lineage). The pipeline's state lives in the workspace
(`labs/NAME/state.json`): a failed step stops the run with the earlier steps' models and files
in place, and running the recipe again skips every step that already succeeded with the same
arguments and whose model still exists.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from llmtutor.errors import LLMTutorError, ToolInputError
from llmtutor.tools.registry import ToolContext, ToolRegistry

BUNDLED_RECIPE = Path(__file__).parent / "recipes" / "course_lab.yaml"
_REF = re.compile(r"\{([A-Za-z_][\w-]*)\}")


class RecipeStep(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(pattern=r"^[A-Za-z_][\w-]*$")
    tool: str
    args: dict[str, Any] = Field(default_factory=dict)


class Recipe(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[A-Za-z0-9][\w.-]{0,79}$")
    description: str = ""
    steps: list[RecipeStep] = Field(min_length=1)
    chat_model: str | None = Field(
        None, description="The step (as {id}) whose model the learner chats with at the end."
    )

    @field_validator("chat_model")
    @classmethod
    def _chat_ref(cls, value: str | None, info: Any) -> str | None:
        ids = {step.id for step in info.data.get("steps") or []}
        for ref in _REF.findall(value or ""):
            if ref not in ids:
                raise ValueError(f"chat_model uses {{{ref}}} but no step has that id")
        return value

    @field_validator("steps")
    @classmethod
    def _unique(cls, steps: list[RecipeStep]) -> list[RecipeStep]:
        seen: set[str] = set()
        for step in steps:
            if step.id in seen:
                raise ValueError(f"step id {step.id!r} appears twice")
            for ref in _REF.findall(json.dumps(step.args)):
                if ref not in seen:
                    raise ValueError(
                        f"step {step.id!r} uses {{{ref}}} before a step {ref!r} produced a model"
                    )
            seen.add(step.id)
        return steps


class StepRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str
    tool: str
    status: str  # succeeded / failed / cancelled / skipped
    args_hash: str
    job_id: str | None = None
    model_name: str | None = None
    output_dir: str | None = None
    seconds: float = 0.0
    error: str | None = None
    summary: str = ""


class PipelineResult(BaseModel):
    model_config = ConfigDict(extra="forbid")
    recipe: str
    status: str  # succeeded / failed
    steps: list[StepRecord]
    chat_model: str | None = None
    family_tree: str | None = None  # Mermaid
    seconds: float = 0.0

    def to_markdown(self) -> str:
        lines = [
            f"**Lab `{self.recipe}`: {self.status}** ({self.seconds / 60:.1f} min)",
            "",
            "| step | tool | status | model | time |",
            "|---|---|---|---|---:|",
        ]
        for s in self.steps:
            lines.append(
                f"| {s.id} | {s.tool} | {s.status}{': ' + s.error if s.error else ''} | "
                f"{s.model_name or '–'} | {s.seconds:.0f} s |"
            )
        evaluate = next((s for s in self.steps if s.tool == "evaluate_model" and s.summary), None)
        if evaluate:
            lines += ["", evaluate.summary]
        if self.chat_model:
            lines += ["", f"Chat with the result: `LLMTUTOR_CHAT_MODEL={self.chat_model} llmtutor chat`."]
        if self.family_tree:
            lines += ["", "```mermaid", self.family_tree, "```"]
        return "\n".join(lines)


def load_recipe(path: Path | None) -> Recipe:
    source = Path(path) if path else BUNDLED_RECIPE
    try:
        raw = yaml.safe_load(source.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ToolInputError(
            f"cannot read recipe {source}: {exc}", "give a YAML file like tools/recipes/course_lab.yaml"
        ) from exc
    try:
        return Recipe.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ToolInputError(
            f"invalid recipe {source.name}: {problems}", "see tools/recipes/course_lab.yaml"
        ) from None


def _substitute(value: Any, produced: dict[str, str]) -> Any:
    if isinstance(value, str):
        return _REF.sub(lambda m: produced[m.group(1)], value)
    if isinstance(value, list):
        return [_substitute(v, produced) for v in value]
    if isinstance(value, dict):
        return {k: _substitute(v, produced) for k, v in value.items()}
    return value


def _hash(tool: str, args: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps([tool, args], sort_keys=True).encode()).hexdigest()[:16]


def _state_path(workspace: Path, recipe: Recipe) -> Path:
    return Path(workspace) / "labs" / recipe.name / "state.json"


def _load_state(path: Path) -> dict[str, StepRecord]:
    try:
        return {
            k: StepRecord.model_validate(v) for k, v in json.loads(path.read_text(encoding="utf-8")).items()
        }
    except (OSError, ValueError):
        return {}


def _save_state(path: Path, state: dict[str, StepRecord]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({k: v.model_dump() for k, v in state.items()}, indent=2), encoding="utf-8")
    tmp.replace(path)


def _still_there(record: StepRecord, ctx: ToolContext) -> bool:
    from llmtutor.model_registry import find_model

    if record.model_name:
        entry = find_model(ctx.models_dir, record.model_name)
        return entry is not None and Path(entry.path).exists()
    return record.output_dir is None or Path(record.output_dir).exists()


def run_pipeline(
    recipe: Recipe, registry: ToolRegistry, ctx: ToolContext, force: bool = False
) -> PipelineResult:
    """Run the recipe's steps in order; stop at the first failure (earlier results stay)."""
    started = time.perf_counter()
    state_file = _state_path(ctx.space, recipe)  # a learner's lab runs are their own
    state = {} if force else _load_state(state_file)
    produced: dict[str, str] = {}
    records: list[StepRecord] = []
    status = "succeeded"
    for step in recipe.steps:
        args = _substitute(step.args, produced)
        digest = _hash(step.tool, args)
        previous = state.get(step.id)
        if (
            previous
            and previous.status in ("succeeded", "skipped")
            and previous.args_hash == digest
            and _still_there(previous, ctx)
        ):
            record = previous.model_copy(update={"status": "skipped", "seconds": 0.0})
            ctx.report(
                "lab",
                message=f"{step.id}: already done ({previous.model_name or previous.output_dir}), skipped",
            )
        else:
            record = _run_step(step, args, digest, registry, ctx)
        records.append(record)
        state[step.id] = record
        _save_state(state_file, state)
        if record.status not in ("succeeded", "skipped"):
            status = "failed"
            break
        if record.model_name:
            produced[step.id] = record.model_name
    ready = status == "succeeded" and all(ref in produced for ref in _REF.findall(recipe.chat_model or ""))
    chat_model = _substitute(recipe.chat_model, produced) if recipe.chat_model and ready else None
    tree = _tree(chat_model or next((r.model_name for r in reversed(records) if r.model_name), None), ctx)
    return PipelineResult(
        recipe=recipe.name,
        status=status,
        steps=records,
        chat_model=chat_model,
        family_tree=tree,
        seconds=time.perf_counter() - started,
    )


def _run_step(
    step: RecipeStep, args: dict[str, Any], digest: str, registry: ToolRegistry, ctx: ToolContext
) -> StepRecord:
    begun = time.perf_counter()
    ctx.report("lab", message=f"step {step.id}: {step.tool}")
    try:
        output = registry.get(step.tool).run(args, ctx)
    except LLMTutorError as exc:
        from llmtutor.errors import user_message

        return StepRecord(
            id=step.id,
            tool=step.tool,
            status="failed",
            args_hash=digest,
            error=user_message(exc),
            seconds=time.perf_counter() - begun,
        )
    data = output.model_dump(mode="json")
    job_status = str(data.get("status", "succeeded"))
    return StepRecord(
        id=step.id,
        tool=step.tool,
        status="succeeded" if job_status == "succeeded" else job_status,
        args_hash=digest,
        job_id=data.get("job_id"),
        model_name=data.get("model_name"),
        output_dir=data.get("output_dir"),
        error=data.get("error"),
        seconds=time.perf_counter() - begun,
        summary=str(data.get("summary") or ""),
    )


def _tree(name: str | None, ctx: ToolContext) -> str | None:
    if not name:
        return None
    from llmtutor.training.lineage import family_tree

    try:
        return family_tree(ctx.models_dir, name).to_mermaid()
    except LLMTutorError:
        return None
