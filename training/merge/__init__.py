"""Model merging through mergekit: linear, SLERP, TIES, DARE (TIES and linear), task
arithmetic and passthrough (layer stacking), as in the course's LazyMergekit notebook, and
mixture-of-experts assembly with mergekit-moe (`moe.py`).

    result = run(MergeConfig(method="slerp", models=[MergeModel(model="base"),
                                                     MergeModel(model="my-finetune")], t=0.5))

The methods and their facts are registered in `methods.py` (add one there).
Before anything is written: per-method parameters are validated (`config.py`), the models
must share architecture and shapes, and their tokenizers must have the same vocabulary
(merging rows of embedding matrices that mean different tokens produces a model that
silently emits garbage, the most reported merge failure). mergekit loads tensors lazily, one
at a time, so peak memory stays near a few tensors per model rather than whole models.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from llmtutor.errors import ModelNotFoundError, ToolInputError
from llmtutor.jobs.kinds import register_kind
from llmtutor.training.merge.config import MergeConfig, MergeModel, to_mergekit_yaml
from llmtutor.training.merge.methods import (
    MergeMethod,
    find_method,
    get_method,
    list_methods,
    method_names,
    register_method,
)
from llmtutor.training.progress import ProgressCallback, check_cancelled, emit

__all__ = [
    "MergeConfig",
    "MergeMethod",
    "MergeModel",
    "MergeResult",
    "IncompatibleModelsError",
    "check_compatible",
    "estimate_peak_bytes",
    "get_method",
    "list_methods",
    "method_names",
    "register_method",
    "resolve_models",
    "run",
    "to_mergekit_yaml",
]

_SHAPE_KEYS = (
    "model_type",
    "hidden_size",
    "intermediate_size",
    "num_attention_heads",
    "num_key_value_heads",
    "vocab_size",
    "head_dim",
)


class IncompatibleModelsError(ToolInputError):
    """The models cannot be merged (architecture, shapes or vocabulary differ)."""


class MergeResult(BaseModel):
    model_config = ConfigDict(extra="forbid")
    output_dir: str
    model_dir: str  # relative to output_dir
    mergekit_yaml: str  # relative to output_dir
    method: str
    parents: list[str]
    parameters: dict[str, Any]
    checks: list[str]
    peak_memory_estimate_mb: float
    seconds: float
    similarity: dict[str, float]  # cosine similarity of all weights, merged vs each parent
    registration: dict[str, Any]  # what the job runner registers: name, kind, path, base, lineage

    def to_markdown(self) -> str:
        lines = [
            f"**Merged {len(self.parents)} models with {self.method}** in {self.seconds:.1f} s "
            f"(peak memory estimate {self.peak_memory_estimate_mb:.0f} MB, lazy loading)",
            "",
        ]
        method = find_method(self.method)  # None for a stored result of a method no longer registered
        routing = self.parameters.get("routing") if method and method.experts else None
        if routing:
            experts = list(routing)
            lines += [
                "Where the router sends each expert's prompts (share of top-1 token choices, all layers):",
                "",
                "| prompts of | " + " | ".join(f"→ {e}" for e in experts) + " |",
                "|---|" + "---:|" * len(experts),
            ]
            lines += [
                f"| {row} | " + " | ".join(f"{routing[row].get(e, 0):.0%}" for e in experts) + " |"
                for row in experts
            ]
        elif self.similarity:
            lines += ["| parent | cosine similarity to the merge |", "|---|---:|"]
            lines += [f"| {name} | {value:.4f} |" for name, value in self.similarity.items()]
        elif method and method.stacks_layers:
            lines.append(
                f"Layers were stacked ({self.method}), so there is no layer-to-layer similarity to report."
            )
        params = ", ".join(f"{k}={v}" for k, v in self.parameters.items() if k != "routing")
        lines += ["", f"Parameters: {params or 'defaults'}", "", "Checks: " + "; ".join(self.checks)]
        return "\n".join(lines)


def resolve_models(names: list[str], models_dir: Path) -> dict[str, Path]:
    from llmtutor.hf_models import resolve_hf_model

    paths: dict[str, Path] = {}
    for name in names:
        try:
            path: Path | str = resolve_hf_model(name, models_dir)
        except ModelNotFoundError:  # an uncached hub id or a missing file: the same advice
            path = name
        if not isinstance(path, Path):  # a hub id: mergekit would download it; keep runs local and explicit
            raise ToolInputError(
                f"{name!r} is not a registered model, a local folder or a .gguf file",
                "see `llmtutor models list`, or download hub models first (merges run offline)",
            )
        paths[name] = path
    return paths


def locate_models(names: list[str], models_dir: Path) -> dict[str, Path]:
    """Where each model's weights are now (an HF folder, or the .gguf a job would convert),
    without converting anything: the plan's checks read these, and a plan must not write."""
    from llmtutor.hf_models import source_without_writing

    located: dict[str, Path] = {}
    for name in names:
        source = source_without_writing(name, models_dir)
        located[name] = source if source is not None else resolve_models([name], models_dir)[name]
    return located


