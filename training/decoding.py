"""The decoding-strategies lab on a real model: greedy, beam search, top-k,
top-p (nucleus) and plain temperature sampling from the same prompt.

Every generated token is scored under the model's own next-token distribution
(raw logits, temperature 1, no truncation), not the warped distribution it was
sampled from: only then are log-likelihoods comparable across strategies.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from llmtutor.hf_models import ProgressFn, load_causal_lm

Strategy = Literal["greedy", "beam", "top_k", "top_p", "temperature"]
ALL_STRATEGIES: tuple[Strategy, ...] = ("greedy", "beam", "top_k", "top_p", "temperature")
DEFAULT_PROMPT = "The best way to learn about large language models is"
MAX_NEW_TOKENS_CAP = 256


class DecodingConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(DEFAULT_PROMPT, min_length=1, max_length=4000, description="The prompt to continue.")
    model: str = Field(
        "",
        description="Empty = the bundled SmolLM2-135M-Instruct; else an HF folder, a .gguf file or a hub id.",
    )
    strategies: list[Strategy] = Field(
        default_factory=lambda: list(ALL_STRATEGIES), min_length=1, description="Strategies to compare."
    )
    max_new_tokens: int = Field(
        32, ge=1, le=MAX_NEW_TOKENS_CAP, description="Tokens to generate per strategy."
    )
    num_beams: int = Field(4, ge=2, le=16, description="Beams kept by beam search.")
    top_k: int = Field(20, ge=1, le=1000, description="top_k: sample among the k most likely tokens.")
    top_p: float = Field(
        0.9, gt=0, le=1, description="top_p: sample from the smallest set with this much mass."
    )
    temperature: float = Field(
        0.7,
        gt=0,
        le=2,
        description="Sampling temperature, used by all three sampling strategies (temperature, top_k, top_p).",
    )
    seed: int = Field(0, ge=0, description="Seed: each sampling strategy starts from it, so reruns repeat.")
    use_chat_template: bool = Field(True, description="Wrap the prompt as a user turn in the chat template.")

    @field_validator("strategies")
    @classmethod
    def _dedupe(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))


class StrategyResult(BaseModel):
    model_config = ConfigDict(extra="forbid")

    strategy: Strategy
    settings: str
    text: str
    tokens: list[str]
    token_probs: list[float] = Field(description="p(token | prefix) under the model's own distribution.")
    log_likelihood: float = Field(description="Sum of the tokens' log-probabilities (natural log).")
    mean_logprob: float
    perplexity: float
    num_tokens: int
    finished: bool = Field(description="True when the model ended the answer (EOS) before max_new_tokens.")
    seconds: float


class DecodingComparison(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str
    device: str
    prompt: str
    max_new_tokens: int
    seed: int
    results: list[StrategyResult]
    plot_path: str | None = None

    def to_markdown(self) -> str:
        lines = [
            f"**Decoding strategies** with `{Path(self.model).name}` on {self.device} — "
            f"prompt: “{_cell(self.prompt, 120)}” (up to {self.max_new_tokens} new tokens, seed {self.seed})",
            "",
            "| strategy | settings | log-likelihood | mean log-prob | perplexity | text |",
            "|---|---|---:|---:|---:|---|",
        ]
        for r in self.results:
            lines.append(
                f"| {r.strategy} | {r.settings} | {r.log_likelihood:.2f} | {r.mean_logprob:.3f} "
                f"| {r.perplexity:.2f} | {_cell(r.text)} |"
            )
        lines += [
            "",
            "Greedy decoding takes the single most likely token at each step, so it maximises each step locally, "
            "while beam search keeps several candidates and maximises the likelihood of the whole sequence "
            "(its log-likelihood is usually the highest). "
            "Sampling (top-k, top-p, temperature) draws tokens at random, trading likelihood for diversity: "
            "its log-likelihood is lower and its text changes with the seed.",
        ]
        sampling = [r.text for r in self.results if r.strategy in ("top_k", "top_p", "temperature")]
        if len(sampling) > 1 and len(set(sampling)) == 1:
            lines += [
                "",
                "_The sampling rows share one seed, so they draw the same random numbers: identical text means no "
                "draw fell in the tail that top-k/top-p cut off. Raise the temperature or change the seed to see "
                "them diverge._",
            ]
        lines += [
            "",
            f"_Probabilities are the model's own (temperature 1, untruncated); compare mean log-prob when lengths "
            f"differ. {sum(r.seconds for r in self.results):.1f} s in total._",
        ]
        return "\n".join(lines)

    def images(self) -> list[str]:
        return [self.plot_path] if self.plot_path else []


def _cell(text: str, limit: int = 200) -> str:
    flat = " ".join(text.split()).replace("|", "\\|")
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _strategy_settings(strategy: Strategy, cfg: DecodingConfig) -> tuple[dict[str, Any], str]:
    """generate() arguments and a short label. Sampling knobs are set explicitly so a
    model's own generation_config defaults (e.g. top_k=50) never leak in."""
    t = cfg.temperature
    if strategy == "greedy":
        return {"do_sample": False, "num_beams": 1}, "argmax each step"
    if strategy == "beam":
        return {"do_sample": False, "num_beams": cfg.num_beams}, f"num_beams={cfg.num_beams}"
    if strategy == "top_k":
        return {
            "do_sample": True,
            "top_k": cfg.top_k,
            "top_p": 1.0,
            "temperature": t,
        }, f"k={cfg.top_k}, T={t}"
    if strategy == "top_p":
        return {"do_sample": True, "top_k": 0, "top_p": cfg.top_p, "temperature": t}, f"p={cfg.top_p}, T={t}"
    return {"do_sample": True, "top_k": 0, "top_p": 1.0, "temperature": t}, f"T={t}, no truncation"


