"""Short-answer grading against a careful teacher: agreement on a hand-labelled set.

    python benchmarks/quiz_grading.py [--set knowledge/quiz/grading_dev.jsonl] [--show]

Each line {"question_id", "answer", "label": correct|partial|wrong} is a learner's answer to a
short question of the course quiz bank (40 answers, 20 questions, English and Chinese, 14 of
the right ones worded differently from the reference, 10 wrong ones that reuse its key words).
The grader's verdict (knowledge/quiz/grading.py: key-term coverage and reference recall) is
compared with the label; the confusion matrix shows where they part. Target ≥ 90%.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", type=Path, default=REPO / "knowledge" / "quiz" / "grading_dev.jsonl")
    parser.add_argument("--show", action="store_true", help="list every disagreement")
    args = parser.parse_args()
    from llmtutor.knowledge.quiz.bank import default_bank
    from llmtutor.knowledge.quiz.grading import grade

    bank = default_bank()
    index = {
        q.id: q for m in bank.catalog.modules() for lang in ("en", "zh") for q in bank.questions(m.id, lang)
    }
    rows = [json.loads(line) for line in args.set.read_text(encoding="utf-8").splitlines() if line.strip()]
    confusion: Counter[tuple[str, str]] = Counter()
    for row in rows:
        verdict = grade(index[row["question_id"]], row["answer"]).verdict
        confusion[(row["label"], verdict)] += 1
        if args.show and verdict != row["label"]:
            print(f"- {row['id']} teacher {row['label']}, grader {verdict}: {row['answer'][:90]}")
    agree = sum(n for (label, verdict), n in confusion.items() if label == verdict)
    print(f"\nagreement {agree}/{len(rows)} = {agree / len(rows):.0%}\n")
    labels = ("correct", "partial", "wrong")
    print("| teacher \\ grader | " + " | ".join(labels) + " |\n|---|---:|---:|---:|")
    for label in labels:
        print(f"| {label} | " + " | ".join(str(confusion[(label, v)]) for v in labels) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
