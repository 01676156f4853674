"""What the memory estimator answers: `MemoryEstimate`, its components, and the verdict.

Each `MemoryComponent` carries its bytes and the formula that produced them, so the learner can
redo the sum by hand; `MemoryEstimate.to_markdown` renders the breakdown as a table with every
formula. `make_verdict` compares the total with the learner's GPU, or with common GPU sizes
(`COMMON_GPUS`), and names the cheapest way to shrink it when it does not fit. The numbers
come from `memory.run`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from llmtutor.training.memory_config import MemoryEstimateConfig, Mode, Precision
from llmtutor.training.memory_formulas import sci
from llmtutor.training.model_shapes import Architecture

COMMON_GPUS: tuple[tuple[int, str], ...] = (
    (8, "RTX 4060"),
    (12, "RTX 3060/4070"),
    (16, "T4/RTX 4080"),
    (24, "RTX 3090/4090, L4"),
    (40, "A100 40GB"),
    (80, "A100/H100 80GB"),
)


class MemoryComponent(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Literal["weights", "gradients", "optimizer states", "activations", "KV cache", "overhead"]
    bytes: int
    gib: float
    formula: str


class MemoryEstimate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str
    source: Literal["built-in table", "config.json", "parameter count", "name"]
    architecture: Architecture
    mode: Mode
    precision: Precision
    context_length: int
    batch_size: int
    trainable_params: int
    breakdown: list[MemoryComponent]
    total_bytes: int
    total_gib: float
    bytes_per_param: float
    approximate: bool
    fits_gpus_gb: list[int]
    verdict: str
    assumptions: list[str]

    def to_markdown(self) -> str:
        mark = "≈ " if self.approximate else ""
        setting = f"{self.mode}, {self.precision}, context {self.context_length}, batch {self.batch_size}"
        lines = [
            f"**Memory estimate — {self.model} ({mark}{sci(self.architecture.params)} params; {setting})**",
            "",
        ]
        lines += ["| Component | GiB | Share |", "|---|---:|---:|"]
        for part in self.breakdown:
            lines.append(f"| {part.name} | {part.gib:.2f} | {part.bytes / self.total_bytes:.0%} |")
        lines.append(f"| **total** | **{self.total_gib:.2f}** | {self.bytes_per_param:.2f} B/param |")
        lines += ["", *(f"- {part.name}: {part.formula}" for part in self.breakdown), ""]
        lines.append(f"**Verdict:** {self.verdict}")
        if self.assumptions:
            lines += ["", "Assumptions: " + "; ".join(self.assumptions) + "."]
        return "\n".join(lines)


def make_verdict(cfg: MemoryEstimateConfig, total_gib: float, fits: list[int]) -> str:
    """One sentence: fits the learner's GPU (or the smallest common one it fits), or how to shrink it."""
    size = f"≈{total_gib:.1f} GiB"
    if cfg.gpu_memory_gb is not None:
        gap = cfg.gpu_memory_gb - total_gib
        if gap >= 0:
            return f"{size}: fits your {cfg.gpu_memory_gb:g} GB GPU with ≈{gap:.1f} GiB to spare."
        return f"{size}: does not fit your {cfg.gpu_memory_gb:g} GB GPU (≈{-gap:.1f} GiB short). {_tip(cfg)}"
    if not fits:
        split = "tensor parallelism" if cfg.mode == "inference" else "FSDP/ZeRO-3"
        return f"{size}: too big for one 80 GB GPU; split it across GPUs ({split}). {_tip(cfg)}"
    smallest = next(name for gb, name in COMMON_GPUS if gb == fits[0])
    too_small = [str(gb) for gb, _ in COMMON_GPUS if gb < fits[0]]
    tail = f" (not {'/'.join(too_small)} GB)" if too_small else ""
    return f"{size}: fits {fits[0]} GB GPUs ({smallest}) and larger{tail}."


def _tip(cfg: MemoryEstimateConfig) -> str:
    return {
        "inference": "To shrink it: int8/nf4 or a GGUF Q4_K_M, or a shorter context.",
        "full": "To shrink it: LoRA/QLoRA, adamw_8bit or gradient checkpointing.",
        "lora": "To shrink it: QLoRA or gradient checkpointing.",
        "qlora": "To shrink it: a shorter sequence, a smaller batch or a smaller model.",
    }[cfg.mode]