def _encode(tokenizer: Any, cfg: DecodingConfig, device: Any) -> dict[str, Any]:
    if cfg.use_chat_template and getattr(tokenizer, "chat_template", None):
        enc = tokenizer.apply_chat_template(
            [{"role": "user", "content": cfg.prompt}],
            add_generation_prompt=True,
            return_tensors="pt",
            return_dict=True,
        )
    else:
        enc = tokenizer(cfg.prompt, return_tensors="pt")
    return {k: v.to(device) for k, v in enc.items()}


def _token_ids(model: Any, tokenizer: Any) -> dict[str, Any]:
    gen = model.generation_config
    eos = gen.eos_token_id if gen.eos_token_id is not None else tokenizer.eos_token_id
    pad = gen.pad_token_id if gen.pad_token_id is not None else tokenizer.pad_token_id
    return {
        "eos_token_id": eos,
        "pad_token_id": pad if pad is not None else eos,
        "bos_token_id": gen.bos_token_id,
    }


def _run_strategy(
    model: Any, tokenizer: Any, inputs: dict[str, Any], strategy: Strategy, cfg: DecodingConfig
):
    import torch
    from transformers import GenerationConfig

    kwargs, label = _strategy_settings(strategy, cfg)
    ids = _token_ids(model, tokenizer)
    # A full GenerationConfig (not model defaults + overrides) makes every run explicit.
    gen_config = GenerationConfig(
        **ids,
        **kwargs,
        max_new_tokens=cfg.max_new_tokens,
        output_scores=True,
        output_logits=True,  # raw logits: scores are warped by temperature/top-k/top-p
        return_dict_in_generate=True,
    )
    torch.manual_seed(cfg.seed)  # each strategy restarts from the seed, so results repeat
    start = time.perf_counter()
    with torch.inference_mode():
        out = model.generate(**inputs, generation_config=gen_config)
        beam_indices = out.beam_indices if strategy == "beam" else None
        logits = tuple(step.float() for step in out.logits)
        scores = model.compute_transition_scores(out.sequences, logits, beam_indices, normalize_logits=True)
    seconds = time.perf_counter() - start

    prompt_len = inputs["input_ids"].shape[1]
    generated = out.sequences[0, prompt_len:].tolist()
    logps = scores[0].tolist()[: len(generated)]
    eos_ids = ids["eos_token_id"] if isinstance(ids["eos_token_id"], list) else [ids["eos_token_id"]]
    # Cut after the first EOS: a beam hypothesis that finished early is padded.
    end = next((i + 1 for i, tok in enumerate(generated) if tok in eos_ids), len(generated))
    generated, logps = generated[:end], logps[:end]
    total = float(sum(logps))
    mean = total / max(len(logps), 1)
    return StrategyResult(
        strategy=strategy,
        settings=label,
        text=tokenizer.decode(generated, skip_special_tokens=True).strip(),
        tokens=[tokenizer.decode([tok], skip_special_tokens=False) for tok in generated],
        token_probs=[math.exp(lp) for lp in logps],
        log_likelihood=total,
        mean_logprob=mean,
        perplexity=math.exp(-mean),
        num_tokens=len(generated),
        finished=bool(generated) and generated[-1] in eos_ids,
        seconds=round(seconds, 3),
    )


