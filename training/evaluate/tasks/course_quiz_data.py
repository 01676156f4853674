"""Loader of course_quiz.jsonl for lm-eval's `custom_dataset` (see course_quiz.yaml).

lm-eval imports this file by path; it is not part of the llmtutor package namespace."""

from __future__ import annotations

import json
from pathlib import Path

DATA = Path(__file__).with_name("course_quiz.jsonl")


def load(**_metadata):  # lm-eval passes the task's metadata (version, ...) as keywords
    import datasets

    rows = [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines() if line.strip()]
    # Built in memory: nothing is written to (or looked up in) the datasets cache.
    return datasets.DatasetDict({"test": datasets.Dataset.from_list(rows)})
