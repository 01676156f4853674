"""Text-to-SQL execution accuracy and latency: plain prompting vs the project's pipeline, same run.

    python benchmarks/text_to_sql.py                 # every row; LLM rows use the embedded SmolLM2-135M
    python benchmarks/text_to_sql.py --rows parser   # no model needed (seconds)
    python benchmarks/text_to_sql.py --compile       # re-run the DSPy optimizers, save the program

Items: every row runs on the dev set's test split (`knowledge/course/sql_dev.jsonl`,
split=test: 39 items, English and Chinese, catalog and quiz-history questions); the DSPy
optimizers only see the train split (39 others). "parser (all)" adds the train split and the
held-out sets (`sql_holdout.jsonl`, 32 items written after the parser; `sql_holdout2.jsonl`,
24 items written last) - no model needed. Metric: execution match against hand-written
gold SQL (see `llmtutor.knowledge.catalog.text_to_sql_eval`). "valid" = the SQL passed the guard and ran.
Latency is per question, after the model server is up (first-call prompt processing of the
~3k-token schema is included in the LLM rows' p95, as a learner would see it).

Rows:
* parser: the rule parser + templates (the pipeline on the default model: no LLM call).
* plain: the LLM writes SQL from the schema + 3 examples, JSON-constrained {"sql"}, one shot.
* plain+repair: the same with up to two repairs fed the guard's/SQLite's error message.
* intent-llm: the LLM picks the intent (enum), slots from catalog mentions (no parser).
* dspy: DSPy Predict(CourseSQL), schema-constrained JSON adapter, no demos.
* dspy-labeled / dspy-bootstrap: compiled with LabeledFewShot(k=6) / BootstrapFewShot(6).

Measured (2 CPU cores, SmolLM2-135M-Instruct Q4_1 via llama.cpp): see the table in the
README section "Course database"; the numbers are printed by this script.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LLM_ROWS = ("plain", "plain+repair", "intent-llm", "dspy", "dspy-labeled", "dspy-bootstrap")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", default="parser," + ",".join(LLM_ROWS))
    ap.add_argument("--compile", action="store_true", help="re-run the DSPy optimizers and save the program")
    ap.add_argument("--limit", type=int, default=0, help="evaluate only the first N items (smoke runs)")
    ap.add_argument("--json", type=Path, help="also write per-item results here")
    args = ap.parse_args()

    from llmtutor.knowledge.catalog.readonly import QueryResult
    from llmtutor.knowledge.catalog.text_to_sql import TextToSQL
    from llmtutor.knowledge.catalog.text_to_sql_eval import DEV_SET, evaluate, load_dev_set, seed_learner_rows
    from llmtutor.knowledge.catalog.text_to_sql_llm import ChatSQLWriter, IntentPicker

    rows = [r.strip() for r in args.rows.split(",") if r.strip()]
    db = seed_learner_rows(Path(tempfile.mkdtemp(prefix="t2sql-")) / "course.sqlite")
    items = load_dev_set(split="test")
    train = load_dev_set(split="train")
    everything = [
        *load_dev_set(),
        *load_dev_set(DEV_SET.with_name("sql_holdout.jsonl")),
        *load_dev_set(DEV_SET.with_name("sql_holdout2.jsonl")),
    ]
    if args.limit:
        items = items[: args.limit]
    base = TextToSQL(db)
    reports = []

    def predictor(pipe: TextToSQL):
        def predict(question: str):
            answer = pipe.ask(question)
            return answer.sql, QueryResult(columns=answer.columns, rows=answer.rows)

        return predict

    def run(name: str, pipe: TextToSQL, on=None) -> None:
        on = on or items
        print(f"[{name}] {len(on)} items …", file=sys.stderr, flush=True)
        report = evaluate(
            name,
            predictor(pipe),
            on,
            db,
            progress=lambda i, n: print(f"  {i}/{n}", end="\r", file=sys.stderr, flush=True),
        )
        reports.append(report)
        print(f"  {name}: {report.accuracy:.1%}", file=sys.stderr, flush=True)
        if args.json:  # written after every row, so a long run that stops keeps what it measured
            args.json.write_text(
                json.dumps([r.model_dump() for r in reports], ensure_ascii=False, indent=1), "utf-8"
            )

    if "parser" in rows:
        run("parser", base)
        run("parser (all)", base, everything)
    needs_llm = [r for r in rows if r in LLM_ROWS]
    if needs_llm:
        from llmtutor.backends.llamacpp import LlamaCppBackend

        backend = LlamaCppBackend()
        llm = lambda: backend.chat_model(temperature=0.0, max_tokens=160)  # noqa: E731
        schema = base.schema_text
        if "plain" in rows:
            run("plain", TextToSQL(db, writer=ChatSQLWriter(llm), use_parser=False, max_repairs=0))
        if "plain+repair" in rows:
            run("plain+repair", TextToSQL(db, writer=ChatSQLWriter(llm), use_parser=False, max_repairs=2))
        if "intent-llm" in rows:
            run("intent-llm", TextToSQL(db, picker=IntentPicker(llm, base.catalog), use_parser=False))
        if any(r.startswith("dspy") for r in rows):
            from llmtutor.knowledge.catalog import text_to_sql_dspy as tsd

            lm = tsd.make_lm(backend.endpoint(), max_tokens=160)
            if "dspy" in rows:
                run("dspy", TextToSQL(db, writer=tsd.DSPySQLWriter(lm), use_parser=False, max_repairs=0))
            metric = _metric(base)
            pairs = [(i.question, i.sql) for i in train]
            for row, optimizer in (("dspy-labeled", "labeled"), ("dspy-bootstrap", "bootstrap")):
                if row not in rows:
                    continue
                path = (
                    tsd.PROGRAM_PATH
                    if optimizer == "bootstrap"
                    else tsd.PROGRAM_PATH.with_suffix(".labeled.json")
                )
                if args.compile or not path.exists():
                    print(f"[{row}] compiling on {len(pairs)} train pairs …", file=sys.stderr, flush=True)
                    tsd.save_program(tsd.compile_program(lm, pairs, schema, metric, optimizer), path)
                program = tsd.load_program(path)
                run(
                    row, TextToSQL(db, writer=tsd.DSPySQLWriter(lm, program), use_parser=False, max_repairs=0)
                )

    _print_table(reports)


def _metric(pipe):
    """Execution match of predicted SQL against gold SQL on the benchmark database."""
    from llmtutor.knowledge.catalog.readonly import run_readonly
    from llmtutor.knowledge.catalog.sql_guard import SQLError
    from llmtutor.knowledge.catalog.text_to_sql_eval import gold_is_ordered, results_match

    def metric(gold_sql: str, predicted_sql: str) -> bool:
        try:
            predicted, _ = pipe.run_sql(predicted_sql)
        except SQLError:
            return False
        return results_match(run_readonly(pipe.db_path, gold_sql), predicted, gold_is_ordered(gold_sql))

    return metric


def _print_table(reports) -> None:
    print(
        f"\n{'row':16} {'n':>4} {'exec acc':>9} {'valid SQL':>10} {'en':>6} {'zh':>6} {'p50 s':>7} {'p95 s':>7}"
    )
    for r in reports:
        valid = sum(i.error is None for i in r.items) / max(r.n, 1)
        en = [i for i in r.items if not any("\u4e00" <= c <= "\u9fff" for c in i.question)]
        zh = [i for i in r.items if i not in en]
        acc = lambda xs: sum(i.correct for i in xs) / len(xs) if xs else 0.0  # noqa: E731
        print(
            f"{r.name:16} {r.n:4d} {r.accuracy:9.1%} {valid:10.1%} {acc(en):6.0%} {acc(zh):6.0%} "
            f"{r.p50_s:7.3f} {r.p95_s:7.3f}"
        )


if __name__ == "__main__":
    main()
