"""The bridge between the HF Trainer loop and the project's progress/cancel contract."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import Any

from transformers import TrainerCallback

from llmtutor.training.progress import ProgressCallback, emit


class ProgressBridge(TrainerCallback):
    """Emits `TrainingEvent(stage="train"|"eval")` per logged step and stops the loop on cancel.

    Cancel is checked at every step end; the loop is told to save a checkpoint and stop (so
    `resume=True` loses nothing), and the runner raises `CancelledError` once `train()` returns.
    Throughput comes from `token_counter` (exact) or `tokens_per_step` (an estimate).
    """

    def __init__(
        self,
        progress: ProgressCallback | None,
        cancel: threading.Event | None,
        token_counter: Callable[[], int] | None = None,
        tokens_per_step: float | None = None,
    ):
        self.progress = progress
        self.cancel = cancel
        self.token_counter = token_counter  # exact count of trained tokens (the SFT collator's)
        self.tokens_per_step = tokens_per_step  # an estimate, for trainers we cannot count in
        self.padded_counter: Callable[[], int] | None = None  # positions computed, padding included
        self._start_padded = 0
        self.cancelled = False
        self.diverged = False
        self.train_losses: list[tuple[int, float]] = []
        self.eval_losses: list[tuple[int, float]] = []
        self._start_time: float | None = None
        self._start_step = 0
        self._start_tokens = 0

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._start_time = time.perf_counter()
        self._start_step = state.global_step  # > 0 when resuming
        self._start_tokens = self.token_counter() if self.token_counter else 0
        self._start_padded = self.padded_counter() if self.padded_counter else 0

    def _check_cancel(self, control: Any) -> None:
        if self.cancel is not None and self.cancel.is_set() and not self.cancelled:
            self.cancelled = True
            control.should_save = True  # the trainer saves right after the callbacks of this step
            control.should_training_stop = True

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._check_cancel(control)

    def trained_tokens(self, state: Any) -> int:
        """Tokens trained on in this session (after a resume: since the resume)."""
        if self.token_counter is not None:
            return self.token_counter() - self._start_tokens
        return int((self.tokens_per_step or 0) * (state.global_step - self._start_step))

    def padding_fraction(self) -> float | None:
        """Share of computed positions that were padding (None when not counted)."""
        if self.token_counter is None or self.padded_counter is None:
            return None
        padded = self.padded_counter() - self._start_padded
        return 1 - (self.token_counter() - self._start_tokens) / padded if padded > 0 else None

    def tokens_per_s(self, state: Any) -> float | None:
        elapsed = time.perf_counter() - (self._start_time or time.perf_counter())
        seen = self.trained_tokens(state)
        return seen / elapsed if seen > 0 and elapsed > 0 else None

    def on_log(
        self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any
    ) -> None:
        logs = logs or {}
        step, total = state.global_step, state.max_steps
        if "loss" in logs:
            self.train_losses.append((step, float(logs["loss"])))
            if not math.isfinite(float(logs["loss"])):  # diverged: more steps only waste time
                self.diverged = True
                control.should_training_stop = True
            elapsed = time.perf_counter() - (self._start_time or time.perf_counter())
            done = step - self._start_step
            eta = elapsed / done * (total - step) if done > 0 and total else None
            emit(
                self.progress,
                "train",
                f"step {step}/{total}",
                step=step,
                total=total,
                loss=float(logs["loss"]),
                learning_rate=logs.get("learning_rate"),
                tokens_per_s=self.tokens_per_s(state),
                eta_s=eta,
            )
        if "eval_loss" in logs:
            self.eval_losses.append((step, float(logs["eval_loss"])))
            emit(
                self.progress,
                "eval",
                f"eval loss {logs['eval_loss']:.4f}",
                step=step,
                total=total,
                eval_loss=float(logs["eval_loss"]),
            )
        self._check_cancel(control)  # a progress consumer may have cancelled just now