def run(
    config: DecodingConfig,
    models_dir: Path,
    device: str = "auto",
    progress: ProgressFn | None = None,
    outputs_dir: Path | None = None,
    cancel: Callable[[], None] | None = None,
) -> DecodingComparison:
    """Generate with each strategy; `cancel` is called between strategies and raises to stop."""
    model, tokenizer = load_causal_lm(config.model or None, models_dir, device, progress=progress)
    dev = next(model.parameters()).device
    inputs = _encode(tokenizer, config, dev)
    results: list[StrategyResult] = []
    total = len(config.strategies)
    for i, strategy in enumerate(config.strategies):
        if cancel is not None:
            cancel()
        if progress is not None:
            progress("generate", i, total, f"{strategy}")
        results.append(_run_strategy(model, tokenizer, inputs, strategy, config))
    if progress is not None:
        progress("generate", total, total, "done")
    comparison = DecodingComparison(
        model=str(getattr(model, "name_or_path", "") or config.model or "SmolLM2-135M-Instruct"),
        device=str(dev),
        prompt=config.prompt,
        max_new_tokens=config.max_new_tokens,
        seed=config.seed,
        results=results,
    )
    if outputs_dir is not None:
        comparison.plot_path = str(save_plot(comparison, Path(outputs_dir) / "decoding"))
    return comparison


def save_plot(comparison: DecodingComparison, folder: Path) -> Path:
    """Per-token probability curves and mean log-prob bars, as a PNG (Agg, no pyplot state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{datetime.now().strftime('%Y%m%d-%H%M%S-%f')}.png"
    fig = Figure(figsize=(11, 4.2), dpi=100)
    FigureCanvasAgg(fig)
    curves, bars = fig.subplots(1, 2, gridspec_kw={"width_ratios": [2.2, 1]})
    for r in comparison.results:
        curves.plot(range(1, r.num_tokens + 1), r.token_probs, marker="o", markersize=3, label=r.strategy)
    curves.set(xlabel="generated token", ylabel="p(token | prefix)", ylim=(0, 1.05))
    curves.set_title("Per-token probability under the model", fontsize=10)
    curves.legend(loc="best", fontsize=8)
    curves.grid(alpha=0.3)
    names = [r.strategy for r in comparison.results]
    values = [r.mean_logprob for r in comparison.results]
    drawn = bars.bar(names, values, color=[f"C{i}" for i in range(len(names))])
    bars.bar_label(drawn, fmt="%.2f", fontsize=8)
    bars.margins(y=0.12)  # room for the labels under negative bars
    bars.set_title("Mean log-prob per token\n(higher = likelier)", fontsize=10)
    bars.tick_params(axis="x", labelrotation=30)
    bars.axhline(0, color="black", linewidth=0.8)
    fig.tight_layout()
    fig.savefig(path, format="png")
    return path
