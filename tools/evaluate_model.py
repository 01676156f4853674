"""The `evaluate_model` tool: compare models (base, fine-tuned, merged, quantized) on the same data
in one job and produce an eval card — perplexity, BLEU/ROUGE, the course quiz through
lm-evaluation-harness, and optionally an LLM judge on the configured backend.

Model references as in merge_models: registered names, folders, .gguf files, "base", "latest".
The metrics and their descriptions come from `llmtutor.training.evaluate.metrics`.
The recipe is `llmtutor.training.evaluate`; `run_job` is the job entry point, which builds the
judge from the settings (training code never builds backends).
"""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from llmtutor.jobs.kinds import register_kind
from llmtutor.tools.lab_jobs import JobOutput, run_lab_job
from llmtutor.tools.merge_models import resolve_ref
from llmtutor.tools.registry import ToolContext, ToolSpec
from llmtutor.training.evaluate.config import EvalConfig
from llmtutor.training.evaluate.metrics import MetricName, describe_metrics, list_metrics, needs_judge

EXAMPLES: tuple[str, ...] = (
    "What is the perplexity of my GGUF export compared to the original?",
    "Score my model on the course quiz with lm-eval",
    "Check whether the merged model got worse than its parents",
    "Measure my model's accuracy on the multiple-choice course questions",
    "Compare the base model and my fine-tuned model",
    "Evaluate my fine-tuned model on the course quiz",
    "How good is my model now? Run the eval",
    "Compute BLEU and ROUGE of my model on the reference answers",
    "Make an eval card comparing base, fine-tuned and merged models",
    "Benchmark the merged model against the base",
    "Run lm-evaluation-harness on my model",
    "Use an LLM judge to grade my fine-tuned model's answers",
    "Did fine-tuning improve the model? Evaluate it",
    "Compute perplexity for the int8 checkpoint on the validation split",
    "Check the 4-bit version's accuracy on the test questions",
    "微调以后模型变好了吗？帮我评估一下",
    "测一下合并后模型的困惑度",
    "评估一下量化后模型的困惑度",
    "用课程测验评估我的模型",
    "给微调后的模型做评测",
    "计算模型的 BLEU 和 ROUGE",
    "对比合并模型和基础模型的效果",
    "用大模型当裁判给我的模型打分",
    "给 GGUF 模型跑一遍评测",
    "测一下 4 位模型在课程题上的准确率",
)
# Request words per metric for the rule-based extraction (the 135M chat model cannot fill tool
# arguments); capable backends fill `metrics` from the schema, which lists every registered metric.
_METRIC_WORDS = {
    "perplexity": r"perplexity|ppl|困惑度",
    "bleu_rouge": r"bleu|rouge",
    "lm_eval": r"lm[- ]?eval|harness|quiz|测验|accuracy",
    "judge": r"judge|裁判|grade",
}


class EvaluateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    models: list[str] = Field(
        default_factory=lambda: ["base", "latest"],
        min_length=1,
        max_length=8,
        description="Models to compare, the first is the baseline: names, folders, .gguf, "
        "'base' or 'latest'.",
    )
    metrics: list[MetricName] = Field(
        default_factory=lambda: ["perplexity", "lm_eval", "bleu_rouge"], json_schema_extra=describe_metrics
    )
    judge_mode: Literal["single", "pairwise"] = "single"
    quick: bool = Field(
        True, description="Bounded CPU run: 2k tokens of perplexity, 12 references, 30 quiz items."
    )
    text: str = Field("course", description="Perplexity text: a file in the workspace, or 'course'.")
    judge_model: str = Field(
        "",
        description="The judge: '' = the configured chat model (a capable backend); a "
        ".gguf file or exported GGUF name runs in llama.cpp; 'smollm2' = the bundled 135M "
        "model (it fails the judge's sanity check: a demonstration of the protocol only).",
    )


def extract_evaluate_args(text: str) -> dict[str, Any]:
    lowered = text.lower()
    metrics = [m for m, pattern in _METRIC_WORDS.items() if re.search(pattern, lowered)]
    args: dict[str, Any] = {"metrics": metrics} if metrics else {}
    if re.search(r"quantiz|量化|gguf", lowered):
        args["models"] = ["latest"] if "base" not in lowered else ["base", "latest"]
    return args


