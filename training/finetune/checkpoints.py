"""The checkpoint folder of a run: what a resume continues from, and what success removes."""

from __future__ import annotations

import re
import shutil

from llmtutor.training.finetune.config import FinetuneConfig

_CHECKPOINT = re.compile(r"^checkpoint-\d+$")


def prepare_checkpoints(config: FinetuneConfig, notes: list[str]) -> str | None:
    """The checkpoint to resume from (None: start fresh, clearing stale checkpoints)."""
    ckpt_dir = config.checkpoints
    found = (
        sorted(
            (p for p in ckpt_dir.glob("checkpoint-*") if p.is_dir() and _CHECKPOINT.match(p.name)),
            key=lambda p: int(p.name.split("-")[1]),
        )
        if ckpt_dir.is_dir()
        else []
    )
    if config.resume:
        # a worker killed while saving leaves a checkpoint without trainer_state.json (the
        # Trainer writes it last): resume from the newest complete one
        complete = [p for p in found if (p / "trainer_state.json").is_file()]
        if complete:
            notes.append(f"resumed from {complete[-1].name}")
            return str(complete[-1])
        notes.append(f"resume requested but {ckpt_dir} has no checkpoint; started from scratch")
    for stale in found:  # a fresh run must not leave old checkpoints for a later resume to pick up
        shutil.rmtree(stale, ignore_errors=True)
    return None


def remove_checkpoints(config: FinetuneConfig) -> None:
    """After success: the default checkpoint folder goes entirely; a custom one keeps all but checkpoint-N."""
    ckpt_dir = config.checkpoints
    if config.checkpoint_dir is None:
        shutil.rmtree(ckpt_dir, ignore_errors=True)
        return
    for ckpt in ckpt_dir.glob("checkpoint-*"):
        if _CHECKPOINT.match(ckpt.name):
            shutil.rmtree(ckpt, ignore_errors=True)
