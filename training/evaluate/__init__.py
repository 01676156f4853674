"""Model evaluation: the course's "Evaluation" module as a lab, comparing models on the same data.

    result = run(EvalConfig(models=[ModelSpec(model=""), ModelSpec(model="my-finetune")],
                            metrics=["perplexity", "bleu_rouge", "lm_eval"], output_dir=Path("eval")))

Metrics (any subset, every model on the same data, the FIRST model is the baseline), registered in
`metrics.py` (add one there):
- perplexity: sliding window over a text file or the bundled course notes (`perplexity.py`);
  GGUF models are scored on their dequantized HF conversion, which holds the quantized values
  exactly, and also by llama.cpp itself (`llamacpp_ppl.py`), so a quantized export can be
  compared with its source;
- bleu_rouge: greedy answers to reference prompts through each model's chat template, BLEU
  (sacrebleu) and ROUGE-L (rouge_score), Chinese included (`generation.py`, `text_metrics.py`);
- lm_eval: multiple-choice accuracy with lm-evaluation-harness on the local course-quiz task
  (`harness.py`, `tasks/`);
- judge: an LLM judge (a LangChain chat model the tool layer passes in), single 1-10 grading
  or pairwise with position swap (`judge.py`).
Writes eval_card.md / eval_card.json / eval_plot.png (`card.py`), generations.jsonl and
judge.jsonl into `output_dir`.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

from llmtutor.errors import ToolInputError
from llmtutor.training.evaluate.card import EvalResult, ModelEval, compute_deltas, write_card
from llmtutor.training.evaluate.config import EvalConfig, ModelSpec
from llmtutor.training.evaluate.metrics import (
    Column,
    EvalMetric,
    EvalRun,
    get_metric,
    list_metrics,
    metric_names,
    register_metric,
)
from llmtutor.training.progress import ProgressCallback, check_cancelled, emit

__all__ = [
    "Column",
    "EvalConfig",
    "EvalMetric",
    "EvalResult",
    "EvalRun",
    "ModelEval",
    "ModelSpec",
    "get_metric",
    "list_metrics",
    "metric_names",
    "register_metric",
    "run",
]

_VERSIONS = ("torch", "transformers", "lm_eval", "sacrebleu", "rouge_score", "peft", "xllamacpp", "datasets")


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in _VERSIONS:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def _seed(seed: int) -> None:
    import random

    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def run(
    config: EvalConfig,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
    judge: Any = None,
) -> EvalResult:
    from llmtutor.hf_models import pick_device
    from llmtutor.training.evaluate.generation import generate_answers
    from llmtutor.training.evaluate.loading import load_model

    metrics = list_metrics(config.metrics)  # registration order, whatever order they were asked in
    for metric in metrics:
        if metric.needs_judge and judge is None:
            raise ToolInputError(
                f"the {metric.name} metric needs a judge model",
                f"configure a chat backend for the judge, or drop '{metric.name}' from metrics",
            )
    started = time.monotonic()
    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    device = pick_device(config.device)
    settings: dict[str, Any] = {
        "metrics": list(config.metrics),
        "device": device,
        "batch_size": config.batch_size,
        "seed": config.seed,
        "versions": _versions(),
    }
    ev = EvalRun(config, device, judge, progress, cancel, settings)
    for metric in metrics:  # data and checks first: a bad file fails before any model loads
        if metric.needs_answers:
            ev.references()
        if metric.prepare is not None:
            metric.prepare(ev)

    evals: list[ModelEval] = []
    for index, spec in enumerate(config.models):
        check_cancelled(cancel)
        label = spec.display()
        emit(
            progress,
            "load",
            f"loading {label} ({index + 1}/{len(config.models)})",
            step=index + 1,
            total=len(config.models),
        )
        _seed(config.seed)
        lm = load_model(spec, config.models_dir, device)
        m = ModelEval(
            label=label,
            model=spec.model,
            path=lm.path,
            kind=lm.kind,
            gguf=str(lm.gguf) if lm.gguf else None,
            chat_template_sha256=lm.chat_template_hash(),
            details=dict(lm.info),
        )
        for metric in metrics:
            if metric.needs_answers and label not in ev.answers:  # generated once, shared
                ev.answers[label] = generate_answers(
                    lm.model,
                    lm.tokenizer,
                    [r.prompt for r in ev.references()],
                    config.max_new_tokens,
                    config.batch_size,
                    progress,
                    cancel,
                    label,
                )
            metric.compute(ev, lm, m)
        evals.append(m)

    for metric in metrics:
        if metric.finish is not None:
            metric.finish(ev, evals)
    refs = ev.refs or []
    files = _write_details(out, refs, ev.answers, evals)
    if refs:
        settings["generation"] = {
            "items": len(refs),
            "max_new_tokens": config.max_new_tokens,
            "languages": ", ".join(f"{lang} {sum(r.lang() == lang for r in refs)}" for lang in ("en", "zh")),
        }
    result = EvalResult(
        output_dir=str(out),
        baseline=evals[0].label,
        models=evals,
        deltas=compute_deltas(evals),
        files=files,
        settings=settings,
        notes=ev.notes,
        seconds=round(time.monotonic() - started, 2),
    )
    emit(progress, "save", "writing the eval card")
    return write_card(result)


def _write_details(
    out: Path, refs: list, answers: dict[str, list[str]], evals: list[ModelEval]
) -> dict[str, str]:
    files: dict[str, str] = {}
    if refs and answers:
        rows = []
        for i, r in enumerate(refs):
            rows.append(
                {
                    "id": r.id,
                    "language": r.lang(),
                    "prompt": r.prompt,
                    "reference": r.reference,
                    "answers": {label: a[i] for label, a in answers.items()},
                    "rougeL": {
                        e.label: e.details["rougeL_items"][i] for e in evals if "rougeL_items" in e.details
                    },
                }
            )
        (out / "generations.jsonl").write_text(
            "".join(json.dumps(x, ensure_ascii=False) + "\n" for x in rows), encoding="utf-8"
        )
        files["generations"] = "generations.jsonl"
    judged = [(e.label, e.details.pop("judge_records")) for e in evals if "judge_records" in e.details]
    if judged:
        lines = [
            json.dumps({"model": label, **rec}, ensure_ascii=False) for label, recs in judged for rec in recs
        ]
        (out / "judge.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
        files["judge"] = "judge.jsonl"
    for e in evals:
        e.details.pop("rougeL_items", None)  # kept in generations.jsonl, not in the card
    return files
