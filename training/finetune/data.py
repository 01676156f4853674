"""Reading a fine-tuning dataset from disk, detecting its format, and validating every row.

Formats (one per file, detected from the fields of each row):

- alpaca:     {"instruction", "input"?, "output", "system"?}
- chat:       {"messages": [{"role", "content"}]} (OpenAI) or
              {"conversations": [{"from", "value"}]} (ShareGPT: human/gpt/system)
- text:       {"text"} (plain language modelling)
- preference: {"prompt", "chosen", "rejected"}; each a string or a list of chat messages

Every SFT format is converted to chat messages (`{"messages": [...]}`), and text stays
`{"text": ...}`, so the trainer renders everything through the base model's chat template.
Problems are reported per row ("line 17: 'output' is empty") in one `DatasetError`, so a
learner can fix a file in one pass instead of one error per run.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from llmtutor.errors import ToolInputError

Format = Literal["alpaca", "chat", "text", "preference"]
FORMATS: tuple[str, ...] = ("alpaca", "chat", "text", "preference")
SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")
MAX_SHOWN = 10  # problems listed in one error message

_SHAREGPT_ROLES = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "system": "system",
    "chatgpt": "assistant",
    "bing": "assistant",
    "bard": "assistant",
}
_ROLES = ("system", "user", "assistant")
_FORMAT_HINT = (
    "use one of: Alpaca {instruction, input, output}; chat {messages: [{role, content}]} or "
    "ShareGPT {conversations: [{from, value}]}; text {text}; preference {prompt, chosen, rejected}"
)


class DatasetError(ToolInputError):
    """The dataset cannot be used for training; the message lists the rows at fault."""


@dataclass
class LoadedDataset:
    """Rows in canonical form: `{"messages": [...]}`, `{"text": ...}` or `{"prompt", "chosen", "rejected"}`."""

    format: Format
    source_format: str  # what the file used: alpaca, openai-messages, sharegpt, text, preference
    rows: list[dict[str, Any]]
    path: Path
    notes: list[str] = field(default_factory=list)


# ----- reading ------------------------------------------------------------------
def read_records(path: Path) -> tuple[list[tuple[str, Any]], list[str]]:
    """(label, record) pairs where label is "line N" (JSONL) or "row N", plus parse problems."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise DatasetError(
            f"dataset not found: {path}", "pass the path of a .jsonl, .json, .csv or .parquet file"
        )
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise DatasetError(
            f"unsupported dataset file type {suffix or '(none)'}: {path.name}",
            "save it as .jsonl (one JSON object per line), .json, .csv or .parquet",
        )
    try:
        if suffix == ".jsonl":
            return _read_jsonl(path)
        if suffix == ".json":
            return _read_json(path), []
        if suffix == ".csv":
            with path.open(encoding="utf-8-sig", newline="") as handle:
                return [(f"row {i}", dict(row)) for i, row in enumerate(csv.DictReader(handle), 1)], []
        import pyarrow.parquet as pq

        return [(f"row {i}", row) for i, row in enumerate(pq.read_table(path).to_pylist(), 1)], []
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DatasetError(
            f"cannot read {path.name}: {exc}", "check the file is UTF-8 text and not corrupted"
        ) from None
    except Exception as exc:  # pyarrow raises its own types for corrupt files
        if type(exc).__module__.startswith("pyarrow"):
            raise DatasetError(f"cannot read {path.name}: {exc}", "re-export the Parquet file") from None
        raise


def _read_jsonl(path: Path) -> tuple[list[tuple[str, Any]], list[str]]:
    records, problems = [], []
    with path.open(encoding="utf-8-sig") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                records.append((f"line {number}", json.loads(line)))
            except json.JSONDecodeError as exc:
                problems.append(f"line {number}: not valid JSON ({exc.msg} at column {exc.colno})")
    return records, problems


