"""What a merge is: the method, the models with their parameters, validated before any job starts.

The fields mirror mergekit's YAML (the format LazyMergekit generates), so a config can be
written as `MergeConfig` fields or pasted as YAML (`from_yaml`), and is always turned back
into the YAML mergekit runs (`to_mergekit_yaml`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from llmtutor.errors import ToolInputError

Method = Literal[
    "linear", "slerp", "ties", "dare_ties", "dare_linear", "task_arithmetic", "passthrough", "moe"
]
# Methods that merge task vectors (model - base) and therefore need a base model.
TASK_VECTOR_METHODS = ("ties", "dare_ties", "dare_linear", "task_arithmetic")


class MergeModel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str = Field(description="A registered model name, a local HF folder, or a hub id (online).")
    weight: float | None = Field(None, description="Relative weight (linear, TIES, DARE, task arithmetic).")
    density: float | None = Field(
        None, gt=0, le=1, description="Fraction of task-vector entries kept (TIES, DARE)."
    )
    layer_range: tuple[int, int] | None = Field(None, description="[start, end) layers taken (passthrough).")
    positive_prompts: list[str] | None = Field(None, description="MoE: prompts this expert should handle.")
    negative_prompts: list[str] | None = Field(None, description="MoE: prompts it should not handle.")


class MergeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    method: Method = "slerp"
    models: list[MergeModel] = Field(min_length=1)
    base_model: str | None = Field(None, description="Base for SLERP (the t=0 end) and task-vector methods.")
    t: float | list[float] = Field(
        0.5,
        description="SLERP interpolation: 0 = base, 1 = the other model; a list is a gradient over layers.",
    )
    normalize: bool | None = Field(None, description="Divide by the sum of weights (linear, TIES).")
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    # MoE (mergekit-moe): how router rows are set, and how many experts each token uses
    gate_mode: Literal["hidden", "cheap_embed", "random"] = "hidden"
    experts_per_token: int = Field(2, ge=1, le=8)
    seed: int = 42  # DARE drops entries at random
    name: str | None = None
    models_dir: Path = Field(default_factory=lambda: Path("~/.llmtutor/models").expanduser())
    output_dir: Path = Field(default_factory=lambda: Path("merge-output"))

    @model_validator(mode="after")
    def _check_method_parameters(self) -> MergeConfig:
        problems = method_problems(self)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @classmethod
    def from_yaml(cls, text: str, **extra: Any) -> MergeConfig:
        """A LazyMergekit/mergekit YAML (models: or slices: form) as a validated config."""
        try:
            raw = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise ToolInputError(
                f"the merge YAML does not parse: {exc}", "check indentation and colons"
            ) from None
        if not isinstance(raw, dict):
            raise ToolInputError("the merge YAML must be a mapping", "start with 'merge_method: slerp'")
        if "experts" in raw:  # the mergekit-moe format
            return cls._from_moe_yaml(raw, extra)
        params = raw.get("parameters") or {}
        models: list[dict[str, Any]] = []
        for entry in raw.get("models") or []:
            p = entry.get("parameters") or {}
            models.append({"model": entry["model"], "weight": p.get("weight"), "density": p.get("density")})
        for piece in raw.get("slices") or []:
            for source in piece.get("sources") or []:
                rng = source.get("layer_range")
                if raw.get("merge_method") == "passthrough":
                    models.append({"model": source["model"], "layer_range": tuple(rng) if rng else None})
                elif source["model"] not in [m["model"] for m in models]:
                    models.append({"model": source["model"]})
        t = params.get("t", 0.5)
        if (
            isinstance(t, list) and t and isinstance(t[0], dict)
        ):  # per-filter t (self_attn/mlp): take the default
            t = next((item["value"] for item in t if "filter" not in item), 0.5)
        data = {
            "method": raw.get("merge_method", "slerp"),
            "models": models,
            "base_model": raw.get("base_model"),
            "t": t,
            "normalize": params.get("normalize"),
            "dtype": raw.get("dtype", "float32"),
            **extra,
        }
        try:
            return cls.model_validate({k: v for k, v in data.items() if v is not None})
        except ValueError as exc:
            raise ToolInputError(
                f"invalid merge config: {exc}", "see `llmtutor tools list` for merge_models"
            ) from None

    @classmethod
    def _from_moe_yaml(cls, raw: dict[str, Any], extra: dict[str, Any]) -> MergeConfig:
        models = [
            {
                "model": e["source_model"],
                "positive_prompts": e.get("positive_prompts"),
                "negative_prompts": e.get("negative_prompts"),
            }
            for e in raw.get("experts") or []
        ]
        data = {
            "method": "moe",
            "models": models,
            "base_model": raw.get("base_model"),
            "gate_mode": raw.get("gate_mode"),
            "experts_per_token": raw.get("experts_per_token"),
            "dtype": raw.get("dtype"),
            **extra,
        }
        try:
            return cls.model_validate({k: v for k, v in data.items() if v is not None})
        except ValueError as exc:
            raise ToolInputError(
                f"invalid MoE config: {exc}", "see `llmtutor tools list` for merge_models"
            ) from None


def method_problems(cfg: MergeConfig) -> list[str]:
    """Per-method parameter checks, in words a learner can act on."""
    names = [m.model for m in cfg.models]
    problems: list[str] = []
    if cfg.method == "slerp":
        others = [n for n in names if n != cfg.base_model]
        if len(set(names) | ({cfg.base_model} if cfg.base_model else set())) != 2:
            problems.append("SLERP interpolates exactly two models: give two models (the first is the base)")
        if cfg.base_model and not others:
            problems.append("SLERP needs a second model besides the base")
        ts = cfg.t if isinstance(cfg.t, list) else [cfg.t]
        if not ts or any(not 0 <= v <= 1 for v in ts):
            problems.append("SLERP t must be between 0 and 1")
    if cfg.method in TASK_VECTOR_METHODS:
        if not cfg.base_model:
            problems.append(f"{cfg.method} merges task vectors (model - base): set base_model")
        if not [n for n in names if n != cfg.base_model]:
            problems.append(f"{cfg.method} needs at least one model besides the base")
    if cfg.method in ("ties", "dare_ties", "dare_linear"):
        missing = [m.model for m in cfg.models if m.model != cfg.base_model and m.density is None]
        if missing:
            problems.append(f"{cfg.method} needs a density (0-1, e.g. 0.5) for {', '.join(missing)}")
    if cfg.method == "linear" and len(cfg.models) < 2:
        problems.append("a linear merge averages at least two models")
    if cfg.method == "passthrough":
        if any(m.layer_range is None for m in cfg.models):
            problems.append("passthrough stacks layer ranges: give layer_range [start, end) for every model")
        elif any(
            m.layer_range[0] >= m.layer_range[1] or m.layer_range[0] < 0 for m in cfg.models if m.layer_range
        ):
            problems.append("each layer_range must be [start, end) with 0 <= start < end")
    if cfg.method == "moe":
        from llmtutor.training.merge.moe import check_experts

        problems += check_experts(cfg.models, cfg.gate_mode, cfg.experts_per_token)
    elif any(m.positive_prompts or m.negative_prompts for m in cfg.models):
        problems.append("positive/negative prompts are for MoE experts (method moe)")
    for m in cfg.models:
        if m.weight is not None and cfg.method in ("slerp", "passthrough", "moe"):
            problems.append(f"{cfg.method} takes no per-model weight (got one for {m.model})")
    return problems


def to_mergekit_yaml(cfg: MergeConfig, paths: dict[str, str]) -> str:
    """The mergekit YAML for `cfg`, with model names replaced by their resolved local paths."""
    base = paths[cfg.base_model] if cfg.base_model else None
    if cfg.method == "moe":  # mergekit-moe's own format
        experts = [
            {
                "source_model": paths[m.model],
                **({"positive_prompts": m.positive_prompts} if m.positive_prompts else {}),
                **({"negative_prompts": m.negative_prompts} if m.negative_prompts else {}),
            }
            for m in cfg.models
        ]
        return yaml.safe_dump(
            {
                "base_model": paths[cfg.base_model or cfg.models[0].model],
                "gate_mode": cfg.gate_mode,
                "dtype": cfg.dtype,
                "experts_per_token": cfg.experts_per_token,
                "experts": experts,
            },
            sort_keys=False,
            allow_unicode=True,
        )
    doc: dict[str, Any] = {"merge_method": cfg.method, "dtype": cfg.dtype}
    if cfg.method == "slerp":
        ordered = [cfg.base_model or cfg.models[0].model] + [
            m.model for m in cfg.models if m.model != (cfg.base_model or cfg.models[0].model)
        ]
        layers = paths["__layers__"]
        doc["base_model"] = paths[ordered[0]]
        doc["slices"] = [
            {"sources": [{"model": paths[n], "layer_range": [0, int(layers)]} for n in ordered[:2]]}
        ]
        doc["parameters"] = {"t": cfg.t}
    elif cfg.method == "passthrough":
        doc["slices"] = [
            {"sources": [{"model": paths[m.model], "layer_range": list(m.layer_range or (0, 0))}]}
            for m in cfg.models
        ]
    else:
        entries = []
        for m in cfg.models:
            params = {k: v for k, v in (("weight", m.weight), ("density", m.density)) if v is not None}
            # mergekit requires a weight for every non-base model of these methods (it fails
            # mid-merge otherwise); 1.0 is the LazyMergekit default (TIES/linear normalise anyway)
            if "weight" not in params and m.model != cfg.base_model and cfg.method != "passthrough":
                params["weight"] = 1.0
            entries.append({"model": paths[m.model], **({"parameters": params} if params else {})})
        doc["models"] = entries
        if base:
            doc["base_model"] = base
        if cfg.normalize is not None:
            doc["parameters"] = {"normalize": cfg.normalize}
    return yaml.safe_dump(doc, sort_keys=False)
