"""Short-answer grading against a careful teacher: agreement on a hand-labelled set, before and after.

    python benchmarks/quiz_grading.py [--set knowledge/quiz/grading_dev.jsonl] [--show]

Each line {"question_id", "answer", "label": correct|partial|wrong} is a learner's answer to a
short question of the course quiz bank (40 answers, 20 questions, English and Chinese, 14 of
the right ones worded differently from the reference, 10 wrong ones that reuse its key words).
Three graders run on the same answers (knowledge/quiz/grading.py):
- before: the earlier lexical grader (key-term coverage and reference word recall);
- after: the rubric grader (points covered by content or MiniLM meaning, misconceptions);
- after, no model: the rubric grader as it runs when the embedding model cannot load.
For each: agreement with the teacher, the confusion matrix, and milliseconds per answer (the
first answer of the run, which loads the model, is timed apart). Target ≥ 90%.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LABELS = ("correct", "partial", "wrong")


def run(name: str, grader: Callable, rows: list[dict], index: dict, show: bool) -> None:
    confusion: Counter[tuple[str, str]] = Counter()
    start = time.perf_counter()
    grader(index[rows[0]["question_id"]], rows[0]["answer"])  # loads what the grader loads
    first = time.perf_counter() - start
    start = time.perf_counter()
    disagreements = []
    for row in rows:
        result = grader(index[row["question_id"]], row["answer"])
        confusion[(row["label"], result.verdict)] += 1
        if result.verdict != row["label"]:
            reason = "; ".join(result.misconceptions[:1]) if hasattr(result, "misconceptions") else ""
            disagreements.append(
                f"- {row['id']} teacher {row['label']}, grader {result.verdict} ({result.score:.2f})"
                f": {row['answer'][:90]}" + (f"\n    {reason[:160]}" if reason else "")
            )
    per_answer = (time.perf_counter() - start) / len(rows) * 1000
    agree = sum(n for (label, verdict), n in confusion.items() if label == verdict)
    print(f"\n## {name}: agreement {agree}/{len(rows)} = {agree / len(rows):.0%}")
    print(f"{per_answer:.1f} ms/answer (first answer, with loading: {first * 1000:.0f} ms)\n")
    print("| teacher \\ grader | " + " | ".join(LABELS) + " |\n|---|---:|---:|---:|")
    for label in LABELS:
        print(f"| {label} | " + " | ".join(str(confusion[(label, v)]) for v in LABELS) + " |")
    if show and disagreements:
        print("\n" + "\n".join(disagreements))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", type=Path, default=REPO / "knowledge" / "quiz" / "grading_dev.jsonl")
    parser.add_argument("--show", action="store_true", help="list every disagreement")
    args = parser.parse_args()
    from llmtutor.knowledge.quiz import grading
    from llmtutor.knowledge.quiz.bank import default_bank

    bank = default_bank()
    index = {
        q.id: q for m in bank.catalog.modules() for lang in ("en", "zh") for q in bank.questions(m.id, lang)
    }
    rows = [json.loads(line) for line in args.set.read_text(encoding="utf-8").splitlines() if line.strip()]
    run("before (lexical)", grading.grade_short_lexical, rows, index, args.show)
    run("after (rubric + MiniLM)", grading.grade_short, rows, index, args.show)
    if grading.sentence_vectors(["probe"]) is None:
        print("\n(the embedding model did not load: 'after' ran on content evidence only)")
    grading.disable_embeddings()
    run("after, no embedding model (fallback)", grading.grade_short, rows, index, args.show)
    return 0


if __name__ == "__main__":
    sys.exit(main())
