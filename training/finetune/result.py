"""What a finished fine-tuning run hands back: where its artifacts are, its metrics, and what the
job runner should register."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

# Files every successful run writes (relative to output_dir).
TRAINING_CONFIG = "training_config.json"
METRICS = "metrics.json"
LOSS_CURVE = "loss_curve.png"
MODEL_CARD = "README.md"
ADAPTER_DIR = "adapter"
MERGED_DIR = "merged"
FULL_DIR = "model"
FINISHED_MARKERS = (MODEL_CARD, METRICS, MERGED_DIR, FULL_DIR)  # present only after a completed run


class FinetuneResult(BaseModel):
    model_config = ConfigDict(extra="forbid")
    output_dir: str  # absolute
    name: str
    method: str  # sft, dpo, orpo
    adapter: str  # what was trained: lora, qlora, full (qlora may have fallen back to lora)
    base_model: str  # as given (None -> the bundled SmolLM2's folder name)
    model_dir: str | None  # relative to output_dir: merged/ or model/ (None: adapter only)
    adapter_dir: str | None  # relative: adapter/ (None for full fine-tuning)
    training_config: str = TRAINING_CONFIG
    metrics_file: str = METRICS
    loss_curve: str = LOSS_CURVE
    model_card: str = MODEL_CARD
    metrics: dict[str, Any]
    notes: list[str]
    registration: dict[str, Any]  # name, kind (merged/adapter/full), path (relative), base, lineage

    def path(self, relative: str | None) -> Path | None:
        return None if relative is None else Path(self.output_dir) / relative

    def to_markdown(self) -> str:
        m = self.metrics

        def fmt(value: Any, spec: str = ".4f") -> str:
            return "–" if value is None else format(value, spec) if isinstance(value, float) else str(value)

        world = m.get("world_size") or 1
        processes = f" × {world} processes (global batch {m.get('global_batch_size')})" if world > 1 else ""
        rows = [
            ("model", f"`{self.name}` ({self.registration.get('kind')})"),
            ("base", self.base_model),
            ("method", f"{self.method.upper()} + {self.adapter}"),
            ("steps", f"{m.get('steps')} (epochs {fmt(m.get('epochs'), '.2f')})"),
            ("train loss", f"{fmt(m.get('train_loss_first'))} → {fmt(m.get('train_loss_last'))}"),
            ("eval loss", fmt(m.get("eval_loss"))),
            ("trained tokens", f"{m.get('trained_tokens')} ({fmt(m.get('tokens_per_s'), '.0f')} tokens/s)"),
            (
                "runtime",
                f"{fmt(m.get('runtime_s'), '.1f')} s on {m.get('device')}{processes}, "
                f"peak RSS {fmt(m.get('peak_rss_mb'), '.0f')} MB",
            ),
            ("output", f"`{self.output_dir}`"),
        ]
        lines = [f"**Fine-tuned {self.name}**", "", "| | |", "|---|---|"]
        lines += [f"| {key} | {value} |" for key, value in rows]
        files = [d for d in (self.model_dir, self.adapter_dir) if d] + [
            self.metrics_file,
            self.loss_curve,
            self.model_card,
        ]
        lines += ["", "Files: " + ", ".join(f"`{f}`" for f in files)]
        if self.notes:
            lines += ["", "Notes:"] + [f"- {note}" for note in self.notes]
        return "\n".join(lines)
