"""Execution accuracy of text-to-SQL on the course dev set (used by tests, the benchmark and
the DSPy compiler's metric).

The dev set (`knowledge/course/sql_dev.jsonl`) holds {"id", "question", "sql", "lang",
"domain", "split"} objects; "sql" is hand-written gold SQL. Gold and predicted SQL run on the
same database - the bundled catalog plus a fixed quiz history (`seed_learner_rows`) - and a
prediction is correct when its result matches the gold result:

* the same number of rows, compared as multisets (as ordered lists when the gold SQL has
  ORDER BY);
* every gold column appears among the predicted columns (compared by values; extra
  predicted columns are allowed, so "title, title_zh" answers "title");
* numbers compared after rounding to 3 decimals.
"""

from __future__ import annotations

import json
import statistics
import time
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from llmtutor.errors import LLMTutorError
from llmtutor.knowledge import COURSE_DIR
from llmtutor.knowledge.catalog.course_db import ensure_course_db
from llmtutor.knowledge.catalog.learner import record_quiz_attempt
from llmtutor.knowledge.catalog.readonly import QueryResult, run_readonly

DEV_SET = COURSE_DIR / "sql_dev.jsonl"

# (days ago, module id, topic, question, answer, correct, score): a small, varied quiz history.
SEED_ATTEMPTS: tuple[tuple[float, str | None, str, str, str, bool, float], ...] = (
    (
        40.0,
        "engineer.deployment",
        "vLLM",
        "What does vLLM's PagedAttention manage?",
        "the KV cache",
        True,
        1.0,
    ),
    (
        20.0,
        "scientist.architecture",
        "tokenization",
        "What is a BPE merge?",
        "a vocabulary entry",
        False,
        0.0,
    ),
    (12.0, "scientist.architecture", "attention", "What does attention compute?", "weighted sums", True, 1.0),
    (10.0, "fundamentals.math", "linear algebra", "What is an eigenvector?", "a direction kept", True, 1.0),
    (
        5.0,
        "scientist.sft",
        "full fine-tuning",
        "Which weights change in full fine-tuning?",
        "only the head",
        False,
        0.0,
    ),
    (4.0, "scientist.sft", "QLoRA", "What does QLoRA quantize?", "the frozen base model", True, 1.0),
    (3.0, "scientist.sft", "LoRA", "What is the LoRA rank?", "the inner dimension", True, 1.0),
    (2.5, "engineer.rag", "evaluation", "Name two RAG evaluation axes", "retrieval only", False, 0.5),
    (1.5, "engineer.rag", "retrievers", "What does a retriever return?", "relevant chunks", True, 1.0),
    (0.2, "scientist.quantization", "GPTQ", "Is GPTQ data-free?", "yes", False, 0.0),
    (0.1, "scientist.quantization", "GGUF", "What does a GGUF file hold?", "weights and metadata", True, 1.0),
    (0.05, None, "general", "What does LLM stand for?", "large language model", True, 1.0),
)


class DevItem(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str
    question: str
    sql: str
    lang: str
    domain: str
    split: str


class ItemResult(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str
    question: str
    correct: bool
    sql: str | None
    error: str | None
    seconds: float


class EvalReport(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    n: int
    accuracy: float
    p50_s: float
    p95_s: float
    items: list[ItemResult]

    def by(self, ids: set[str]) -> float:
        chosen = [r for r in self.items if r.id in ids]
        return sum(r.correct for r in chosen) / len(chosen) if chosen else 0.0


def load_dev_set(path: Path | None = None, split: str | None = None) -> list[DevItem]:
    items = [
        DevItem.model_validate_json(line)
        for line in Path(path or DEV_SET).read_text("utf-8").splitlines()
        if line.strip()
    ]
    return [i for i in items if split is None or i.split == split]


def seed_learner_rows(db_path: Path, now: datetime | None = None) -> Path:
    """Build the database and record `SEED_ATTEMPTS` (through the learner write API)."""
    ensure_course_db(db_path)
    now = now or datetime.now(UTC)
    for days, module, topic, question, answer, correct, score in SEED_ATTEMPTS:
        record_quiz_attempt(
            db_path,
            question=question,
            answer=answer,
            correct=correct,
            score=score,
            module_id=module,
            topic=topic,
            taken_at=now - timedelta(days=days),
        )
    return Path(db_path)


def _norm(value: Any) -> Any:
    if isinstance(value, float):
        value = round(value, 3)
        return int(value) if value.is_integer() else value
    return value


def results_match(gold: QueryResult, pred: QueryResult, ordered: bool) -> bool:
    if len(gold.rows) != len(pred.rows) or not gold.columns:
        return False
    gold_cols = [[_norm(r[i]) for r in gold.rows] for i in range(len(gold.columns))]
    pred_cols = [[_norm(r[i]) for r in pred.rows] for i in range(len(pred.columns))]
    # Map every gold column to a distinct predicted column with the same values.
    choices: list[list[int]] = []
    for g in gold_cols:
        same = [j for j, p in enumerate(pred_cols) if (p == g if ordered else Counter(p) == Counter(g))]
        if not same:
            return False
        choices.append(same)
    return _rows_agree(gold_cols, pred_cols, choices, ordered)


def _rows_agree(
    gold_cols: list[list[Any]],
    pred_cols: list[list[Any]],
    choices: list[list[int]],
    ordered: bool,
    chosen: tuple[int, ...] = (),
) -> bool:
    """Try assignments of gold->predicted columns (tiny: a few columns each) until rows agree too."""
    if len(chosen) == len(choices):
        gold_rows = list(zip(*gold_cols, strict=True))
        pred_rows = list(zip(*(pred_cols[j] for j in chosen), strict=True))
        return gold_rows == pred_rows if ordered else Counter(gold_rows) == Counter(pred_rows)
    return any(
        _rows_agree(gold_cols, pred_cols, choices, ordered, (*chosen, j))
        for j in choices[len(chosen)]
        if j not in chosen
    )


def gold_is_ordered(sql: str) -> bool:
    return "order by" in sql.lower()


Predictor = Callable[[str], tuple[str, QueryResult]]  # question -> (sql, result); raises when it fails


def evaluate(
    name: str,
    predict: Predictor,
    items: Sequence[DevItem],
    db_path: Path,
    progress: Callable[[int, int], None] | None = None,
) -> EvalReport:
    results: list[ItemResult] = []
    for index, item in enumerate(items, 1):
        gold = run_readonly(db_path, item.sql)
        start = time.perf_counter()
        sql, error, correct = None, None, False
        try:
            sql, pred = predict(item.question)
            correct = results_match(gold, pred, gold_is_ordered(item.sql))
        except LLMTutorError as exc:
            error = str(exc)[:300]
        seconds = time.perf_counter() - start
        results.append(
            ItemResult(
                id=item.id,
                question=item.question,
                correct=correct,
                sql=sql,
                error=error,
                seconds=round(seconds, 4),
            )
        )
        if progress:
            progress(index, len(items))
    times = sorted(r.seconds for r in results) or [0.0]
    return EvalReport(
        name=name,
        n=len(results),
        accuracy=sum(r.correct for r in results) / max(len(results), 1),
        p50_s=statistics.median(times),
        p95_s=times[min(len(times) - 1, int(0.95 * len(times)))],
        items=results,
    )


def write_jsonl(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
