"""What a quantization run reports: one row per format, measured against the source model."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from llmtutor.training.quantize.gguf_check import GGUFCheck


class QuantRow(BaseModel):
    model_config = ConfigDict(extra="forbid")
    label: str  # "source (float32)", "absmax int8", "GGUF Q4_K_M", ...
    method: str
    bits_per_weight: float | None = None
    size_mb: float | None = None  # weights on disk / in the file
    memory_mb: float | None = None  # measured footprint when loaded
    perplexity: float | None = None
    perplexity_delta_pct: float | None = None  # vs the source row
    tokens_per_s: float | None = None
    speed_ratio: float | None = None  # tokens/s vs the source row
    weight_error_pct: float | None = None  # mean relative weight error of the quantized layers
    engine: str = "transformers"
    note: str = ""


class QuantizeResult(BaseModel):
    model_config = ConfigDict(extra="forbid")
    output_dir: str
    source: str
    source_path: str
    device: str
    rows: list[QuantRow]
    files: dict[str, str] = Field(default_factory=dict)  # label -> path relative to output_dir
    layer_errors: dict[str, dict[str, Any]] = Field(
        default_factory=dict
    )  # lab method -> mean/max/worst layer
    gguf_checks: dict[str, GGUFCheck] = Field(default_factory=dict)
    type_mix: dict[str, dict[str, int]] = Field(default_factory=dict)  # GGUF type -> {ggml type: tensors}
    perplexity_setup: str = ""
    notes: list[str] = Field(default_factory=list)
    seconds: float = 0.0
    registration: dict[str, Any] | None = None  # the first GGUF: what the job runner registers
    registrations: list[dict[str, Any]] = Field(default_factory=list)  # every GGUF produced

    def path(self, key: str) -> Path | None:
        return Path(self.output_dir) / self.files[key] if key in self.files else None

    def to_markdown(self) -> str:
        def num(value: float | None, spec: str, suffix: str = "") -> str:
            return "–" if value is None else f"{value:{spec}}{suffix}"

        lines = [
            f"**Quantization of `{self.source}`** on {self.device} ({self.seconds:.0f} s)",
            "",
            "| format | engine | bits/weight | size MB | memory MB | perplexity | Δ ppl | tokens/s | speed | weight error |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in self.rows:
            delta = (
                "base"
                if r.perplexity_delta_pct is None and r.method == "source"
                else num(r.perplexity_delta_pct, "+.1f", "%")
            )
            lines.append(
                f"| {r.label} | {r.engine} | {num(r.bits_per_weight, '.2f')} | {num(r.size_mb, '.0f')} | "
                f"{num(r.memory_mb, '.0f')} | {num(r.perplexity, '.2f')} | {delta} | {num(r.tokens_per_s, '.0f')} | "
                f"{num(r.speed_ratio, '.2f', '×')} | {num(r.weight_error_pct, '.2f', '%')} |"
            )
        lines += ["", f"Perplexity: {self.perplexity_setup}."]
        for method, stats in self.layer_errors.items():
            lines.append(
                f"- {method}: mean relative weight error {stats['mean_pct']:.2f}% over {stats['layers']} "
                f"layers, worst {stats['max_pct']:.2f}% in `{stats['worst']}`."
            )
        for ftype, check in self.gguf_checks.items():
            mix = ", ".join(
                f"{n}×{t}" for t, n in sorted(self.type_mix.get(ftype, {}).items(), key=lambda kv: -kv[1])
            )
            verdict = (
                "✅ tokenizer, chat template and EOS match" if check.ok else "⚠️ " + "; ".join(check.problems)
            )
            lines += [
                "",
                f"**GGUF {ftype}** — tensors: {mix}. Export doctor: {verdict}.",
                f"llama.cpp answer ({check.finish_reason}): “{check.answer[:200]}”",
            ]
        lines += [f"- {note}" for note in self.notes]
        return "\n".join(lines)


def type_counts(types: dict[str, str]) -> dict[str, int]:
    return dict(Counter(types.values()))
