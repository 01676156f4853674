"""Merge methods: one `MergeMethod` per method; the config, the recipe and the merge_models tool read them here.

To add one: `register_method(MergeMethod(name=..., description=..., <its facts>))` at the end of this file;
give `check`/`render` only where the generic checks and mergekit's `models:` YAML do not fit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import yaml
from pydantic import AfterValidator, Field

from llmtutor.training.merge import moe

if TYPE_CHECKING:
    import threading

    from llmtutor.training.merge.config import MergeConfig
    from llmtutor.training.progress import ProgressCallback

# A merge builds `model_dir` itself (MoE: mergekit-moe) and returns (lineage parameters, report notes).
Runner = Callable[
    ["MergeConfig", dict[str, Path], Path, "ProgressCallback | None", "threading.Event | None"],
    tuple[dict[str, Any], list[str]],
]


def render_models(cfg: MergeConfig, paths: dict[str, Any]) -> str:
    """mergekit's `models:` form (linear, TIES, DARE, task arithmetic): per-model weight and density."""
    doc: dict[str, Any] = {"merge_method": cfg.method, "dtype": cfg.dtype}
    entries = []
    for m in cfg.models:
        params = {k: v for k, v in (("weight", m.weight), ("density", m.density)) if v is not None}
        # mergekit requires a weight for every non-base model of these methods (it fails
        # mid-merge otherwise); 1.0 is the LazyMergekit default (TIES/linear normalise anyway)
        if "weight" not in params and m.model != cfg.base_model:
            params["weight"] = 1.0
        entries.append({"model": paths[m.model], **({"parameters": params} if params else {})})
    doc["models"] = entries
    if cfg.base_model:
        doc["base_model"] = paths[cfg.base_model]
    if cfg.normalize is not None:
        doc["parameters"] = {"normalize": cfg.normalize}
    return yaml.safe_dump(doc, sort_keys=False)


@dataclass(frozen=True)
class MergeMethod:
    name: str  # mergekit's `merge_method`
    description: str  # one line: the tool's schema and `llmtutor tools list` show it
    # The base model: "none" (unused), "first" (base_model, else the first model: SLERP's t=0 end,
    # the MoE's attention) or "required" (a task-vector method: it merges model - base)
    base: Literal["none", "first", "required"] = "none"
    weight: bool = True  # takes a per-model weight
    density: bool = False  # needs a density for every non-base model (TIES/DARE pruning)
    t: bool = False  # interpolates by `t`
    stacks_layers: bool = False  # models are layer ranges: depths may differ, no layer-wise similarity
    experts: bool = False  # models are MoE experts with router prompts
    check: Callable[[MergeConfig], list[str]] | None = None  # problems beyond the generic checks
    render: Callable[[MergeConfig, dict[str, Any]], str] = render_models  # the YAML mergekit runs
    yaml_name: str = "mergekit_config.yml"
    runner: Runner | None = None  # None: mergekit's run_merge on the rendered YAML
    peak_bytes: Callable[[list[int]], int] | None = None  # from the inputs' sizes; None: lazy mergekit

    @property
    def task_vectors(self) -> bool:
        return self.base == "required"


_METHODS: dict[str, MergeMethod] = {}


def register_method(method: MergeMethod) -> MergeMethod:
    """Make `method` valid in MergeConfig, listed in the merge_models tool and runnable."""
    if method.name in _METHODS:
        raise ValueError(f"merge method registered twice: {method.name}")
    _METHODS[method.name] = method
    return method


def unregister_method(name: str) -> None:
    _METHODS.pop(name, None)


def get_method(name: str) -> MergeMethod:
    try:
        return _METHODS[name]
    except KeyError:
        raise ValueError(f"unknown merge method {name!r}: choose one of {', '.join(_METHODS)}") from None


def find_method(name: str | None) -> MergeMethod | None:
    """The method, or None for a name not registered (e.g. a stored result of a removed method)."""
    return _METHODS.get(name or "")


def method_names() -> list[str]:
    return list(_METHODS)


def list_methods() -> list[MergeMethod]:
    return list(_METHODS.values())


def _known(name: str) -> str:
    get_method(name)
    return name


def _schema(schema: dict[str, Any]) -> None:
    # Called whenever a JSON schema is built, so methods registered later are listed too.
    schema["enum"] = method_names()
    schema["description"] = "Merge method: " + "; ".join(
        f"{m.name} = {m.description}" for m in list_methods()
    )


# A method name: validated against the registry; an `enum` of the registered names in JSON schemas.
MethodName = Annotated[str, AfterValidator(_known), Field(json_schema_extra=_schema)]


