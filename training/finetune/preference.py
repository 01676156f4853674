"""Preference alignment with TRL: `DPOTrainer` (trl) and `ORPOTrainer` (trl.experimental.orpo in
TRL 1.x; it moved out of the stable API).

Rows are conversational ({"prompt": [user...], "chosen": [assistant], "rejected": [assistant]}),
so TRL renders them with the base model's chat template, the same one the chat uses. With a
LoRA model DPO needs no second model in memory: the reference log-probs come from the same
weights with the adapter disabled. ORPO needs no reference at all (its odds-ratio term is added
to the SFT loss on the chosen answer), which is why it can align a base model in one stage.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from llmtutor.training.finetune.sft import common_args
from llmtutor.training.finetune.templating import has_chat_template, preference_for_tokenizer

if TYPE_CHECKING:  # config.py imports the method registry, which imports this module
    from llmtutor.training.finetune.config import FinetuneConfig


def pair_tokens(tokenizer: Any, row: dict[str, Any]) -> int:
    """Tokens one preference pair puts through the model (prompt+chosen and prompt+rejected)."""
    if not has_chat_template(tokenizer):
        row = preference_for_tokenizer(tokenizer, row)
        texts = [row["prompt"] + row["chosen"], row["prompt"] + row["rejected"]]
    else:
        texts = [
            tokenizer.apply_chat_template(row["prompt"] + row[k], tokenize=False)
            for k in ("chosen", "rejected")
        ]
    return sum(len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts)


def _prepare(
    tokenizer: Any, train_rows: list[dict], eval_rows: list[dict], config: FinetuneConfig, bridge: Any
) -> tuple[Any, Any]:
    """(train, eval) datasets as TRL takes them; `bridge` gets an estimate of the tokens per
    optimizer step (TRL's trainers tokenize inside, so there is no collator to count in)."""
    from datasets import Dataset

    def dataset(rows: list[dict]) -> Any:
        return Dataset.from_list([preference_for_tokenizer(tokenizer, r) for r in rows]) if rows else None

    sample = train_rows[:64]
    bridge.tokens_per_step = (
        sum(pair_tokens(tokenizer, r) for r in sample) / len(sample) * config.batch_size * config.grad_accum
    )
    return dataset(train_rows), dataset(eval_rows)


def build_dpo_trainer(
    model: Any,
    tokenizer: Any,
    train_rows: list[dict],
    eval_rows: list[dict],
    config: FinetuneConfig,
    device: str,
    bridge: Any,
) -> Any:
    from trl import DPOConfig, DPOTrainer

    train, evaluation = _prepare(tokenizer, train_rows, eval_rows, config, bridge)
    common = common_args(config, device, has_eval=bool(eval_rows))
    return DPOTrainer(
        model=model,
        ref_model=None,
        args=DPOConfig(**common, max_length=config.max_seq_len, beta=config.beta),
        train_dataset=train,
        eval_dataset=evaluation,
        processing_class=tokenizer,
        callbacks=[bridge],
    )


def build_orpo_trainer(
    model: Any,
    tokenizer: Any,
    train_rows: list[dict],
    eval_rows: list[dict],
    config: FinetuneConfig,
    device: str,
    bridge: Any,
) -> Any:
    from trl.experimental.orpo import ORPOConfig, ORPOTrainer

    train, evaluation = _prepare(tokenizer, train_rows, eval_rows, config, bridge)
    common = common_args(config, device, has_eval=bool(eval_rows))
    return ORPOTrainer(
        model=model,
        args=ORPOConfig(**common, max_length=config.max_seq_len, beta=config.beta),
        train_dataset=train,
        eval_dataset=evaluation,
        processing_class=tokenizer,
        callbacks=[bridge],
    )
