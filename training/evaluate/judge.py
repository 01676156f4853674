"""LLM-as-judge, the two MT-Bench protocols (Zheng et al., 2023):

- single: each answer graded 1-10 against the reference with a fixed rubric;
- pairwise: a candidate's answer and the baseline's on the same prompt, "A", "B" or "tie".
  Judges favour the first position, so every pair is judged twice with the answers swapped;
  a model wins an item only if it wins in both orders, loses only if it loses in both, and
  anything else (a tie, or the verdict following the position) counts as a tie.

The judge is any LangChain chat model; verdicts come through `with_structured_output` with a
pydantic schema. A call that fails (unparsable output, schema violation, backend error) is
retried, then recorded as a failure: one bad verdict never sinks a whole evaluation.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field

from llmtutor.training.progress import ProgressCallback, check_cancelled, emit

if TYPE_CHECKING:
    from llmtutor.training.evaluate.card import ModelEval
    from llmtutor.training.evaluate.metrics import EvalRun

RUBRIC = """Grade the assistant's answer to a question from an LLM course, comparing it with the reference answer.
10: correct and complete, as good as the reference.
7-9: correct, with minor omissions or imprecision.
4-6: partly correct, vague, or missing key points.
2-3: mostly wrong or off-topic, with a little relevant content.
1: wrong, empty, or nonsense.
Judge meaning, not wording; an answer in English or Chinese is equally fine. Do not reward length."""

PAIRWISE = """Compare two assistants' answers to a question from an LLM course, using the reference answer.
Prefer the answer that is more correct and complete; ignore length, style and which answer comes first.
Answer "A", "B", or "tie" when they are equally good or equally bad."""


class JudgeGrade(BaseModel):
    reason: str = Field(description="One or two sentences on correctness and completeness.")
    score: int = Field(ge=1, le=10, description="1-10 by the rubric.")


class PairwiseVerdict(BaseModel):
    reason: str = Field(description="One or two sentences comparing the answers.")
    winner: Literal["A", "B", "tie"]


def _ask(
    runnable: Any, schema: type[BaseModel], messages: list[tuple[str, str]], retries: int
) -> tuple[Any, list[str]]:
    """(verdict or None, errors of the failed attempts)."""
    errors: list[str] = []
    for _ in range(retries + 1):
        try:
            out = runnable.invoke(messages)
            if out is None:
                raise ValueError("the judge returned nothing parsable")
            return (schema.model_validate(out) if isinstance(out, dict) else out), errors
        except Exception as exc:  # parse errors have many types (OutputParserException, ValidationError, ...)
            errors.append(f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}")
    return None, errors


def _structured(judge: Any, schema: type[BaseModel], method: str) -> Any:
    try:
        return judge.with_structured_output(schema, method=method)
    except TypeError:  # chat models without a `method` keyword
        return judge.with_structured_output(schema)


def grade_single(
    judge: Any,
    items: list[dict[str, str]],
    retries: int = 2,
    method: str = "json_schema",
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
    label: str = "",
) -> dict[str, Any]:
    """items: {id, prompt, reference, answer}. → judge_score (mean 1-10), failures, per-item records."""
    runnable = _structured(judge, JudgeGrade, method)
    records: list[dict[str, Any]] = []
    for n, item in enumerate(items, 1):
        check_cancelled(cancel)
        user = (
            f"Question: {item['prompt']}\n\nReference answer: {item['reference']}\n\n"
            f"Assistant's answer: {item['answer'] or '(empty)'}"
        )
        verdict, errors = _ask(runnable, JudgeGrade, [("system", RUBRIC), ("human", user)], retries)
        record: dict[str, Any] = {"id": item["id"], "attempts": len(errors) + (verdict is not None)}
        if verdict is not None:
            record.update(score=verdict.score, reason=verdict.reason)
        else:
            record["error"] = errors[-1]
        records.append(record)
        emit(progress, "eval", f"{label}: judge grading", step=n, total=len(items))
    scores = [r["score"] for r in records if "score" in r]
    return {
        "judge_score": sum(scores) / len(scores) if scores else None,
        "judge_graded": len(scores),
        "judge_failures": len(records) - len(scores),
        "records": records,
    }


def compare_pairwise(
    judge: Any,
    items: list[dict[str, str]],
    retries: int = 2,
    method: str = "json_schema",
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
    label: str = "",
) -> dict[str, Any]:
    """items: {id, prompt, reference, answer (candidate), baseline_answer}. → wins/losses/ties
    of the candidate against the baseline, judge_win_rate = (wins + ties / 2) / judged items."""
    runnable = _structured(judge, PairwiseVerdict, method)
    records: list[dict[str, Any]] = []
    for n, item in enumerate(items, 1):
        check_cancelled(cancel)
        record: dict[str, Any] = {"id": item["id"]}
        orders = {
            "candidate_first": (item["answer"], item["baseline_answer"]),
            "baseline_first": (item["baseline_answer"], item["answer"]),
        }
        verdicts: dict[str, str] = {}
        for order, (a, b) in orders.items():
            user = (
                f"Question: {item['prompt']}\n\nReference answer: {item['reference']}\n\n"
                f"Answer A: {a or '(empty)'}\n\nAnswer B: {b or '(empty)'}"
            )
            verdict, errors = _ask(
                runnable, PairwiseVerdict, [("system", PAIRWISE), ("human", user)], retries
            )
            if verdict is None:
                record["error"] = f"{order}: {errors[-1]}"
                break
            # Map the positional verdict back to who won.
            first, second = (
                ("candidate", "baseline") if order == "candidate_first" else ("baseline", "candidate")
            )
            verdicts[order] = {"A": first, "B": second, "tie": "tie"}[verdict.winner]
        if "error" not in record:
            outcomes = set(verdicts.values())
            record["verdicts"] = verdicts
            record["outcome"] = (
                "win" if outcomes == {"candidate"} else "loss" if outcomes == {"baseline"} else "tie"
            )
            record["position_consistent"] = len(outcomes) == 1
        records.append(record)
        emit(progress, "eval", f"{label}: judge comparing with the baseline", step=n, total=len(items))
    judged = [r for r in records if "outcome" in r]
    count = {k: sum(r["outcome"] == k for r in judged) for k in ("win", "loss", "tie")}
    return {
        "judge_win_rate": (count["win"] + count["tie"] / 2) / len(judged) if judged else None,
        "judge_wins": count["win"],
        "judge_losses": count["loss"],
        "judge_ties": count["tie"],
        "judge_position_consistency": (
            sum(r["position_consistent"] for r in judged) / len(judged) if judged else None
        ),
        "judge_failures": len(records) - len(judged),
        "records": records,
    }


OFF_TOPIC = "The Eiffel Tower is in Paris; it was finished in 1889 and is about 330 metres tall."


def sanity_check(
    judge: Any,
    qa: list[tuple[str, str]],
    mode: str,
    retries: int = 2,
    method: str = "json_schema",
    pairs: int = 3,
) -> dict[str, Any]:
    """Before trusting the judge, grade control answers whose verdict is known: for up to `pairs`
    questions, the reference itself against a wrong answer (another question's reference, so
    the judge must read the question; an off-topic sentence when there is only one question).
    The judge passes when the reference wins every pair (single: by at least 3 points)."""
    qa = qa[:pairs]
    controls = [
        (p, ref, qa[(i + 1) % len(qa)][1] if len(qa) > 1 else OFF_TOPIC) for i, (p, ref) in enumerate(qa)
    ]
    if mode == "pairwise":
        items = [
            {"id": f"control-{i}", "prompt": p, "reference": ref, "answer": ref, "baseline_answer": wrong}
            for i, (p, ref, wrong) in enumerate(controls)
        ]
        outcomes = [
            r.get("outcome", "failed") for r in compare_pairwise(judge, items, retries, method)["records"]
        ]
        return {"passed": all(o == "win" for o in outcomes), "reference_vs_wrong": outcomes}
    items = [
        item
        for i, (p, ref, wrong) in enumerate(controls)
        for item in (
            {"id": f"control-{i}-reference", "prompt": p, "reference": ref, "answer": ref},
            {"id": f"control-{i}-wrong", "prompt": p, "reference": ref, "answer": wrong},
        )
    ]
    scores = [r.get("score") for r in grade_single(judge, items, retries, method)["records"]]
    right, wrong = scores[0::2], scores[1::2]
    passed = all(a is not None and b is not None and a - b >= 3 for a, b in zip(right, wrong, strict=True))
    return {"passed": passed, "reference_scores": right, "wrong_answer_scores": wrong}


# ----- the judge metric's steps in an eval run (registered in metrics.py) ---------------------
def check_judge(run: EvalRun) -> None:
    """Before any model: grade control answers, so a judge that cannot tell right from wrong is
    flagged on the card."""
    cfg, refs = run.config, run.references()
    emit(run.progress, "eval", "checking the judge on control answers")
    sanity = sanity_check(
        run.judge,
        [(r.prompt, r.reference) for r in refs],
        cfg.judge_mode,
        cfg.judge_retries,
        cfg.judge_method,
    )
    run.settings["judge"] = {
        "mode": cfg.judge_mode,
        "retries": cfg.judge_retries,
        "model": judge_name(run.judge),
        "sanity_check": sanity,
    }
    if not sanity["passed"]:
        run.notes.append(
            f"The judge ({judge_name(run.judge)}) failed its sanity check: it did not reliably prefer the "
            f"reference answer to a wrong one ({_sanity_text(sanity)}), so its grades are noise. Use a "
            "bigger judge model (judge_model, or LLMTUTOR_BACKEND/LLMTUTOR_CHAT_MODEL)."
        )


def grade_model(run: EvalRun, m: ModelEval) -> None:
    """Single grading of one model's answers."""
    cfg = run.config
    items = [
        {"id": r.id, "prompt": r.prompt, "reference": r.reference, "answer": a}
        for r, a in zip(run.references(), run.answers[m.label], strict=True)
    ]
    graded = grade_single(
        run.judge, items, cfg.judge_retries, cfg.judge_method, run.progress, run.cancel, m.label
    )
    m.metrics["judge_score"] = graded["judge_score"]
    m.details.update(
        judge_graded=graded["judge_graded"],
        judge_failures=graded["judge_failures"],
        judge_records=graded["records"],
    )


