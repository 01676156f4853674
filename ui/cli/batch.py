"""`--batch FILE.jsonl` input shared by `plan`, `search` and `sql`: one JSON object per line."""

from __future__ import annotations

import json
from pathlib import Path

from llmtutor.errors import LLMTutorError


def read_jsonl_field(path: Path, field: str) -> list[str]:
    """The `field` of each non-blank line, as text; a bad line is an error naming its number."""
    example = json.dumps({field: "..."})
    if not path.is_file():
        raise LLMTutorError(
            f"file not found: {path}", f"give a JSONL file with one {example} object per line"
        )
    values = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            values.append(str(json.loads(line)[field]))
        except (json.JSONDecodeError, KeyError, TypeError):  # not JSON, no such key, not an object
            raise LLMTutorError(
                f"{path}:{number}: not a JSON object with a {field!r} field",
                f"fix that line, e.g. {example}",
            ) from None
    return values
