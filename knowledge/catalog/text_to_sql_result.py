"""What a text-to-SQL run ends in: an `SQLAnswer`, or a `QuestionNotUnderstoodError` with a hint.

An answer carries the SQL that ran, its rows, how the SQL was obtained (`Method`: typed by the
learner, the rule parser, an LLM-picked plan or LLM-written SQL) and a sentence built only from
the rows: the parser's plans have their own answers (`knowledge.catalog.queries`), and any other
SQL gets `generic_answer`. Shared by the pipeline (`knowledge.catalog.text_to_sql`) and its LLM
stages (`knowledge.catalog.text_to_sql_llm`), which both raise the same error with the same
examples of what can be asked (`EXAMPLES_HINT`).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from llmtutor.errors import LLMTutorError
from llmtutor.knowledge.catalog.readonly import QueryResult

Method = Literal["raw_sql", "parser", "llm_plan", "llm_sql"]


class QuestionNotUnderstoodError(LLMTutorError):
    """The question maps to no query over the course database."""


class SQLAnswer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    question: str
    sql: str
    columns: list[str]
    rows: list[list[Any]]
    answer: str
    method: Method
    attempts: int = 1  # SQL generations (1 + repairs) for method llm_sql
    language: Literal["en", "zh"]
    truncated: bool = False
    seconds: float = 0.0


EXAMPLES_HINT = (
    "ask about the course catalog or your quiz history, e.g. 'How many resources are listed in the "
    "RAG module?', 'Which notebooks mention Axolotl?', '我完成了多少次测验？'"
)


def generic_answer(result: QueryResult, lang: Literal["en", "zh"]) -> str:
    """An answer for SQL the parser did not write: what the rows say, nothing more."""
    zh = lang == "zh"
    if not result.rows:
        return "没有找到结果。" if zh else "No rows matched."
    if len(result.rows) == 1 and len(result.columns) == 1:
        value = result.rows[0][0]
        return f"结果是 {value}。" if zh else f"The answer is {value}."
    if len(result.rows) == 1:
        pairs = ", ".join(f"{c}: {v}" for c, v in zip(result.columns, result.rows[0], strict=True))
        return f"结果：{pairs}。" if zh else f"Result: {pairs}."
    shown = [str(r[0]) for r in result.rows[:8]]
    more = len(result.rows) - len(shown)
    sep = "、" if zh else ", "
    tail = (" 等" if zh else f" and {more} more") if more > 0 else ""
    return (
        f"共 {len(result.rows)} 条结果：{sep.join(shown)}{tail}。"
        if zh
        else f"{len(result.rows)} rows: {sep.join(shown)}{tail}."
    )