def _read_json(path: Path) -> list[tuple[str, Any]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as exc:
        raise DatasetError(
            f"{path.name} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
            "fix the JSON, or use JSONL (one object per line) to get per-row errors",
        ) from None
    if isinstance(data, dict):  # {"data": [...]} / {"train": [...]} wrappers are common
        lists = [v for v in data.values() if isinstance(v, list)]
        data = lists[0] if len(lists) == 1 else [data]
    if not isinstance(data, list):
        raise DatasetError(f"{path.name} must hold a list of objects", "write [{...}, {...}] or use JSONL")
    return [(f"row {i}", row) for i, row in enumerate(data, 1)]


# ----- format detection -----------------------------------------------------------
def row_format(record: Any) -> str | None:
    """The format a single record looks like (sharegpt is reported separately), or None."""
    if not isinstance(record, dict):
        return None
    keys = set(record)
    if {"chosen", "rejected"} <= keys:
        return "preference"
    if "messages" in keys:
        return "chat"
    if "conversations" in keys:
        return "sharegpt"
    if "instruction" in keys or ({"output", "input"} & keys and "text" not in keys):
        return "alpaca"
    if "text" in keys:
        return "text"
    return None


def detect_format(records: list[tuple[str, Any]]) -> tuple[Format, str]:
    """(format, source_format) for a file; `DatasetError` when unknown or mixed."""
    if not records:
        raise DatasetError(
            "the dataset is empty", "add at least a few rows (one JSON object per line for .jsonl)"
        )
    seen: dict[str, list[str]] = {}  # format -> labels of its rows
    sources: set[str] = set()
    fields: set[str] = set()
    for _label, record in records:
        kind = row_format(record)
        if kind is None:
            if isinstance(record, dict):
                fields |= set(record)
            continue
        sources.add(kind)
        seen.setdefault("chat" if kind == "sharegpt" else kind, []).append(_label)
    if not seen:
        shown = ", ".join(sorted(fields)[:12]) or "no fields (rows are not JSON objects)"
        raise DatasetError(f"unknown dataset format: fields seen: {shown}", _FORMAT_HINT)
    if len(seen) > 1:
        parts = [f"{k} ({len(v)} rows, first at {v[0]})" for k, v in seen.items()]
        raise DatasetError(
            "mixed formats in one file: " + "; ".join(parts),
            "split the file, or convert every row to one format",
        )
    kinds = list(seen)
    source = "openai+sharegpt" if len(sources) > 1 else {"chat": "openai-messages"}.get(*sources, *sources)
    return kinds[0], source  # type: ignore[return-value]


# ----- validation and conversion ------------------------------------------------------
def _text(
    record: dict[str, Any], key: str, label: str, problems: list[str], required: bool = True
) -> str | None:
    value = record.get(key)
    if value is None:
        if required:
            problems.append(f"{label}: missing '{key}'")
        return None
    if not isinstance(value, str):
        problems.append(f"{label}: '{key}' must be a string, got {type(value).__name__}")
        return None
    if required and not value.strip():
        problems.append(f"{label}: '{key}' is empty")
        return None
    return value


def _messages(
    value: Any, label: str, key: str, problems: list[str], sharegpt: bool = False
) -> list[dict] | None:
    if not isinstance(value, list) or not value:
        problems.append(f"{label}: '{key}' must be a non-empty list of messages")
        return None
    role_key, content_key = ("from", "value") if sharegpt else ("role", "content")
    out: list[dict[str, str]] = []
    for i, message in enumerate(value):
        where = f"{label}: {key}[{i}]"
        if not isinstance(message, dict):
            problems.append(f"{where} must be an object with '{role_key}' and '{content_key}'")
            return None
        raw_role, content = message.get(role_key), message.get(content_key)
        role = _SHAREGPT_ROLES.get(str(raw_role).lower()) if sharegpt else raw_role
        if role not in _ROLES:
            allowed = "human, gpt, system" if sharegpt else "system, user, assistant"
            problems.append(f"{where}: unknown {role_key} {raw_role!r} (use {allowed})")
            return None
        if not isinstance(content, str):
            problems.append(f"{where}: '{content_key}' must be a string, got {type(content).__name__}")
            return None
        if not content.strip():
            problems.append(f"{where}: '{content_key}' is empty")
            return None
        out.append({"role": role, "content": content})
    return out


def _check_chat(messages: list[dict], label: str, problems: list[str], need_assistant: bool = True) -> bool:
    roles = [m["role"] for m in messages]
    if "system" in roles[1:]:
        problems.append(f"{label}: a system message may only come first")
        return False
    if need_assistant and "assistant" not in roles:
        problems.append(f"{label}: no assistant message to learn from")
        return False
    if "user" not in roles:
        problems.append(f"{label}: no user message")
        return False
    return True


def _convert_sft(fmt: str, record: dict[str, Any], label: str, problems: list[str]) -> dict[str, Any] | None:
    if fmt == "text":
        text = _text(record, "text", label, problems)
        return None if text is None else {"text": text}
    if fmt == "alpaca":
        before = len(problems)
        instruction = _text(record, "instruction", label, problems)
        extra = _text(record, "input", label, problems, required=False)
        output = _text(record, "output", label, problems)
        system = _text(record, "system", label, problems, required=False)
        if len(problems) > before or instruction is None or output is None:
            return None
        user = instruction if not (extra or "").strip() else f"{instruction}\n\n{extra}"
        messages = ([{"role": "system", "content": system}] if (system or "").strip() else []) + [
            {"role": "user", "content": user},
            {"role": "assistant", "content": output},
        ]
        return {"messages": messages}
    sharegpt = "messages" not in record
    key = "conversations" if sharegpt else "messages"
    messages = _messages(record.get(key), label, key, problems, sharegpt=sharegpt)
    if messages is None or not _check_chat(messages, label, problems):
        return None
    return {"messages": messages}


def _side(value: Any, label: str, key: str, problems: list[str]) -> str | list[dict] | None:
    if isinstance(value, str):
        if not value.strip():
            problems.append(f"{label}: '{key}' is empty")
            return None
        return value
    if isinstance(value, list):
        return _messages(value, label, key, problems)
    problems.append(
        f"{label}: '{key}' must be a string or a list of messages, got {type(value).__name__}"
        if value is not None
        else f"{label}: missing '{key}'"
    )
    return None


def _convert_preference(record: dict[str, Any], label: str, problems: list[str]) -> dict[str, Any] | None:
    before = len(problems)
    sides = {key: _side(record.get(key), label, key, problems) for key in ("prompt", "chosen", "rejected")}
    if len(problems) > before:
        return None
    prompt, chosen, rejected = sides["prompt"], sides["chosen"], sides["rejected"]
    if chosen == rejected:
        problems.append(f"{label}: 'chosen' and 'rejected' are identical")
        return None
    # Canonical form: prompt as messages ending on a user turn, chosen/rejected as one assistant turn each,
    # which is what TRL's conversational preference path expects.
    prompt_msgs = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
    if not _check_chat(prompt_msgs, label, problems, need_assistant=False):
        return None
    if prompt_msgs[-1]["role"] != "user":
        problems.append(f"{label}: 'prompt' must end with a user message")
        return None
    out: dict[str, Any] = {"prompt": prompt_msgs}
    for key, side in (("chosen", chosen), ("rejected", rejected)):
        msgs = [{"role": "assistant", "content": side}] if isinstance(side, str) else side
        if [m["role"] for m in msgs] != ["assistant"]:
            problems.append(f"{label}: '{key}' must be a single assistant message")
            return None
        out[key] = msgs
    return out


def raise_problems(problems: list[str], path: Path) -> None:
    if not problems:
        return
    shown = problems[:MAX_SHOWN]
    more = f"\n… and {len(problems) - MAX_SHOWN} more" if len(problems) > MAX_SHOWN else ""
    raise DatasetError(
        f"{len(problems)} problem(s) in {Path(path).name}:\n" + "\n".join(shown) + more,
        "fix or remove those rows and run again",
    )


def load_dataset_rows(path: Path, dataset_format: str = "auto") -> LoadedDataset:
    """Read, detect, validate and convert a dataset file; `DatasetError` lists every bad row (first 10 shown)."""
    path = Path(path).expanduser()
    records, problems = read_records(path)
    if not records and not problems:
        raise DatasetError(
            f"the dataset {path.name} is empty", "add rows, one JSON object per line for .jsonl"
        )
    if not records:
        raise_problems(problems, path)
    detected, source = detect_format(records)
    if dataset_format not in ("auto", detected):
        raise DatasetError(
            f"{path.name} looks like {detected} data, not {dataset_format}",
            f"set dataset_format to 'auto' or '{detected}', or convert the file",
        )
    rows: list[dict[str, Any]] = []
    for label, record in records:
        if not isinstance(record, dict):
            problems.append(f"{label}: not a JSON object (got {type(record).__name__})")
            continue
        converted = (
            _convert_preference(record, label, problems)
            if detected == "preference"
            else _convert_sft(detected, record, label, problems)
        )
        if converted is not None:
            rows.append(converted)
    raise_problems(problems, path)
    shown = detected if source == detected else f"{detected} ({source})"
    notes = [f"dataset {path.name}: {len(rows)} rows, format {shown}"]
    return LoadedDataset(format=detected, source_format=source, rows=rows, path=path, notes=notes)
