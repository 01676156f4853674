"""What a merge is: the method, the models with their parameters, validated before any job starts.
The methods and their per-method rules are registered in `methods.py`.

The fields mirror mergekit's YAML (the format LazyMergekit generates), so a config can be
written as `MergeConfig` fields or pasted as YAML (`from_yaml`), and is always turned back
into the YAML mergekit runs (`to_mergekit_yaml`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from llmtutor.errors import ToolInputError
from llmtutor.paths import check_name
from llmtutor.training.merge.methods import MethodName, find_method, get_method, method_problems


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
    method: MethodName = "slerp"
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

    @field_validator("name")
    @classmethod
    def _plain_name(cls, value: str | None) -> str | None:
        return None if value is None else check_name(value, "output name")

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
        method = find_method(raw.get("merge_method", "slerp"))
        models: list[dict[str, Any]] = []
        for entry in raw.get("models") or []:
            p = entry.get("parameters") or {}
            models.append({"model": entry["model"], "weight": p.get("weight"), "density": p.get("density")})
        for piece in raw.get("slices") or []:
            for source in piece.get("sources") or []:
                rng = source.get("layer_range")
                if method is not None and method.stacks_layers:
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


def to_mergekit_yaml(cfg: MergeConfig, paths: dict[str, Any]) -> str:
    """The mergekit YAML for `cfg`, with model names replaced by their resolved local paths
    (`paths["__layers__"]`: the models' depth, for methods that slice layers)."""
    return get_method(cfg.method).render(cfg, paths)
