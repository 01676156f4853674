"""Eval metrics: one `EvalMetric` per name in `EvalConfig.metrics`; the recipe, the card and the tool read them here.

To add one: `register_metric(EvalMetric(name=..., description=..., columns=(Column(...),), compute=...))` at the
end of this file, where `compute(run, model, result)` stores the columns' values in `result.metrics`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import AfterValidator, Field

if TYPE_CHECKING:
    from llmtutor.training.evaluate.card import ModelEval
    from llmtutor.training.evaluate.config import EvalConfig
    from llmtutor.training.evaluate.generation import Reference
    from llmtutor.training.evaluate.loading import LoadedModel
    from llmtutor.training.progress import ProgressCallback

# Implementation modules are imported inside the functions below: they import config.py,
# which imports this module for `MetricName`.


@dataclass(frozen=True)
class Column:
    """One value in the card's table (a key of `ModelEval.metrics`)."""

    key: str
    title: str
    higher_is_better: bool
    fmt: str = "{:.3f}"


@dataclass
class EvalRun:
    """What the metrics of one run share: settings and notes for the card, the reference items,
    each model's answers to them (by label), and per-metric scratch state."""

    config: EvalConfig
    device: str
    judge: Any = None
    progress: ProgressCallback | None = None
    cancel: threading.Event | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    answers: dict[str, list[str]] = field(default_factory=dict)
    state: dict[str, Any] = field(default_factory=dict)
    refs: list[Reference] | None = None  # loaded on first use (`references()`)

    def references(self) -> list[Reference]:
        if self.refs is None:
            from llmtutor.training.evaluate.generation import load_references

            self.refs = load_references(self.config.references, self.config.max_references)
        return self.refs


@dataclass(frozen=True)
class EvalMetric:
    name: str  # as in `EvalConfig.metrics`
    description: str  # one line: the tool's schema and `llmtutor tools list` show it
    columns: tuple[Column, ...]  # its card columns, in order
    compute: Callable[[EvalRun, LoadedModel, ModelEval], None]  # per model: fills `result.metrics`
    needs_answers: bool = False  # each model's greedy answers to the reference prompts (`run.answers`)
    needs_judge: bool = False  # a judge chat model (the tool layer builds it)
    prepare: Callable[[EvalRun], None] | None = None  # once, before the first model loads
    finish: Callable[[EvalRun, list[ModelEval]], None] | None = None  # once, after every model
    check: Callable[[EvalConfig], list[str]] | None = None  # config problems, before any job
    settings_line: Callable[[dict[str, Any]], str] | None = None  # the card's line for settings[name]


_METRICS: dict[str, EvalMetric] = {}


def register_metric(metric: EvalMetric) -> EvalMetric:
    """Make `metric` valid in EvalConfig, listed in the evaluate_model tool and shown on the card."""
    if metric.name in _METRICS:
        raise ValueError(f"eval metric registered twice: {metric.name}")
    _METRICS[metric.name] = metric
    return metric


def unregister_metric(name: str) -> None:
    _METRICS.pop(name, None)


def get_metric(name: str) -> EvalMetric:
    try:
        return _METRICS[name]
    except KeyError:
        raise ValueError(f"unknown metric {name!r}: choose from {', '.join(_METRICS)}") from None


def metric_names() -> list[str]:
    return list(_METRICS)


def list_metrics(names: Iterable[str] | None = None) -> list[EvalMetric]:
    """The registered metrics, or those of `names`, in registration order (the order they run in)."""
    wanted = None if names is None else set(names)
    return [m for m in _METRICS.values() if wanted is None or m.name in wanted]


def columns() -> list[Column]:
    """Every metric's card columns, in card order."""
    return [c for m in _METRICS.values() for c in m.columns]


def needs_judge(names: Iterable[str]) -> bool:
    return any(m.needs_judge for m in list_metrics(names))


def _known(name: str) -> str:
    get_metric(name)
    return name