def _config(path: Path) -> dict[str, Any]:
    if path.suffix.lower() == ".gguf":  # the config transformers would build from its metadata
        from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint

        return dict(load_gguf_checkpoint(str(path), return_tensors=False)["config"])
    return json.loads((path / "config.json").read_text(encoding="utf-8"))


def _vocab(path: Path) -> dict[str, int]:
    from transformers import AutoTokenizer

    if path.suffix.lower() == ".gguf":
        return AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name).get_vocab()
    return AutoTokenizer.from_pretrained(str(path)).get_vocab()


def check_compatible(paths: dict[str, Path], same_depth: bool = True) -> list[str]:
    """Refuse models that cannot be merged; returns the checks that passed, for the report."""
    names = list(paths)
    configs = {n: _config(paths[n]) for n in names}
    first = names[0]
    keys = _SHAPE_KEYS + (("num_hidden_layers",) if same_depth else ())
    for name in names[1:]:
        diffs = [
            f"{k}: {configs[first].get(k)} vs {configs[name].get(k)}"
            for k in keys
            if configs[first].get(k) != configs[name].get(k)
        ]
        if diffs:
            raise IncompatibleModelsError(
                f"{first} and {name} have different architectures ({'; '.join(diffs)})",
                "merge models fine-tuned from the same base model (same family and size)",
            )
    vocabs = {n: _vocab(paths[n]) for n in names}
    for name in names[1:]:
        if vocabs[name] != vocabs[first]:
            extra = len(set(vocabs[name]) ^ set(vocabs[first]))
            raise IncompatibleModelsError(
                f"{first} and {name} have different tokenizers ({len(vocabs[first])} vs {len(vocabs[name])} tokens, "
                f"{extra} differ): their embedding rows mean different tokens",
                "merge models that share a tokenizer (fine-tunes of the same base)",
            )
    return [
        f"same architecture ({configs[first].get('model_type')}, hidden {configs[first].get('hidden_size')})",
        f"same vocabulary ({len(vocabs[first])} tokens)",
    ]


def _weights_bytes(path: Path) -> tuple[int, int]:
    """(total bytes of the weights, bytes of the largest tensor) from safetensors headers (or a
    GGUF's tensor index), counted as float32: the worst case while merging."""
    if path.suffix.lower() == ".gguf":
        from gguf import GGUFReader

        sizes = [int(t.n_elements) * 4 for t in GGUFReader(str(path)).tensors]
        return sum(sizes), max(sizes, default=0)
    from safetensors import safe_open

    total, largest = 0, 0
    for file in path.glob("*.safetensors"):
        with safe_open(str(file), "pt") as handle:
            for key in handle.keys():  # noqa: SIM118 - a safetensors handle, not a dict
                info = handle.get_slice(key)
                n = 1
                for dim in info.get_shape():
                    n *= dim
                size = n * 4  # worst case float32
                total += size
                largest = max(largest, size)
    return total, largest


OUT_SHARD_BYTES = 200 * 2**20  # mergekit buffers the output until a shard is full (default 5 GB)


def estimate_peak_bytes(paths: dict[str, Path], method: str = "") -> int:
    """Lazy merging holds about one tensor per input and its float32 working copies, plus one
    output shard; measured (benchmarks/merge.py) 130-220 MB above the interpreter's ~450 MB.
    Methods that do not run through mergekit's lazy merge estimate their own (`peak_bytes`)."""
    spec = find_method(method)
    if spec is not None and spec.peak_bytes is not None:
        return spec.peak_bytes([_weights_bytes(p)[0] for p in paths.values()])
    largest = max(_weights_bytes(p)[1] for p in paths.values())
    return largest * (2 * len(paths) + 3) + OUT_SHARD_BYTES + 450 * 2**20


def _tensor_names(folder: Path) -> dict[str, Path]:
    from safetensors import safe_open

    names: dict[str, Path] = {}
    for file in sorted(folder.glob("*.safetensors")):
        with safe_open(str(file), "pt") as handle:
            names.update({key: file for key in handle.keys()})  # noqa: SIM118 - not a dict
    return names