def build_config(req: EvaluateRequest, ctx: ToolContext, output_dir: Path) -> Any:
    from llmtutor.training.evaluate import EvalConfig, ModelSpec

    refs = list(dict.fromkeys(resolve_ref(r, ctx) for r in req.models))
    text = req.text
    if text.strip().lower() != "course":
        from llmtutor.tools.lab_jobs import resolve_input_path

        text = str(resolve_input_path(text, ctx))
    judge_model = _judge_gguf(req.judge_model, ctx) if needs_judge(req.metrics) and req.judge_model else ""
    quick = (
        {"max_eval_tokens": 2048, "max_references": 12, "lm_eval_limit": 30, "max_new_tokens": 64}
        if req.quick
        else {}
    )
    return EvalConfig(
        models=[ModelSpec(model="" if r == "smollm2" else r) for r in refs],
        models_dir=ctx.models_dir,
        metrics=req.metrics,
        judge_mode=req.judge_mode,
        perplexity_text=text,
        device=ctx.device,
        judge_model=judge_model,
        output_dir=output_dir,
        **quick,
    )


def _judge_gguf(name: str, ctx: ToolContext) -> str:
    """The judge's GGUF path (a file in the workspace, an exported name, or the bundled model)."""
    from llmtutor.backends.llamacpp import resolve_gguf

    if name.strip().lower() in {"smollm2", "default", "bundled"}:
        return str(resolve_gguf(""))
    from llmtutor.paths import looks_like_path
    from llmtutor.tools.lab_jobs import resolve_input_path

    if name.endswith(".gguf") or looks_like_path(name):
        return str(resolve_input_path(name, ctx))
    return str(resolve_gguf(name, ctx.models_dir))


def preview(req: EvaluateRequest, ctx: ToolContext) -> str:
    cfg = build_config(req, ctx, ctx.outputs_dir / "preview")
    if needs_judge(req.metrics) and ctx.llm_factory is None and not cfg.judge_model:
        from llmtutor.errors import ToolInputError

        judged = "', '".join(m.name for m in list_metrics(req.metrics) if m.needs_judge)
        raise ToolInputError(
            "an LLM judge needs a capable chat model; the bundled 135M model cannot grade",
            "set LLMTUTOR_BACKEND/LLMTUTOR_CHAT_MODEL to a bigger model, pass judge_model (a GGUF), "
            f"or drop '{judged}'",
        )
    rows = "\n".join(
        f"| {i + 1} | {m.display()} | {'baseline' if i == 0 else ''} |" for i, m in enumerate(cfg.models)
    )
    return (
        f"**Plan: evaluate {len(cfg.models)} model(s) on {', '.join(cfg.metrics)}**\n\n| # | model | |\n|---|---|---|\n"
        f"{rows}\n\nPerplexity on {'the course notes' if req.text == 'course' else req.text} "
        f"({cfg.max_eval_tokens or 'all'} tokens), {cfg.max_references or 'all'} reference answers, "
        f"{cfg.lm_eval_limit or 'all'} course-quiz questions. Result: an eval card (table, JSON, plot)."
    )


def run_job(config: Any, progress: Any = None, cancel: threading.Event | None = None) -> Any:
    """Job entry point: the judge (when asked for) is `judge_model` in llama.cpp, else the configured backend."""
    from llmtutor.training.evaluate import run

    judge = None
    if needs_judge(config.metrics):
        from llmtutor.backends import make_backend
        from llmtutor.settings import Settings

        if config.judge_model:
            from llmtutor.backends.llamacpp import LlamaCppBackend

            backend = LlamaCppBackend(chat_model=config.judge_model, n_ctx=4096)
        else:
            backend = make_backend(Settings())
        judge = backend.chat_model(temperature=0.0, max_tokens=300)
        config = config.model_copy(update={"judge_method": backend.structured_method()})
    return run(config, progress=progress, cancel=cancel, judge=judge)


def run_evaluate(req: EvaluateRequest, ctx: ToolContext) -> JobOutput:
    return run_lab_job("evaluate", lambda out: build_config(req, ctx, out), ctx)


TOOL = ToolSpec(
    name="evaluate_model",
    description=(
        "Evaluate and compare models (base, fine-tuned, merged, quantized GGUF) as a job on any of the metrics "
        f"{', '.join(m.name for m in list_metrics())} (what each measures: the `metrics` field); "
        "produces an eval card with deltas against the first (baseline) model."
    ),
    input_model=EvaluateRequest,
    output_model=JobOutput,
    func=run_evaluate,
    examples=EXAMPLES,
    expensive=True,
    writes=True,
    extract_args=extract_evaluate_args,
    preview=preview,
)


register_kind("evaluate", EvalConfig, run_job)