def describe_metrics(schema: dict[str, Any]) -> None:
    """`json_schema_extra` for a list of metrics: what each one measures."""
    schema["description"] = "Metrics, any of: " + "; ".join(
        f"{m.name} = {m.description}" for m in _METRICS.values()
    )


# A metric name: validated against the registry; an `enum` of the registered names in JSON
# schemas (built when the schema is, so metrics registered later are listed too).
MetricName = Annotated[
    str, AfterValidator(_known), Field(json_schema_extra=lambda s: s.update(enum=metric_names()))
]


# ----- perplexity ---------------------------------------------------------------------------
def _load_text(run: EvalRun) -> None:
    from llmtutor.training.evaluate.perplexity import load_text

    run.state["perplexity_text"] = load_text(run.config.perplexity_text)


def _perplexity(run: EvalRun, lm: LoadedModel, m: ModelEval) -> None:
    from llmtutor.training.evaluate import perplexity

    cfg = run.config
    ids = perplexity.tokenize(lm.tokenizer, run.state["perplexity_text"], cfg.max_eval_tokens)
    run.state.setdefault("perplexity_token_counts", set()).add(len(ids))
    nll, n = perplexity.sliding_window_nll(
        lm.model, ids, cfg.max_length, cfg.stride, cfg.batch_size, run.progress, run.cancel, m.label
    )
    m.metrics["perplexity"] = perplexity.perplexity(nll, n)
    m.details.update(perplexity_tokens=len(ids), perplexity_scored_tokens=n, perplexity_nll=nll)
    run.settings["perplexity"] = {
        "text": cfg.perplexity_text,
        "tokens": len(ids),
        "scored_tokens": n,
        "max_length": cfg.max_length,
        "stride": cfg.stride,
        "max_eval_tokens": cfg.max_eval_tokens,
    }
    if lm.gguf is not None and cfg.llamacpp_perplexity:
        from llmtutor.training.evaluate.llamacpp_ppl import llamacpp_window_nll

        nll_cpp, n_cpp = llamacpp_window_nll(
            lm.gguf, ids, cfg.max_length, cfg.stride, run.progress, run.cancel, m.label
        )
        m.metrics["perplexity_llamacpp"] = perplexity.perplexity(nll_cpp, n_cpp)
        m.details["perplexity_llamacpp_scored_tokens"] = n_cpp


def _perplexity_notes(run: EvalRun, evals: list[ModelEval]) -> None:
    if len(run.state.get("perplexity_token_counts", ())) > 1:
        run.notes.append(
            "The models tokenize the text differently, so their perplexities are per different "
            "tokens; compare them with care (bits per byte would be tokenizer-free)."
        )
    if any(e.metrics.get("perplexity_llamacpp") is not None for e in evals):
        run.notes.append(
            "perplexity (llama.cpp) scores the GGUF with llama.cpp's own kernels (8-bit activations); "
            "perplexity uses its exact float32 dequantization in transformers."
        )


def _perplexity_line(p: dict[str, Any]) -> str:
    return (
        f"- perplexity: {p['text']} — {p['tokens']} tokens ({p['scored_tokens']} scored), "
        f"window {p['max_length']}, stride {p['stride']}"
    )


# ----- BLEU / ROUGE-L -----------------------------------------------------------------------
def _bleu_rouge(run: EvalRun, lm: LoadedModel, m: ModelEval) -> None:
    from llmtutor.training.evaluate.text_metrics import generation_scores

    refs = run.references()
    scores = generation_scores(run.answers[m.label], [r.reference for r in refs], [r.lang() for r in refs])
    m.details["rougeL_items"] = scores.pop("rougeL_items")  # per item: written to generations.jsonl
    m.metrics.update(scores)


