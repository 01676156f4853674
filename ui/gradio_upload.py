"""Dataset upload: a JSONL/JSON/CSV/Parquet file dropped in the browser is saved in the learner's
space (`data/NAME`), checked by the fine-tuning validator the CLI and `finetune_model` use
(training/finetune/data.py), and previewed row by row: the format detected, the first rows, every
bad row named. `finetune_model` then takes it by that path ("fine-tune on data/NAME")."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmtutor.errors import LLMTutorError

if TYPE_CHECKING:
    from llmtutor.ui.gradio_session import Session

MAX_BYTES = 200 * 1024**2
PREVIEW_ROWS = 5
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(filename: str) -> str:
    """The file's own name made a plain name (letters, digits, '.', '_', '-'), its suffix kept."""
    from llmtutor.training.finetune.data import SUFFIXES, DatasetError

    path = Path(filename)
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise DatasetError(
            f"unsupported dataset file type {suffix or '(none)'}: {path.name[:80]}",
            "upload a .jsonl (one JSON object per line), .json, .csv or .parquet file",
        )
    stem = _UNSAFE.sub("_", path.stem).strip("._-")[: 80 - len(suffix)] or "dataset"
    return stem + suffix


def save_upload(source: str | Path, space: Path) -> Path:
    """A copy of the uploaded file in the learner's `data/` folder (same name: replaced)."""
    from llmtutor.training.finetune.data import DatasetError

    source = Path(source)
    if source.stat().st_size > MAX_BYTES:
        raise DatasetError(
            f"{source.name[:80]} is {source.stat().st_size / 1024**2:.0f} MB, over the {MAX_BYTES // 1024**2} MB "
            "upload limit",
            "upload a sample of it, or put the file in an allowed folder (LLMTUTOR_ALLOWED_DIRS)",
        )
    target = Path(space) / "data" / safe_name(source.name)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    return target


def _cell(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    text = " ".join(text.split()).replace("|", "\\|").replace("<", "&lt;")
    return text if len(text) <= 120 else text[:120] + " …"


def inspect_dataset(path: Path, shown_as: str) -> tuple[str, bool]:
    """(the Markdown report, usable): the format detected, a preview of the first rows and every
    bad row the validator found."""
    from llmtutor.training.finetune.data import DatasetError, detect_format, load_dataset_rows, read_records

    lines = [f"**`{shown_as}`**"]
    try:
        records, _ = read_records(path)
    except DatasetError as exc:
        return "\n\n".join([*lines, f"❌ {exc.message}", f"_{exc.hint}_"]), False
    if records:
        fmt, source = detect_format(records)
        lines.append(f"Format detected: **{fmt}**" + (f" ({source})" if source != fmt else ""))
        keys = list(dict.fromkeys(k for _, r in records[:PREVIEW_ROWS] if isinstance(r, dict) for k in r))[:4]
        if keys:
            table = ["| row | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
            for label, record in records[:PREVIEW_ROWS]:
                cells = [
                    _cell(record.get(k, "")) if isinstance(record, dict) else _cell(record) for k in keys
                ]
                table.append(f"| {label} | " + " | ".join(cells) + " |")
            lines.append("\n".join(table))
    try:
        loaded = load_dataset_rows(path)
    except DatasetError as exc:
        head, *problems = exc.message.splitlines()
        listed = "\n".join(f"- {p}" for p in problems) if problems else f"- {head}"
        lines += [
            f"❌ **{head}**" if problems else "❌ **This file cannot be used yet:**",
            listed,
            f"_{exc.hint}_",
        ]
        return "\n\n".join(lines), False
    lines.append(
        f"✅ **{len(loaded.rows)} rows, all valid.** Fine-tune on it from the chat: "
        f"“Fine-tune the model on {shown_as} for 20 steps”."
    )
    return "\n\n".join(lines), True


def upload_tab(session: Session) -> dict[str, Any]:
    """The Data tab's components and events; returns the button that sends the dataset to the
    chat and the state holding its path (the app wires them to the chat box)."""
    import gradio as gr

    from llmtutor.paths import learner_space

    @session.with_request
    def receive(file: str | None, request=None):
        if not file:
            return "", None, gr.update(visible=False)
        try:
            space = learner_space(session.tutor.settings.workspace, session.learner(request).id)
            saved = save_upload(file, space)
            shown_as = saved.relative_to(space).as_posix()
            report, usable = inspect_dataset(saved, shown_as)
        except LLMTutorError as exc:
            return f"❌ {exc.message}\n\n_{exc.hint or ''}_", None, gr.update(visible=False)
        return report, shown_as if usable else None, gr.update(visible=usable)

    gr.Markdown(
        "Drop a **JSONL, JSON, CSV or Parquet** file of training rows: Alpaca "
        "`{instruction, input, output}`, chat `{messages: [{role, content}]}` or ShareGPT, plain "
        "`{text}`, or preference `{prompt, chosen, rejected}`. It is saved in your space under `data/` "
        "and checked row by row, as fine-tuning will check it."
    )
    upload = gr.File(
        label="Dataset", file_types=[".jsonl", ".json", ".csv", ".parquet"], elem_id="dataset-upload"
    )
    report = gr.Markdown(label="Dataset check", elem_id="dataset-report")
    dataset_path = gr.State(None)
    use_btn = gr.Button("Fine-tune on it in the chat", visible=False, elem_id="dataset-use")
    upload.upload(receive, upload, [report, dataset_path, use_btn], api_name="upload_dataset")
    return {"use": use_btn, "path": dataset_path}
