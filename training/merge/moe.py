"""Mixture-of-experts assembly (mergekit-moe), the course's "frankenMoE" recipe.

Every expert keeps its own MLP blocks; attention, norms and embeddings come from the base
model; a router per layer picks `experts_per_token` experts for each token. Nothing is trained:
each expert's router row is set from the hidden states of "positive prompts" that should go to
it (gate_mode "hidden"), or from the prompts' token embeddings ("cheap_embed"), or at random.
So the prompts matter: they are the only thing telling the router what each expert is for.

The result is a Mixtral model. After building it we run every expert's prompts through it and
report where the router actually sends their tokens, so the learner sees whether the gates
separate the experts (measured, not assumed).
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import yaml

from llmtutor.training.progress import ProgressCallback, check_cancelled, emit

# For experts with no prompts of their own (the base model): everyday requests, not course ones.
GENERAL_PROMPTS = [
    "Write a short story about a dragon who learns to cook.",
    "Give me a recipe for pancakes.",
    "Tell me a joke about cats.",
    "What should I pack for a weekend trip to the mountains?",
]


def expert_prompts(name: str, path: Path, is_base: bool, count: int = 4) -> list[str] | None:
    """Default positive prompts: the first instructions of the dataset a fine-tune was trained
    on (from its training_config.json), general requests for the bundled base model, else None."""
    config = path.parent / "training_config.json"
    if config.is_file():
        dataset = Path(json.loads(config.read_text(encoding="utf-8")).get("dataset") or "")
        if dataset.is_file() and dataset.suffix == ".jsonl":
            prompts = []
            for line in dataset.read_text(encoding="utf-8").splitlines():
                row = json.loads(line) if line.strip() else {}
                text = (
                    row.get("instruction")
                    or row.get("prompt")
                    or next(
                        (m.get("content") for m in row.get("messages", []) if m.get("role") == "user"), None
                    )
                )
                if isinstance(text, str) and text.strip():
                    prompts.append(text.strip()[:500])
                if len(prompts) == count:
                    return prompts
            return prompts or None
    return list(GENERAL_PROMPTS) if is_base else None


def check_experts(experts: list[Any], gate_mode: str, experts_per_token: int) -> list[str]:
    """Problems with an MoE config, in words a learner can act on (mergekit itself only logs
    them and exits the process)."""
    problems = []
    if len(experts) < 2:
        problems.append("an MoE needs at least two experts")
    if experts_per_token > len(experts):
        problems.append(f"experts_per_token ({experts_per_token}) is more than the {len(experts)} experts")
    if len({e.model for e in experts}) < len(experts):
        problems.append("the same model appears twice as an expert: without training that only costs memory")
    if gate_mode != "random":
        missing = [e.model for e in experts if not e.positive_prompts]
        if missing:
            problems.append(
                f"gate_mode {gate_mode} needs positive prompts for {', '.join(missing)} "
                "(what each expert should handle), or use gate_mode random"
            )
        elif len({tuple(e.positive_prompts) for e in experts}) < len(experts):
            problems.append("two experts have the same prompts: the router could not tell them apart")
    return problems


def check_config(config: Any) -> list[str]:
    """The MoE method's own check (`MergeMethod.check`)."""
    return check_experts(config.models, config.gate_mode, config.experts_per_token)


def render_yaml(config: Any, paths: dict[str, Any]) -> str:
    """mergekit-moe's own YAML format (`MergeMethod.render`), written next to the model."""
    experts = [
        {
            "source_model": paths[m.model],
            **({"positive_prompts": m.positive_prompts} if m.positive_prompts else {}),
            **({"negative_prompts": m.negative_prompts} if m.negative_prompts else {}),
        }
        for m in config.models
    ]
    doc = {
        "base_model": paths[config.base_model or config.models[0].model],
        "gate_mode": config.gate_mode,
        "dtype": config.dtype,
        "experts_per_token": config.experts_per_token,
        "experts": experts,
    }
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)


def build_moe(config: Any, paths: dict[str, Path], model_dir: Path, seed: int) -> None:
    """Write the Mixtral model with mergekit-moe (validated beforehand: `check_experts`)."""
    import torch
    from mergekit.merge import MergeOptions
    from mergekit.moe.config import Expert, MoEMergeConfig
    from mergekit.scripts.moe import build

    torch.manual_seed(seed)  # random gates
    base = config.base_model or config.models[0].model
    moe = MoEMergeConfig(
        base_model=str(paths[base]),
        gate_mode=config.gate_mode,
        dtype=config.dtype,
        experts_per_token=config.experts_per_token,
        architecture="mixtral",
        experts=[
            Expert(
                source_model=str(paths[e.model]),
                positive_prompts=e.positive_prompts,
                negative_prompts=e.negative_prompts,
            )
            for e in config.models
        ],
    )
    build(
        moe, str(model_dir), MergeOptions(copy_tokenizer=True, lazy_unpickle=True, quiet=True), device="cpu"
    )


def routing_report(model_dir: Path, experts: list[Any]) -> dict[str, dict[str, float]]:
    """For each expert's prompts, the share of (token, layer) top-1 routing decisions that go to
    each expert: a diagonal-heavy table means the gates separate the experts."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32).eval()
    report: dict[str, dict[str, float]] = {}
    for expert in experts:
        if not expert.positive_prompts:
            continue
        counts = torch.zeros(len(experts))
        for prompt in expert.positive_prompts:
            ids = tokenizer(prompt, return_tensors="pt")
            with torch.no_grad():
                out = model(**ids, output_router_logits=True)
            for logits in out.router_logits:  # one (tokens, experts) tensor per layer
                counts += torch.bincount(logits.argmax(-1).flatten(), minlength=len(experts)).float()
        share = counts / counts.sum().clamp(min=1)
        report[expert.model] = {e.model: round(float(s), 3) for e, s in zip(experts, share, strict=True)}
    return report


def estimate_peak_bytes(weights_bytes: list[int]) -> int:
    """The finished MoE is at most the sum of its experts, and the routing check loads it once in
    float32; hidden-state gates load the base model whole (bf16, half of float32) first; plus the
    interpreter (~450 MB). mergekit itself streams tensors. Measured: 1441 MB for 2 x 135M
    (benchmarks/merge.py)."""
    return sum(weights_bytes) + max(weights_bytes) // 2 + 450 * 2**20


def run_moe(
    config: Any,
    paths: dict[str, Path],
    model_dir: Path,
    progress: ProgressCallback | None,
    cancel: threading.Event | None,
) -> tuple[dict[str, Any], list[str]]:
    """Build, then measure routing (the config was validated with `check_experts`).
    → (parameters for the lineage, notes for the report)."""
    start = time.perf_counter()
    emit(
        progress,
        "merge",
        f"assembling a {len(config.models)}-expert MoE (gate: {config.gate_mode})",
        step=0,
        total=2,
    )
    build_moe(config, paths, model_dir, config.seed)
    check_cancelled(cancel)
    emit(progress, "merge", "measuring where the router sends each expert's prompts", step=1, total=2)
    routing = routing_report(model_dir, config.models)
    emit(progress, "merge", "assembled", step=2, total=2)
    notes = [f"built in {time.perf_counter() - start:.1f} s; the router was not trained"]
    n = len(config.models)
    if n & (n - 1):
        notes.append(f"{n} experts is not a power of two: llama.cpp cannot run this model")
    parameters = {
        "gate_mode": config.gate_mode,
        "experts_per_token": config.experts_per_token,
        "experts": [e.model for e in config.models],
        "routing": routing,
    }
    return parameters, notes