# ----- lm-evaluation-harness ----------------------------------------------------------------
def _lm_eval(run: EvalRun, lm: LoadedModel, m: ModelEval) -> None:
    from llmtutor.training.evaluate.harness import run_task
    from llmtutor.training.progress import emit

    cfg = run.config
    emit(run.progress, "eval", f"{m.label}: lm-eval {cfg.lm_eval_task}")
    res = run_task(
        lm.model,
        lm.tokenizer,
        cfg.lm_eval_task,
        cfg.lm_eval_include_path,
        cfg.lm_eval_limit,
        cfg.batch_size,
        cfg.seed,
        run.progress,
        run.cancel,
        m.label,
    )
    m.metrics["lm_eval_acc"], m.metrics["lm_eval_acc_norm"] = res["acc"], res["acc_norm"]
    m.details.update(lm_eval_acc_stderr=res["acc_stderr"], lm_eval_acc_norm_stderr=res["acc_norm_stderr"])
    run.settings["lm_eval"] = {"task": res["task"], "items": res["n"], "limit": cfg.lm_eval_limit}


def _lm_eval_line(e: dict[str, Any]) -> str:
    return f"- lm-eval: task {e['task']}, {e['items']} questions, 0-shot, log-likelihood"


# ----- LLM judge (judge.py) -----------------------------------------------------------------
def _judge_check(config: EvalConfig) -> list[str]:
    if config.judge_mode == "pairwise" and len(config.models) < 2:
        return ["pairwise judging compares models with the baseline: give at least two models"]
    return []


def _judge_line(j: dict[str, Any]) -> str:
    verdict = {True: "passed", False: "FAILED"}.get((j.get("sanity_check") or {}).get("passed"), "not run")
    return f"- judge: {j['mode']} ({j['model']}); sanity check on control answers: {verdict}"


def _prepare_judge(run: EvalRun) -> None:
    from llmtutor.training.evaluate.judge import check_judge

    check_judge(run)


def _judge_single(run: EvalRun, lm: LoadedModel, m: ModelEval) -> None:
    from llmtutor.training.evaluate.judge import grade_model

    if run.config.judge_mode == "single":
        grade_model(run, m)


def _judge_pairwise(run: EvalRun, evals: list[ModelEval]) -> None:
    from llmtutor.training.evaluate.judge import grade_pairwise

    if run.config.judge_mode == "pairwise":
        grade_pairwise(run, evals)


# ----- the registered metrics (registration order is run and card order) --------------------
register_metric(
    EvalMetric(
        "perplexity",
        "sliding-window perplexity on a text (the course notes by default); GGUF models also in llama.cpp",
        (
            Column("perplexity", "perplexity", False, "{:.2f}"),
            Column("perplexity_llamacpp", "perplexity (llama.cpp)", False, "{:.2f}"),
        ),
        _perplexity,
        prepare=_load_text,
        finish=_perplexity_notes,
        settings_line=_perplexity_line,
    )
)
register_metric(
    EvalMetric(
        "bleu_rouge",
        "BLEU and ROUGE-L of greedy answers against the reference answers (English and Chinese)",
        (Column("bleu", "BLEU", True, "{:.2f}"), Column("rougeL", "ROUGE-L", True)),
        _bleu_rouge,
        needs_answers=True,
    )
)
register_metric(
    EvalMetric(
        "lm_eval",
        "multiple-choice accuracy on the course quiz with lm-evaluation-harness",
        (Column("lm_eval_acc", "quiz acc", True), Column("lm_eval_acc_norm", "quiz acc_norm", True)),
        _lm_eval,
        settings_line=_lm_eval_line,
    )
)
register_metric(
    EvalMetric(
        "judge",
        "an LLM judge grades the answers 1-10 (single) or against the baseline's (pairwise)",
        (
            Column("judge_score", "judge 1-10", True, "{:.2f}"),
            Column("judge_win_rate", "judge win rate", True),
        ),
        _judge_single,
        needs_answers=True,
        needs_judge=True,
        prepare=_prepare_judge,
        finish=_judge_pairwise,
        check=_judge_check,
        settings_line=_judge_line,
    )
)