def method_problems(cfg: MergeConfig) -> list[str]:
    """Per-method parameter checks, in words a learner can act on: the generic ones from the
    method's facts, then its own `check`."""
    method = get_method(cfg.method)
    problems: list[str] = []
    if method.task_vectors:
        if not cfg.base_model:
            problems.append(f"{cfg.method} merges task vectors (model - base): set base_model")
        if not [m for m in cfg.models if m.model != cfg.base_model]:
            problems.append(f"{cfg.method} needs at least one model besides the base")
    if method.density:
        missing = [m.model for m in cfg.models if m.model != cfg.base_model and m.density is None]
        if missing:
            problems.append(f"{cfg.method} needs a density (0-1, e.g. 0.5) for {', '.join(missing)}")
    if method.check is not None:
        problems += method.check(cfg)
    if not method.experts and any(m.positive_prompts or m.negative_prompts for m in cfg.models):
        moes = ", ".join(m.name for m in list_methods() if m.experts)
        problems.append(f"positive/negative prompts are for MoE experts (method {moes})")
    if not method.weight:
        problems += [
            f"{cfg.method} takes no per-model weight (got one for {m.model})"
            for m in cfg.models
            if m.weight is not None
        ]
    return problems


# ----- the methods' own checks and YAML ----------------------------------------------------
def _slerp_problems(cfg: MergeConfig) -> list[str]:
    names = [m.model for m in cfg.models]
    problems = []
    if len(set(names) | ({cfg.base_model} if cfg.base_model else set())) != 2:
        problems.append("SLERP interpolates exactly two models: give two models (the first is the base)")
    if cfg.base_model and not [n for n in names if n != cfg.base_model]:
        problems.append("SLERP needs a second model besides the base")
    ts = cfg.t if isinstance(cfg.t, list) else [cfg.t]
    if not ts or any(not 0 <= v <= 1 for v in ts):
        problems.append("SLERP t must be between 0 and 1")
    return problems


def _render_slerp(cfg: MergeConfig, paths: dict[str, Any]) -> str:
    base = cfg.base_model or cfg.models[0].model
    ordered = [base] + [m.model for m in cfg.models if m.model != base]
    doc = {
        "merge_method": cfg.method,
        "dtype": cfg.dtype,
        "base_model": paths[ordered[0]],
        "slices": [
            {
                "sources": [
                    {"model": paths[n], "layer_range": [0, int(paths["__layers__"])]} for n in ordered[:2]
                ]
            }
        ],
        "parameters": {"t": cfg.t},
    }
    return yaml.safe_dump(doc, sort_keys=False)


def _linear_problems(cfg: MergeConfig) -> list[str]:
    return ["a linear merge averages at least two models"] if len(cfg.models) < 2 else []


def _passthrough_problems(cfg: MergeConfig) -> list[str]:
    ranges = [m.layer_range for m in cfg.models]
    if any(r is None for r in ranges):
        return ["passthrough stacks layer ranges: give layer_range [start, end) for every model"]
    if any(r[0] >= r[1] or r[0] < 0 for r in ranges if r):
        return ["each layer_range must be [start, end) with 0 <= start < end"]
    return []


def _render_passthrough(cfg: MergeConfig, paths: dict[str, Any]) -> str:
    doc = {
        "merge_method": cfg.method,
        "dtype": cfg.dtype,
        "slices": [
            {"sources": [{"model": paths[m.model], "layer_range": list(m.layer_range or (0, 0))}]}
            for m in cfg.models
        ],
    }
    return yaml.safe_dump(doc, sort_keys=False)


# ----- the registered methods (registration order is the order tools list them) ------------
register_method(MergeMethod("linear", "weighted average of the models' weights", check=_linear_problems))
register_method(
    MergeMethod(
        "slerp",
        "spherical interpolation between two models by t (0 = base, 1 = the other)",
        base="first",
        weight=False,
        t=True,
        check=_slerp_problems,
        render=_render_slerp,
    )
)
register_method(
    MergeMethod(
        "ties",
        "keep each task vector's largest entries (density), resolve sign conflicts, add to the base",
        base="required",
        density=True,
    )
)
register_method(
    MergeMethod(
        "dare_ties",
        "drop task-vector entries at random (keep density, rescale), then TIES sign election",
        base="required",
        density=True,
    )
)
register_method(
    MergeMethod(
        "dare_linear",
        "drop task-vector entries at random (keep density, rescale), then a weighted sum",
        base="required",
        density=True,
    )
)
register_method(
    MergeMethod(
        "task_arithmetic", "add the weighted task vectors (model - base) to the base", base="required"
    )
)
register_method(
    MergeMethod(
        "passthrough",
        "stack layer ranges of the models into a deeper model (frankenmerge)",
        weight=False,
        stacks_layers=True,
        check=_passthrough_problems,
        render=_render_passthrough,
    )
)
register_method(
    MergeMethod(
        "moe",
        "mixture of experts (mergekit-moe): each model's MLPs become an expert, routed by prompts",
        base="first",
        weight=False,
        experts=True,
        check=moe.check_config,
        render=moe.render_yaml,
        yaml_name="mergekit_moe_config.yml",
        runner=moe.run_moe,
        peak_bytes=moe.estimate_peak_bytes,
    )
)
