"""How the lab tools (finetune, evaluate, merge, quantize) run as jobs from the chat, CLI and API.

`run_lab_job` submits the job (a worker process, see `llmtutor.jobs`), forwards its progress
to the tool context (progress bars in the CLI/UI, events over the API), cancels the job when the
learner cancels the turn, and turns the finished job into a `JobOutput`: the recipe's summary,
its metrics and plots, and the registered model the learner can use next.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from llmtutor.errors import LLMTutorError, ToolExecutionError, ToolInputError
from llmtutor.tools.registry import ToolContext


class JobOutput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    job_id: str
    kind: str
    status: str
    output_dir: str | None = None
    model_name: str | None = Field(None, description="The registered model this job produced, if any.")
    model_kind: str | None = None  # "merged", "adapter", "gguf", ...
    summary: str = ""  # the recipe's own Markdown report
    metrics: dict[str, Any] = Field(default_factory=dict)
    plots: list[str] = Field(default_factory=list)
    error: str | None = None

    def to_markdown(self) -> str:
        head = f"**Job `{self.job_id}` ({self.kind}): {self.status}**"
        lines = [head, ""]
        if self.error:
            lines.append(f"Error: {self.error}")
        if self.summary:
            lines.append(self.summary)
        if self.output_dir:
            lines += ["", f"Files: `{self.output_dir}`"]
        if self.model_name and self.model_kind == "gguf":
            lines += [
                "",
                f"Registered as **{self.model_name}** (GGUF): chat with it in the tutor (pick it in the web "
                f"app's model menu, or `LLMTUTOR_CHAT_MODEL={self.model_name} llmtutor chat`), or in Ollama: "
                f"`ollama create {self.model_name} -f {self.output_dir}/Modelfile`; evaluate it with "
                f'"evaluate {self.model_name}".',
            ]
        elif self.model_name and self.model_kind in ("merged", "full"):
            lines += [
                "",
                f'Registered as **{self.model_name}**: evaluate it ("evaluate {self.model_name}"), merge '
                "or quantize it, or chat with it (pick it in the web app's model menu, or "
                f"`LLMTUTOR_BACKEND=hf LLMTUTOR_CHAT_MODEL={self.model_name} llmtutor chat`).",
            ]
        elif self.model_name:  # an adapter or a bitsandbytes model: not a chat model by itself
            lines += [
                "",
                f'Registered as **{self.model_name}** ({self.model_kind}): evaluate it ("evaluate '
                f'{self.model_name}"), or merge it into its base to chat with it.',
            ]
        return "\n".join(lines)

    def images(self) -> list[Path]:
        return [Path(p) for p in self.plots if Path(p).is_file()]


def resolve_input_path(value: str, ctx: ToolContext) -> Path:
    """A dataset/model path the learner gave, inside their space or an allowed folder."""
    from llmtutor.jobs import resolve_user_path

    return resolve_user_path(value, ctx.space, allowed=(*ctx.allowed_dirs, _bundled_dir()), must_exist=True)


def check_model_ref(ref: str, ctx: ToolContext, aliases: tuple[str, ...] = ()) -> str:
    """A model reference checked by the path policy: the learner's registered names, the bundled
    model, hub ids and `aliases` pass; paths must lie inside the learner's space or an allowed
    folder, and exist. Another learner's model name is a path in this learner's space that does
    not exist: the same refusal as any unknown name, so nothing tells whether it is taken."""
    from llmtutor.hf_models import DEFAULT_MODEL_NAMES
    from llmtutor.model_registry import list_models
    from llmtutor.paths import model_ref

    names = {*DEFAULT_MODEL_NAMES, *aliases, *(m.name for m in list_models(ctx.models_dir))}
    checked = model_ref(ref, ctx.space, ctx.allowed_dirs, names=names)
    if checked not in names and Path(checked).is_absolute() and not Path(checked).exists():
        raise ToolInputError(
            f"{ref.strip()[:120]!r} is not a registered model, a local folder or a .gguf file",
            "use the name a finished job registered (see `job_status`), 'base', or a model folder "
            "or .gguf file in your workspace",
        )
    return checked


def _bundled_dir() -> Path:
    from llmtutor.training.finetune.config import BUNDLED_DIR

    return BUNDLED_DIR


def check_memory(required_bytes: int, device: str, what: str) -> int:
    """Free bytes on `device`; raises with the numbers when `required_bytes` does not fit."""
    from llmtutor.jobs import check_fits

    return check_fits(required_bytes, device, what)


def run_lab_job(kind: str, build: Callable[[Path], BaseModel], ctx: ToolContext) -> JobOutput:
    from llmtutor import jobs

    config = build(ctx.outputs_dir / "pending")  # the worker replaces output_dir with its staging folder
    job_id = jobs.submit(ctx.database, kind, config, learner_id=ctx.learner_id)
    ctx.report("job", message=f"job {job_id} started ({kind}); `llmtutor jobs show {job_id}` follows it")

    def forward(event: Any) -> None:
        data = event if isinstance(event, dict) else event.model_dump()
        bits = [
            f"{k.replace('_', ' ')} {data[k]:.4g}"
            for k in ("loss", "eval_loss", "tokens_per_s")
            if data.get(k)
        ]
        if data.get("eta_s"):
            bits.append(f"ETA {data['eta_s']:.0f}s")
        ctx.report(
            str(data.get("stage", kind)),
            step=data.get("step"),
            total=data.get("total"),
            message=" · ".join(bits) or str(data.get("message", "")),
        )

    try:
        job = jobs.wait(ctx.database, job_id, on_event=forward, cancel=ctx.cancel_event)
    except LLMTutorError:
        raise
    except Exception as exc:  # the runner itself failed: say which job to look at
        raise ToolExecutionError(
            f"job {job_id} could not be followed: {exc}", f"llmtutor jobs show {job_id}"
        ) from exc
    return job_output(job)


def job_output(job: Any) -> JobOutput:
    data = job if isinstance(job, dict) else job.model_dump()
    result = data.get("result") or {}
    plots = (
        [p for p in (data.get("artifacts") or {}).values() if str(p).endswith(".png")]
        if isinstance(data.get("artifacts"), dict)
        else [str(p) for p in data.get("artifacts") or [] if str(p).endswith(".png")]
    )
    return JobOutput(
        job_id=str(data["id"]),
        kind=str(data.get("kind") or data.get("tool")),
        status=str(data["status"]),
        output_dir=data.get("output_dir"),
        model_name=data.get("model_name"),
        model_kind=(result.get("registration") or {}).get("kind") if data.get("model_name") else None,
        summary=str(data.get("summary") or ""),
        metrics=dict(result.get("metrics") or {}),
        plots=plots,
        error=data.get("error"),
    )
