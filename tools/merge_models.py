"""The `merge_models` tool: merge models with mergekit as a job (SLERP, TIES, DARE, linear,
task arithmetic, passthrough, MoE), after checking parameters, architectures, vocabularies and memory.
The methods, their descriptions and per-method rules come from `llmtutor.training.merge.methods`.

Model references: a registered name, a local folder, "base" (the bundled SmolLM2) or "latest"
(the model made most recently), so "SLERP merge it with the base at t=0.5" works in chat.
The recipe is `llmtutor.training.merge`; the job runner registers the result with its lineage.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from llmtutor.errors import ToolInputError
from llmtutor.paths import check_name
from llmtutor.tools.lab_jobs import JobOutput, check_model_ref, run_lab_job
from llmtutor.tools.registry import ToolContext, ToolSpec
from llmtutor.training.merge.methods import MergeMethod, MethodName, get_method, list_methods

EXAMPLES: tuple[str, ...] = (
    "Blend two of my models with spherical interpolation",
    "Create a merged model from my fine-tune and SmolLM2",
    "Merge these checkpoints into one model",
    "SLERP merge my fine-tuned model with the base at t=0.5",
    "TIES-merge several fine-tuned models into one",
    "把三个微调模型用 TIES 融合",
    "Merge my two fine-tunes with TIES, density 0.5",
    "Combine the fine-tuned model and the base model using DARE",
    "Average my two models with a linear merge",
    "Use task arithmetic to add my fine-tune to the base model",
    "Stack layers of two models with a passthrough merge (frankenmerge)",
    "Run this LazyMergekit config",
    "Merge course-sft into SmolLM2",
    "Could you combine my code model and my chat model into one?",
    "用 SLERP 合并两个模型",
    "把微调模型和基础模型以 t=0.5 做 SLERP 合并",
    "用 TIES 方法合并我的模型，密度 0.5",
    "用 DARE 合并两个微调模型",
    "线性合并两个模型",
    "能帮我把这两个检查点合成一个吗？",
    "用任务算术把微调结果加到基础模型上",
    "模型融合：把两个模型合并成一个",
    "做一个 passthrough 层堆叠合并",
    "Build a mixture of experts from my fine-tunes",
    "Make a frankenMoE with my course model and the base as experts",
    "用我的微调模型组装一个混合专家模型（MoE）",
)

Ref = str
# Request words per method for the rule-based extraction (the 135M chat model cannot fill tool
# arguments); the first match wins, so compound names (dare_ties) come before their parts (ties).
# Capable backends fill `method` from the schema, which lists every registered method.
_METHOD_WORDS = (
    ("dare_ties", r"dare[ _-]?ties|dare"),
    ("dare_linear", r"dare[ _-]?linear"),
    ("ties", r"ties"),
    ("slerp", r"slerp|球面"),
    ("task_arithmetic", r"task[ _-]?arithmetic|任务算术"),
    ("moe", r"\bmoe\b|mixture[ -]of[ -]experts|混合专家|frankenmoe"),
    ("passthrough", r"passthrough|frankenmerge|层堆叠|stack(?:ing)? layers"),
    ("linear", r"linear|线性|average"),
)


def _for_methods(text: str, uses: Callable[[MergeMethod], bool]) -> Any:
    """A field description naming the methods it applies to, built when the schema is (so methods
    registered later are named too)."""

    def describe(schema: dict[str, Any]) -> None:
        schema["description"] = f"{text} ({', '.join(m.name for m in list_methods() if uses(m))})."

    return describe


def _describe_base(schema: dict[str, Any]) -> None:
    required = ", ".join(m.name for m in list_methods() if m.task_vectors)
    first = ", ".join(m.name for m in list_methods() if m.base == "first")
    schema["description"] = f"Base model: required by {required}; the first model if unset for {first}."


class MergeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    method: MethodName = "slerp"  # the registered methods, described in the schema
    models: list[Ref] = Field(
        default_factory=lambda: ["base", "latest"],
        description="Models to merge: registered names, folders, 'base' or 'latest'.",
    )
    base_model: Ref | None = Field(None, json_schema_extra=_describe_base)
    t: float = Field(0.5, ge=0, le=1, json_schema_extra=_for_methods("Interpolation factor", lambda m: m.t))
    weights: list[float] | None = Field(
        None, json_schema_extra=_for_methods("Per-model weights", lambda m: m.weight)
    )
    density: float | None = Field(
        None,
        gt=0,
        le=1,
        json_schema_extra=_for_methods("Fraction of task-vector entries kept", lambda m: m.density),
    )
    layer_ranges: list[tuple[int, int]] | None = Field(
        None, json_schema_extra=_for_methods("Per-model [start, end) layers", lambda m: m.stacks_layers)
    )
    expert_prompts: list[list[str]] | None = Field(
        None,
        description="MoE: per model, prompts it should handle "
        "(default: its training data's first prompts; general requests for the base).",
    )
    gate_mode: Literal["hidden", "cheap_embed", "random"] = Field(
        "hidden", description="MoE router initialisation."
    )
    experts_per_token: int = Field(2, ge=1, le=8, description="MoE: experts each token is routed to.")
    mergekit_yaml: str | None = Field(
        None,
        description="A LazyMergekit/mergekit (or mergekit-moe) YAML config (overrides the fields above).",
    )
    name: str | None = Field(None, description="Name of the merged model.")

    @field_validator("name")
    @classmethod
    def _plain_name(cls, value: str | None) -> str | None:
        return None if value is None else check_name(value, "output name")


def extract_merge_args(text: str) -> dict[str, Any]:
    args: dict[str, Any] = {}
    lowered = text.lower()
    for method, pattern in _METHOD_WORDS:
        if re.search(pattern, lowered):
            args["method"] = method
            break
    if match := re.search(r"t\s*[=:]\s*(0(?:\.\d+)?|1(?:\.0+)?)", lowered):
        args["t"] = float(match.group(1))
    if match := re.search(r"(?:density|密度)\s*(?:of|=|:|为)?\s*(0?\.\d+|1(?:\.0+)?)", lowered):
        args["density"] = float(match.group(1))
    if match := re.search(r"(?:call(?:ed)? it|named?|命名为)\s*[\"'“]?([A-Za-z0-9][\w.-]{0,79})", text):
        args["name"] = match.group(1)
    method = get_method(args["method"]) if "method" in args else None
    if method is not None and method.task_vectors:  # "merge it into the base": the latest model
        args.setdefault("models", ["latest"])
        args["base_model"] = "base"
        if method.density:
            args.setdefault("density", 0.5)
    return args


def resolve_ref(ref: str, ctx: ToolContext) -> str:
    """'base' -> the bundled model, 'latest' -> the newest registered model, names/paths as given."""
    from llmtutor.model_registry import list_models

    if ref.lower() in ("base", "default", "smollm2"):
        return "smollm2"
    if ref.lower() in ("latest", "it", "mine", "my model"):
        models = sorted(list_models(ctx.models_dir), key=lambda m: m.created_at)
        if not models:
            raise ToolInputError(
                "there is no model of yours to merge yet", "fine-tune one first, or name two models"
            )
        return models[-1].name
    return check_model_ref(ref, ctx)


def build_config(req: MergeRequest, ctx: ToolContext, output_dir: Path) -> Any:
    from llmtutor.training.merge import MergeConfig, MergeModel

    method = get_method(req.method)
    if req.mergekit_yaml:
        cfg = MergeConfig.from_yaml(
            req.mergekit_yaml,
            models_dir=ctx.models_dir,
            output_dir=output_dir,
            **({"name": req.name} if req.name else {}),
        )
        # Models named in the YAML go through the same path policy as the fields.
        models = [m.model_copy(update={"model": resolve_ref(m.model, ctx)}) for m in cfg.models]
        base = resolve_ref(cfg.base_model, ctx) if cfg.base_model else None
        return cfg.model_copy(update={"models": models, "base_model": base})
    refs = [resolve_ref(r, ctx) for r in req.models]
    base = resolve_ref(req.base_model, ctx) if req.base_model else None
    if "smollm2" in refs + [base]:
        own = _own_base([r for r in refs if r != "smollm2"], ctx)
        refs = [own if r == "smollm2" and own else r for r in refs]
        base = own if base == "smollm2" and own else base
    if method.base == "first" and base is None:
        base = refs[0]
    prompts = _expert_prompts(req, refs, base, ctx) if method.experts else [None] * len(refs)
    weights = req.weights or [None] * len(refs)  # type: ignore[list-item]
    ranges = req.layer_ranges or [None] * len(refs)  # type: ignore[list-item]
    if len(weights) != len(refs) or len(ranges) != len(refs):
        raise ToolInputError(
            f"{len(refs)} models but {len(weights)} weights / {len(ranges)} layer ranges",
            "give one weight (and layer range) per model",
        )
    models = [
        MergeModel(
            model=r,
            # weights a method cannot use are dropped (a tool-calling model may fill them anyway);
            # MoE experts keep them, so the config refuses them with a reason
            weight=w if method.weight or method.experts else None,
            density=req.density if r != base and method.density else None,
            layer_range=rng,
            positive_prompts=p,
        )
        for r, w, rng, p in zip(refs, weights, ranges, prompts, strict=True)
    ]
    try:
        return MergeConfig(
            method=req.method,
            models=models,
            base_model=base,
            t=req.t,
            models_dir=ctx.models_dir,
            gate_mode=req.gate_mode,
            experts_per_token=req.experts_per_token,
            output_dir=output_dir,
            name=req.name or _default_name(req.method, refs),
        )
    except ValueError as exc:
        raise ToolInputError(
            f"invalid merge: {exc}", "see the merge_models fields in `llmtutor tools list`"
        ) from None


def _expert_prompts(
    req: MergeRequest, refs: list[str], base: str | None, ctx: ToolContext
) -> list[list[str] | None]:
    """The learner's prompts per expert, else each fine-tune's own training prompts (what it
    is an expert in) and general requests for the base model."""
    from llmtutor.training.merge import locate_models
    from llmtutor.training.merge.moe import expert_prompts

    if req.gate_mode == "random":
        return [None] * len(refs)
    if req.expert_prompts is not None:
        if len(req.expert_prompts) != len(refs):
            raise ToolInputError(
                f"{len(refs)} experts but {len(req.expert_prompts)} prompt lists",
                "give one list of prompts per model",
            )
        return [p or None for p in req.expert_prompts]
    paths = locate_models(refs, ctx.models_dir)
    from llmtutor.hf_models import is_default_model

    return [expert_prompts(r, paths[r], is_base=is_default_model(r) or r == base) for r in refs]


def _own_base(refs: list[str], ctx: ToolContext) -> str | None:
    """ "Merge it with the base": the base a registered model was made from (its first lineage
    parent that is a model we have), so a fine-tune of any model merges with its own base."""
    from llmtutor.hf_models import DEFAULT_HF_FOLDER
    from llmtutor.model_registry import find_model

    for ref in refs:
        entry = find_model(ctx.models_dir, ref)
        parents = ((entry.meta.get("lineage") or {}).get("parents") or []) if entry else []
        for parent in parents:
            if parent == DEFAULT_HF_FOLDER:
                return "smollm2"
            if find_model(ctx.models_dir, str(parent)) is not None or Path(str(parent)).is_dir():
                return str(parent)
    return None


def _default_name(method: str, refs: list[str]) -> str:
    stem = "-".join(Path(r).name.lower()[:20] for r in refs[:2])
    return re.sub(r"[^a-z0-9._-]+", "-", f"{stem}-{method}").strip("-")[:80]


def preview(req: MergeRequest, ctx: ToolContext) -> str:
    """Resolve, check compatibility and memory; the plan shown before approval."""
    from llmtutor.training.merge import check_compatible, estimate_peak_bytes, locate_models

    cfg = build_config(req, ctx, ctx.outputs_dir / "preview")
    method = get_method(cfg.method)
    names = list(dict.fromkeys(([cfg.base_model] if cfg.base_model else []) + [m.model for m in cfg.models]))
    paths = locate_models(names, ctx.models_dir)  # nothing converted before approval
    checks = check_compatible(paths, same_depth=not method.stacks_layers)
    peak = estimate_peak_bytes(paths, cfg.method)
    from llmtutor.tools.lab_jobs import check_memory

    free = check_memory(peak, "cpu", f"{cfg.method} merge")
    lines = [f"**Plan: {cfg.method} merge → `{cfg.name}`**", "", "| model | role | path |", "|---|---|---|"]
    for n in names:
        role = "base" if n == cfg.base_model else "merged in"
        lines.append(f"| {n} | {role} | `{paths[n]}` |")
    if method.experts:
        role = {n: "attention/embeddings + expert" if n == cfg.base_model else "expert" for n in names}
        lines[4:] = [f"| {n} | {role[n]} | `{paths[n]}` |" for n in names]
        params = (
            f"gate {cfg.gate_mode}, {cfg.experts_per_token} experts per token; router prompts: "
            + "; ".join(
                f"{m.model}: {', '.join(repr(p[:40]) for p in (m.positive_prompts or [])[:2]) or 'random'}"
                for m in cfg.models
            )
        )
    elif method.t:
        params = f"t = {cfg.t}"
    else:
        params = ", ".join(
            f"{m.model}: weight {m.weight}, density {m.density}"
            for m in cfg.models
            if m.model != cfg.base_model
        )
    lines += [
        "",
        f"Parameters: {params}",
        "Checks: " + "; ".join(checks),
        f"Memory: ~{peak / 2**30:.2f} GiB peak (mergekit loads tensors lazily), {free / 2**30:.1f} GiB free.",
    ]
    return "\n".join(lines)


def run_merge(req: MergeRequest, ctx: ToolContext) -> JobOutput:
    return run_lab_job("merge", lambda out: build_config(req, ctx, out), ctx)


TOOL = ToolSpec(
    name="merge_models",
    description=(
        f"Merge models with mergekit ({', '.join(m.name for m in list_methods() if not m.experts)}) or "
        f"assemble a mixture of experts ({', '.join(m.name for m in list_methods() if m.experts)}, mergekit-moe) "
        "as a job: checks architectures, vocabularies and memory first, registers the merged model with its lineage."
    ),
    input_model=MergeRequest,
    output_model=JobOutput,
    func=run_merge,
    examples=EXAMPLES,
    expensive=True,
    writes=True,
    extract_args=extract_merge_args,
    preview=preview,
)
