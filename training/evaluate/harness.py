"""Multiple-choice accuracy through lm-evaluation-harness, on a model already in memory.

The model is handed to lm-eval's `HFLM` as an object, so lm-eval evaluates exactly what the
other metrics saw (a dequantized GGUF, a merged adapter) and loads nothing itself. Tasks come
from a local folder (`TaskManager(include_path=..., include_defaults=False)`): lm-eval's
bundled tasks fetch their data from the hub, which these runs never reach, and skipping
their ~10 000 YAML files also saves seconds of indexing.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

from llmtutor.errors import ToolInputError
from llmtutor.training.evaluate.config import TASKS_DIR
from llmtutor.training.progress import ProgressCallback, check_cancelled, emit


def _cancellable_hflm(cancel: threading.Event | None, progress: ProgressCallback | None, label: str) -> type:
    from lm_eval.models.huggingface import HFLM

    class CancellableHFLM(HFLM):
        """HFLM that checks for cancellation and reports progress before every forward batch."""

        calls = 0

        def _model_call(self, inps: Any, attn_mask: Any = None, labels: Any = None) -> Any:
            check_cancelled(cancel)
            type(self).calls += 1
            emit(progress, "eval", f"{label}: lm-eval batch {type(self).calls}", step=type(self).calls)
            return super()._model_call(inps, attn_mask=attn_mask, labels=labels)

    return CancellableHFLM


def run_task(
    model: Any,
    tokenizer: Any,
    task: str,
    include_path: Path | None = None,
    limit: int | None = None,
    batch_size: int = 4,
    seed: int = 0,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
    label: str = "",
) -> dict[str, Any]:
    """{acc, acc_stderr, acc_norm, acc_norm_stderr, n, task, ...} for one task."""
    import lm_eval
    from lm_eval.tasks import TaskManager

    check_cancelled(cancel)
    paths = [str(TASKS_DIR)] + ([str(include_path)] if include_path else [])
    manager = TaskManager(include_path=paths, include_defaults=False)
    if task not in manager.all_tasks:
        raise ToolInputError(
            f"no local lm-eval task {task!r} (known: {', '.join(sorted(manager.all_tasks))})",
            "use course_quiz, or put a task YAML with local data in lm_eval_include_path",
        )
    # lm-eval warns on every call about passing a model object and the 0-shot override: expected here.
    lm_logger = logging.getLogger("lm_eval")
    old_level = lm_logger.level
    lm_logger.setLevel(logging.ERROR)
    try:
        lm = _cancellable_hflm(cancel, progress, label)(
            pretrained=model, tokenizer=tokenizer, batch_size=batch_size
        )
        out = _evaluate(lm, task, manager, limit, seed)
    finally:
        lm_logger.setLevel(old_level)
    if out is None:  # only on non-zero ranks in distributed runs
        raise ToolInputError("lm-eval returned no results", "run the evaluation in a single process")
    scores = out["results"][task]
    result: dict[str, Any] = {
        "task": task,
        "n": int(out.get("n-samples", {}).get(task, {}).get("effective", 0)),
    }
    for key in ("acc", "acc_norm"):
        result[key] = _number(scores.get(f"{key},none"))
        result[f"{key}_stderr"] = _number(scores.get(f"{key}_stderr,none"))
    result["lm_eval_version"] = getattr(lm_eval, "__version__", "")
    return result


def _evaluate(lm: Any, task: str, manager: Any, limit: int | None, seed: int) -> Any:
    import lm_eval

    return lm_eval.simple_evaluate(
        model=lm,
        tasks=[task],
        task_manager=manager,
        limit=limit,
        num_fewshot=0,
        bootstrap_iters=1000,  # only used for non-mean metrics; acc's stderr is analytic
        log_samples=False,
        random_seed=seed,
        numpy_random_seed=seed,
        torch_random_seed=seed,
        fewshot_random_seed=seed,
    )


def _number(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):  # lm-eval writes "N/A" for missing stderrs
        return None
