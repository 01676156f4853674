"""Explanations of tool results written from templates, in the learner's language.

`explain(tool_name, output, args, language)` reads the numbers from the tool's output (the
model_dump of its output model, `ToolRun["output"]`) and says what they show in fixed
sentences: every figure is a value of the output (or of the learner's request), never one a
model wrote. It returns "" when it has nothing grounded to add (an unknown tool, final results
such as a quiz question or a database answer, which are the whole reply already).

On the default 135M model these templates are the explanation and the model is not called;
capable backends write their own, checked against the result, with the template as fallback.
One module per tool family: memory.py, decoding.py, jobs.py. notices.py holds the fixed texts
for declined approvals, tool errors, small talk and off-course questions; topics.py the course
modules (nearest to a question, and the module of a notes file, for citations); similarity.py
the question's key concepts and the MiniLM cosine; wording.py small formatting helpers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from llmtutor.agents.explain.decoding import explain_decoding
from llmtutor.agents.explain.jobs import explain_job, explain_job_status
from llmtutor.agents.explain.memory import explain_memory

Explainer = Callable[[dict[str, Any], dict[str, Any], str], str]

EXPLAINERS: dict[str, Explainer] = {
    "estimate_memory": explain_memory,
    "compare_decoding": explain_decoding,
    "finetune_model": explain_job,
    "evaluate_model": explain_job,
    "merge_models": explain_job,
    "quantize_model": explain_job,
    "job_status": explain_job_status,
    # query_course_db and quiz: final results (the rows' answer, the question), nothing to add;
    # search_course: a cited answer (answering.extractive_answer), not an explanation.
}


def explain(tool_name: str, output: dict[str, Any] | None, args: dict[str, Any] | None, language: str) -> str:
    """The template explanation of a tool's output, or "" when there is nothing grounded to say."""
    explainer = EXPLAINERS.get(tool_name)
    if explainer is None or not isinstance(output, dict):
        return ""
    try:
        return explainer(output, args or {}, "zh" if language == "zh" else "en").strip()
    except (KeyError, TypeError, ValueError, AttributeError):
        # An output of an older shape (a stored job, a changed model): no explanation beats a wrong one.
        return ""


__all__ = ["EXPLAINERS", "explain"]