def _cosine_to_parents(merged: Path, paths: dict[str, Path]) -> dict[str, float]:
    """Cosine similarity of all weights (merged vs each parent), summed tensor by tensor in
    float64: one tensor pair in memory at a time, and no float32 round-off over 10^8 terms."""
    from safetensors import safe_open

    ours = _tensor_names(merged)
    result = {}
    for name, path in paths.items():
        theirs = _tensor_names(path)
        dot = norm_a = norm_b = 0.0
        for key, file in ours.items():
            if key not in theirs:
                continue
            with safe_open(str(file), "pt") as fa, safe_open(str(theirs[key]), "pt") as fb:
                a, b = fa.get_tensor(key).double().flatten(), fb.get_tensor(key).double().flatten()
            if a.shape != b.shape:
                continue
            dot, norm_a, norm_b = dot + float(a @ b), norm_a + float(a @ a), norm_b + float(b @ b)
        result[name] = dot / max((norm_a * norm_b) ** 0.5, 1e-30)
    return result


def run(
    config: MergeConfig, progress: ProgressCallback | None = None, cancel: threading.Event | None = None
) -> MergeResult:
    import yaml
    from mergekit.config import MergeConfiguration
    from mergekit.merge import MergeOptions, run_merge

    start = time.perf_counter()
    method = get_method(config.method)
    names = list(
        dict.fromkeys(([config.base_model] if config.base_model else []) + [m.model for m in config.models])
    )
    emit(progress, "check", f"resolving {len(names)} models")
    paths = resolve_models(names, config.models_dir)
    checks = check_compatible(paths, same_depth=not method.stacks_layers)
    peak = estimate_peak_bytes(paths, config.method)
    check_cancelled(cancel)
    yaml_paths: dict[str, Any] = {n: str(p) for n, p in paths.items()}
    yaml_paths["__layers__"] = _config(paths[names[0]]).get("num_hidden_layers", 0)
    text = to_mergekit_yaml(config, yaml_paths)
    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    model_dir = out / "model"
    if model_dir.exists():
        shutil.rmtree(model_dir)
    (out / method.yaml_name).write_text(text, encoding="utf-8")
    if method.runner is not None:  # not a mergekit `run_merge` (MoE: mergekit-moe)
        parameters, notes = method.runner(config, paths, model_dir, progress, cancel)
        return _finish(config, names, out, method.yaml_name, parameters, checks + notes, peak, start, {})
    emit(progress, "merge", f"{config.method} merge of {', '.join(names)}", step=0, total=1)
    options = MergeOptions(
        copy_tokenizer=True,
        lazy_unpickle=True,
        random_seed=config.seed,
        quiet=True,
        write_model_card=True,
        device="cpu",
        out_shard_size=OUT_SHARD_BYTES,
    )
    # mergekit runs tensor by tensor with no hook between them; a merge of small models
    # takes seconds, so cancel is honoured before and after it.
    run_merge(MergeConfiguration.model_validate(yaml.safe_load(text)), str(model_dir), options=options)
    check_cancelled(cancel)
    emit(progress, "merge", "merged", step=1, total=1)
    # stacking renumbers layers: merged layer i is not parent layer i, so no similarity
    similarity = {} if method.stacks_layers else _cosine_to_parents(model_dir, paths)
    parameters: dict[str, Any] = {}
    if method.t:
        parameters["t"] = config.t
    if config.normalize is not None:
        parameters["normalize"] = config.normalize
    for m in config.models:
        for key in ("weight", "density", "layer_range"):
            if getattr(m, key) is not None:
                parameters[f"{m.model}.{key}"] = getattr(m, key)
    return _finish(config, names, out, method.yaml_name, parameters, checks, peak, start, similarity)


def _finish(
    config: MergeConfig,
    names: list[str],
    out: Path,
    yaml_name: str,
    parameters: dict[str, Any],
    checks: list[str],
    peak: int,
    start: float,
    similarity: dict[str, float],
) -> MergeResult:
    """The result, with the lineage the job runner registers."""
    from llmtutor.hf_models import DEFAULT_HF_FOLDER, is_default_model

    # one name for the bundled model across the family tree (fine-tunes record it this way too)
    lineage = {
        "parents": [DEFAULT_HF_FOLDER if is_default_model(n) else n for n in names],
        "method": config.method,
        "parameters": parameters,
        "base": (config.base_model or names[0]) if get_method(config.method).base != "none" else None,
    }
    name = config.name or f"merge-{config.method}"
    result = MergeResult(
        output_dir=str(out),
        model_dir="model",
        mergekit_yaml=yaml_name,
        method=config.method,
        parents=names,
        parameters=parameters,
        checks=checks,
        peak_memory_estimate_mb=peak / 2**20,
        seconds=time.perf_counter() - start,
        similarity=similarity,
        registration={"name": name, "kind": "merged", "path": "model", "base": names[0], "lineage": lineage},
    )
    (out / "merge_result.json").write_text(result.model_dump_json(indent=2), encoding="utf-8")
    return result


register_kind("merge", MergeConfig, run)
