"""Model evaluation: the course's "Evaluation" module as a lab, comparing models on the same data.

    result = run(EvalConfig(models=[ModelSpec(model=""), ModelSpec(model="my-finetune")],
                            metrics=["perplexity", "bleu_rouge", "lm_eval"], output_dir=Path("eval")))

Metrics (any subset, every model on the same data, the FIRST model is the baseline):
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
from llmtutor.training.evaluate.config import ALL_METRICS, EvalConfig, ModelSpec
from llmtutor.training.progress import ProgressCallback, check_cancelled, emit

__all__ = ["ALL_METRICS", "EvalConfig", "EvalResult", "ModelEval", "ModelSpec", "run"]

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
    from llmtutor.training.evaluate import generation, harness, perplexity, text_metrics
    from llmtutor.training.evaluate.judge import grade_single, sanity_check
    from llmtutor.training.evaluate.loading import load_model

    if "judge" in config.metrics and judge is None:
        raise ToolInputError(
            "the judge metric needs a judge model",
            "configure a chat backend for the judge, or drop 'judge' from metrics",
        )
    started = time.monotonic()
    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    device = pick_device(config.device)
    wants = set(config.metrics)
    settings: dict[str, Any] = {
        "metrics": list(config.metrics),
        "device": device,
        "batch_size": config.batch_size,
        "seed": config.seed,
        "versions": _versions(),
    }
    notes: list[str] = []
    text = perplexity.load_text(config.perplexity_text) if "perplexity" in wants else ""
    refs = (
        generation.load_references(config.references, config.max_references)
        if wants & {"bleu_rouge", "judge"}
        else []
    )
    answers: dict[str, list[str]] = {}
    evals: list[ModelEval] = []
    token_counts: set[int] = set()
    if "judge" in wants:
        emit(progress, "eval", "checking the judge on control answers")
        sanity = sanity_check(
            judge,
            [(r.prompt, r.reference) for r in refs],
            config.judge_mode,
            config.judge_retries,
            config.judge_method,
        )
        settings["judge"] = {
            "mode": config.judge_mode,
            "retries": config.judge_retries,
            "model": _judge_name(judge),
            "sanity_check": sanity,
        }
        if not sanity["passed"]:
            notes.append(
                f"The judge ({_judge_name(judge)}) failed its sanity check: it did not reliably prefer the "
                f"reference answer to a wrong one ({_sanity_text(sanity)}), so its grades are noise. Use a "
                "bigger judge model (judge_model, or LLMTUTOR_BACKEND/LLMTUTOR_CHAT_MODEL)."
            )

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

        if "perplexity" in wants:
            ids = perplexity.tokenize(lm.tokenizer, text, config.max_eval_tokens)
            token_counts.add(len(ids))
            nll, n = perplexity.sliding_window_nll(
                lm.model, ids, config.max_length, config.stride, config.batch_size, progress, cancel, label
            )
            m.metrics["perplexity"] = perplexity.perplexity(nll, n)
            m.details.update(perplexity_tokens=len(ids), perplexity_scored_tokens=n, perplexity_nll=nll)
            settings["perplexity"] = {
                "text": config.perplexity_text,
                "tokens": len(ids),
                "scored_tokens": n,
                "max_length": config.max_length,
                "stride": config.stride,
                "max_eval_tokens": config.max_eval_tokens,
            }
            if lm.gguf is not None and config.llamacpp_perplexity:
                from llmtutor.training.evaluate.llamacpp_ppl import llamacpp_window_nll

                nll_cpp, n_cpp = llamacpp_window_nll(
                    lm.gguf, ids, config.max_length, config.stride, progress, cancel, label
                )
                m.metrics["perplexity_llamacpp"] = perplexity.perplexity(nll_cpp, n_cpp)
                m.details["perplexity_llamacpp_scored_tokens"] = n_cpp

        if wants & {"bleu_rouge", "judge"}:
            answers[label] = generation.generate_answers(
                lm.model,
                lm.tokenizer,
                [r.prompt for r in refs],
                config.max_new_tokens,
                config.batch_size,
                progress,
                cancel,
                label,
            )
        if "bleu_rouge" in wants:
            scores = text_metrics.generation_scores(
                answers[label], [r.reference for r in refs], [r.lang() for r in refs]
            )
            m.details["rougeL_items"] = scores.pop("rougeL_items")
            m.metrics.update(scores)

        if "lm_eval" in wants:
            emit(progress, "eval", f"{label}: lm-eval {config.lm_eval_task}")
            res = harness.run_task(
                lm.model,
                lm.tokenizer,
                config.lm_eval_task,
                config.lm_eval_include_path,
                config.lm_eval_limit,
                config.batch_size,
                config.seed,
                progress,
                cancel,
                label,
            )
            m.metrics["lm_eval_acc"], m.metrics["lm_eval_acc_norm"] = res["acc"], res["acc_norm"]
            m.details.update(
                lm_eval_acc_stderr=res["acc_stderr"], lm_eval_acc_norm_stderr=res["acc_norm_stderr"]
            )
            settings["lm_eval"] = {"task": res["task"], "items": res["n"], "limit": config.lm_eval_limit}

        if "judge" in wants and config.judge_mode == "single":
            items = [
                {"id": r.id, "prompt": r.prompt, "reference": r.reference, "answer": a}
                for r, a in zip(refs, answers[label], strict=True)
            ]
            graded = grade_single(
                judge, items, config.judge_retries, config.judge_method, progress, cancel, label
            )
            m.metrics["judge_score"] = graded["judge_score"]
            m.details.update(
                judge_graded=graded["judge_graded"],
                judge_failures=graded["judge_failures"],
                judge_records=graded["records"],
            )
        evals.append(m)

    if "judge" in wants and config.judge_mode == "pairwise":
        _pairwise(config, judge, refs, answers, evals, progress, cancel)
    if len(token_counts) > 1:
        notes.append(
            "The models tokenize the text differently, so their perplexities are per different "
            "tokens; compare them with care (bits per byte would be tokenizer-free)."
        )
    files = _write_details(out, refs, answers, evals)
    if refs:
        settings["generation"] = {
            "items": len(refs),
            "max_new_tokens": config.max_new_tokens,
            "languages": ", ".join(f"{lang} {sum(r.lang() == lang for r in refs)}" for lang in ("en", "zh")),
        }
    if any(e.metrics.get("perplexity_llamacpp") is not None for e in evals):
        notes.append(
            "perplexity (llama.cpp) scores the GGUF with llama.cpp's own kernels (8-bit activations); "
            "perplexity uses its exact float32 dequantization in transformers."
        )
    result = EvalResult(
        output_dir=str(out),
        baseline=evals[0].label,
        models=evals,
        deltas=compute_deltas(evals),
        files=files,
        settings=settings,
        notes=notes,
        seconds=round(time.monotonic() - started, 2),
    )
    emit(progress, "save", "writing the eval card")
    return write_card(result)


def _pairwise(
    config: EvalConfig,
    judge: Any,
    refs: list,
    answers: dict[str, list[str]],
    evals: list[ModelEval],
    progress: ProgressCallback | None,
    cancel: threading.Event | None,
) -> None:
    from llmtutor.training.evaluate.judge import compare_pairwise

    base = evals[0]
    # The baseline against itself is a tie by definition: 0.5, so deltas read as "above/below par".
    base.metrics["judge_win_rate"] = 0.5
    for m in evals[1:]:
        items = [
            {"id": r.id, "prompt": r.prompt, "reference": r.reference, "answer": a, "baseline_answer": b}
            for r, a, b in zip(refs, answers[m.label], answers[base.label], strict=True)
        ]
        res = compare_pairwise(
            judge, items, config.judge_retries, config.judge_method, progress, cancel, m.label
        )
        m.metrics["judge_win_rate"] = res["judge_win_rate"]
        m.details.update({k: v for k, v in res.items() if k not in ("judge_win_rate", "records")})
        m.details["judge_records"] = res["records"]


def _sanity_text(sanity: dict[str, Any]) -> str:
    if "reference_scores" in sanity:
        pairs = zip(sanity["reference_scores"], sanity["wrong_answer_scores"], strict=True)
        return "reference vs wrong answer scores: " + ", ".join(f"{a} vs {b}" for a, b in pairs)
    return "reference vs wrong answer: " + ", ".join(sanity["reference_vs_wrong"])


def _judge_name(judge: Any) -> str:
    for attr in ("model_name", "model"):
        value = getattr(judge, attr, None)
        if isinstance(value, str) and value:
            return Path(value).name if value.endswith(".gguf") else value
    return type(judge).__name__


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
