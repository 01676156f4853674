"""Rendering rows with the base model's chat template and tokenizing them with a loss mask.

The most common SFT failures are a template mismatch (the model is trained on one format and
prompted with another at chat time) and training on the prompt. So every row is rendered with
the *base tokenizer's* `apply_chat_template` (the same call the chat UI makes), and only the
assistant turns, including their end-of-turn token so the model learns to stop, carry labels;
every other token gets -100.

Tokenizers without a chat template get a plain "### Instruction / ### Response" format, and the
run's notes say so (the same format must then be used to prompt the model).
"""

from __future__ import annotations

from typing import Any

IGNORE = -100
PLAIN_FORMAT = "### Instruction / ### Response"


def has_chat_template(tokenizer: Any) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def _plain_turn(message: dict[str, str], eos: str) -> tuple[str, str]:
    """(prompt part, trained part) of one message in the plain fallback format."""
    if message["role"] == "system":
        return f"{message['content']}\n\n", ""
    if message["role"] == "user":
        return f"### Instruction:\n{message['content']}\n\n### Response:\n", ""
    return "", f"{message['content']}{eos}\n\n"


def plain_prompt(messages: list[dict[str, str]], tokenizer: Any) -> str:
    """The fallback-format text of `messages` (ending on a user turn: what to send at inference)."""
    eos = tokenizer.eos_token or ""
    return "".join("".join(_plain_turn(m, eos)) for m in messages)


def _common_prefix(a: str, b: str) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def segments(tokenizer: Any, example: dict[str, Any]) -> list[tuple[str, bool]]:
    """The training text of a row as (piece, trained?) pieces, in order."""
    eos = tokenizer.eos_token or ""
    if "text" in example:
        text = example["text"]
        return [(text if text.endswith(eos) else text + eos, True)]
    messages = example["messages"]
    if not has_chat_template(tokenizer):
        pieces: list[tuple[str, bool]] = []
        for message in messages:
            prompt, trained = _plain_turn(message, eos)
            pieces += [(prompt, False), (trained, True)]
        return [(text, flag) for text, flag in pieces if text]
    full = tokenizer.apply_chat_template(messages, tokenize=False)
    # Each assistant turn spans from where "the conversation so far + generation prompt" ends to
    # where "the conversation including this turn" ends. Common prefixes (not plain lengths) keep
    # this right for templates that render earlier turns differently once later ones exist.
    bounds: list[tuple[int, int]] = []
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        before = (
            tokenizer.apply_chat_template(messages[:i], tokenize=False, add_generation_prompt=True)
            if i
            else ""
        )
        upto = tokenizer.apply_chat_template(messages[: i + 1], tokenize=False)
        start, end = _common_prefix(before, full), _common_prefix(upto, full)
        if end > start:
            bounds.append((start, end))
    pieces, cursor = [], 0
    for start, end in bounds:
        pieces += [(full[cursor:start], False), (full[start:end], True)]
        cursor = end
    pieces.append((full[cursor:], False))
    return [(text, flag) for text, flag in pieces if text]


def render_example(tokenizer: Any, example: dict[str, Any]) -> str:
    """The exact text a row is trained on."""
    return "".join(text for text, _ in segments(tokenizer, example))


def _encode(tokenizer: Any, example: dict[str, Any]) -> tuple[list[int], list[int]]:
    pieces = segments(tokenizer, example)
    if getattr(tokenizer, "is_fast", False):
        # One tokenization of the whole text (identical to what inference sees); a token is
        # trained when it starts inside an assistant span.
        enc = tokenizer("".join(p for p, _ in pieces), add_special_tokens=False, return_offsets_mapping=True)
        spans, cursor = [], 0
        for piece, trained in pieces:
            if trained:
                spans.append((cursor, cursor + len(piece)))
            cursor += len(piece)
        ids = list(enc["input_ids"])
        labels = [
            tok if any(s <= start < e for s, e in spans) else IGNORE
            for tok, (start, _end) in zip(ids, enc["offset_mapping"], strict=True)
        ]
        return ids, labels
    ids, labels = [], []  # slow tokenizers have no offsets: tokenize piece by piece
    for piece, trained in pieces:
        piece_ids = tokenizer(piece, add_special_tokens=False)["input_ids"]
        ids += piece_ids
        labels += piece_ids if trained else [IGNORE] * len(piece_ids)
    return ids, labels


def tokenize_example(tokenizer: Any, example: dict[str, Any], max_len: int) -> dict[str, list[int]] | None:
    """{"input_ids", "labels"} with non-assistant tokens masked, truncated to `max_len`; None if
    nothing trainable is left after truncation."""
    ids, labels = _encode(tokenizer, example)
    ids, labels = ids[:max_len], labels[:max_len]
    if all(label == IGNORE for label in labels):
        return None
    return {"input_ids": ids, "labels": labels}


def tokenize_rows(tokenizer: Any, rows: list[dict[str, Any]], max_len: int) -> tuple[list[dict], int, int]:
    """(tokenized rows, rows truncated, rows dropped because no assistant token fit in `max_len`)."""
    out, truncated, dropped = [], 0, 0
    for row in rows:
        ids, labels = _encode(tokenizer, row)
        truncated += len(ids) > max_len
        ids, labels = ids[:max_len], labels[:max_len]
        if all(label == IGNORE for label in labels):
            dropped += 1
            continue
        out.append({"input_ids": ids, "labels": labels})
    return out, truncated, dropped


def preference_for_tokenizer(tokenizer: Any, row: dict[str, Any]) -> dict[str, Any]:
    """A canonical preference row as TRL expects it: conversational when the tokenizer has a chat
    template (TRL applies it), plain strings in the fallback format otherwise."""
    if has_chat_template(tokenizer):
        return row
    eos = tokenizer.eos_token or ""
    return {
        "prompt": plain_prompt(row["prompt"], tokenizer),
        "chosen": row["chosen"][0]["content"] + eos,
        "rejected": row["rejected"][0]["content"] + eos,
    }