def grade_pairwise(run: EvalRun, evals: list[ModelEval]) -> None:
    """After every model: each model's answers against the baseline's."""
    cfg, refs = run.config, run.references()
    base = evals[0]
    # The baseline against itself is a tie by definition: 0.5, so deltas read as "above/below par".
    base.metrics["judge_win_rate"] = 0.5
    for m in evals[1:]:
        items = [
            {"id": r.id, "prompt": r.prompt, "reference": r.reference, "answer": a, "baseline_answer": b}
            for r, a, b in zip(refs, run.answers[m.label], run.answers[base.label], strict=True)
        ]
        res = compare_pairwise(
            run.judge, items, cfg.judge_retries, cfg.judge_method, run.progress, run.cancel, m.label
        )
        m.metrics["judge_win_rate"] = res["judge_win_rate"]
        m.details.update({k: v for k, v in res.items() if k not in ("judge_win_rate", "records")})
        m.details["judge_records"] = res["records"]


def _sanity_text(sanity: dict[str, Any]) -> str:
    if "reference_scores" in sanity:
        pairs = zip(sanity["reference_scores"], sanity["wrong_answer_scores"], strict=True)
        return "reference vs wrong answer scores: " + ", ".join(f"{a} vs {b}" for a, b in pairs)
    return "reference vs wrong answer: " + ", ".join(sanity["reference_vs_wrong"])


def judge_name(judge: Any) -> str:
    for attr in ("model_name", "model"):
        value = getattr(judge, attr, None)
        if isinstance(value, str) and value:
            return Path(value).name if value.endswith(".gguf") else value
    return type(judge).__name__
