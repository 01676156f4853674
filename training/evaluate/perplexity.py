"""Perplexity with a sliding window: the recipe of the transformers docs ("Perplexity of
fixed-length models"), batched.

The text is cut into windows of `max_length` tokens starting every `stride` tokens. In each
window only the tokens not scored by the previous window are scored, so with stride <
max_length every token is scored exactly once and, after the first window, with at least
`max_length - stride` tokens of context; a text of N tokens yields N - 1 scored tokens (the
first has no context), exactly what one forward pass with `labels=` averages over.
stride == max_length is the fast, pessimistic "disjoint chunks" estimate (each chunk's first
token has no context and is skipped, as in the recipe); a smaller stride approaches the
model's true perplexity.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmtutor.errors import ToolInputError
from llmtutor.training.evaluate.config import COURSE_TEXT
from llmtutor.training.progress import ProgressCallback, check_cancelled, emit


@dataclass(frozen=True)
class Window:
    begin: int  # first token of the window in the text
    end: int  # one past its last token
    first_scored: int  # first position (inside the text) whose token this window scores


def course_text() -> str:
    """The bundled course notes (19 bilingual modules), in course order, as one text."""
    from llmtutor.knowledge.catalog import DEFAULT_PATH

    notes = sorted((DEFAULT_PATH.parent / "notes").glob("*.md"))
    order = {"fundamentals": 0, "scientist": 1, "engineer": 2}
    notes = [p for p in notes if p.stem.split("-")[0] in order]  # not the README index
    notes.sort(key=lambda p: (order[p.stem.split("-")[0]], int(p.stem.split("-")[1])))
    return "\n\n".join(p.read_text(encoding="utf-8").strip() for p in notes)


def load_text(source: str) -> str:
    if source == COURSE_TEXT:
        return course_text()
    path = Path(source).expanduser()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ToolInputError(f"cannot read {path}: {exc}", "give a UTF-8 text or Markdown file") from exc
    if not text.strip():
        raise ToolInputError(f"{path} is empty", "give a file with some text to score")
    return text


def tokenize(tokenizer: Any, text: str, max_tokens: int | None) -> list[int]:
    # verbose=False: a long text exceeds model_max_length on purpose (it is windowed later)
    ids = tokenizer(text, return_attention_mask=False, verbose=False)["input_ids"]
    ids = ids[:max_tokens] if max_tokens else ids
    if len(ids) < 2:
        raise ToolInputError("the text has fewer than 2 tokens", "give a longer text to compute perplexity")
    return list(ids)


def windows(n_tokens: int, max_length: int, stride: int) -> list[Window]:
    out: list[Window] = []
    prev_end = 0
    for begin in range(0, n_tokens, stride):
        end = min(begin + max_length, n_tokens)
        out.append(Window(begin, end, max(prev_end, begin + 1)))
        prev_end = end
        if end == n_tokens:
            break
    return out


def sliding_window_nll(
    model: Any,
    ids: list[int],
    max_length: int,
    stride: int,
    batch_size: int = 1,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
    label: str = "",
) -> tuple[float, int]:
    """(sum of negative log-likelihoods in nats, number of scored tokens)."""
    import torch

    device = next(model.parameters()).device
    plan = windows(len(ids), max_length, stride)
    # Windows of equal length share a forward pass; only the last one is usually shorter.
    batches: list[list[Window]] = []
    for w in plan:
        if (
            batches
            and len(batches[-1]) < batch_size
            and (w.end - w.begin) == (batches[-1][0].end - batches[-1][0].begin)
        ):
            batches[-1].append(w)
        else:
            batches.append([w])
    nll, count, done = 0.0, 0, 0
    for batch in batches:
        check_cancelled(cancel)
        x = torch.tensor([ids[w.begin : w.end] for w in batch], device=device)
        with torch.no_grad():
            logits = model(input_ids=x).logits.float()
        # logits at position p predict the token at p + 1
        logprobs = torch.log_softmax(logits[:, :-1], dim=-1)
        token_lp = logprobs.gather(-1, x[:, 1:].unsqueeze(-1)).squeeze(-1)
        for row, w in enumerate(batch):
            scored = token_lp[row, w.first_scored - w.begin - 1 :]
            nll -= float(scored.double().sum())
            count += scored.numel()
        done += len(batch)
        emit(progress, "eval", f"{label}: perplexity", step=done, total=len(plan))
    return nll, count


def perplexity(nll: float, count: int) -> float:
    return math.exp(nll / count)
