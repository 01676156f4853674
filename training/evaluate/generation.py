"""Greedy answers to the reference prompts, through each model's own chat template."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from llmtutor.errors import ToolInputError
from llmtutor.text import CJK
from llmtutor.training.evaluate.config import DEFAULT_REFERENCES
from llmtutor.training.progress import ProgressCallback, check_cancelled, emit


class Reference(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: str = ""
    prompt: str
    reference: str
    language: Literal["en", "zh"] | None = None

    def lang(self) -> str:
        return self.language or ("zh" if CJK.search(self.reference) else "en")


def load_references(path: Path | None, limit: int | None = None) -> list[Reference]:
    """JSONL, one {"prompt", "reference"[, "language", "id"]} per line; None = the bundled set."""
    path = Path(path or DEFAULT_REFERENCES).expanduser()
    items: list[Reference] = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            item = Reference.model_validate(json.loads(line))
        except (ValueError, ValidationError) as exc:
            raise ToolInputError(
                f"{path.name} line {n} is not a reference item: {str(exc).splitlines()[0]}",
                'write one {"prompt": ..., "reference": ...} JSON object per line',
            ) from None
        items.append(item.model_copy(update={"id": item.id or f"{path.stem}-{n}"}))
    if not items:
        raise ToolInputError(
            f"{path} has no reference items", 'add lines like {"prompt": ..., "reference": ...}'
        )
    return items[:limit] if limit else items


def chat_prompt(tokenizer: Any, prompt: str) -> str:
    """The prompt as the model was tuned to see it; raw text for base models without a template."""
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
        )
    return prompt


def generate_answers(
    model: Any,
    tokenizer: Any,
    prompts: list[str],
    max_new_tokens: int,
    batch_size: int = 4,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
    label: str = "",
) -> list[str]:
    import torch

    device = next(model.parameters()).device
    answers: list[str] = []
    old_side = tokenizer.padding_side
    tokenizer.padding_side = "left"  # decoder-only batches: the new tokens must line up at the end
    try:
        for start in range(0, len(prompts), batch_size):
            check_cancelled(cancel)
            texts = [chat_prompt(tokenizer, p) for p in prompts[start : start + batch_size]]
            # the templates already contain BOS/markers: no second set of special tokens
            batch = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
            with torch.no_grad():
                out = model.generate(
                    **batch,
                    do_sample=False,
                    max_new_tokens=max_new_tokens,
                    pad_token_id=tokenizer.pad_token_id,
                )
            new = out[:, batch["input_ids"].shape[1] :]
            # rstrip U+FFFD: a length cut can fall inside a multi-token (e.g. Chinese) character
            answers += [
                t.strip().rstrip("\ufffd") for t in tokenizer.batch_decode(new, skip_special_tokens=True)
            ]
            emit(progress, "eval", f"{label}: generating answers", step=len(answers), total=len(prompts))
    finally:
        tokenizer.padding_side = old_side  # the tokenizer is shared through the model cache
    return answers
