"""Supervised fine-tuning: transformers `Trainer` on rows packed with TRL's `pack_dataset`.

Why not TRL's `SFTTrainer`: we tokenize ourselves (templating.py: chat template, prompt masked),
so SFTTrainer would only add its batching and loss, and on CPU both cost more than they save.
Measured on SmolLM2-135M + LoRA r=8, 1024 tokens per step, 2-core CPU (s per fwd+bwd):
- SFTTrainer turns "bfd" packing into padding-free batches: the whole batch flattened into ONE
  sequence. That suits FlashAttention's varlen kernels; with SDPA/eager it is one (B*L)^2
  attention with a dense block-diagonal mask: 7.8 s vs 5.5 s for B rows of L.
- Its fused, chunked LM-head loss scores every position off Triton devices: 7.4 s vs 5.6 s.
Together they ate most of packing's gain (1.7x instead of >2x over the padded baseline).

What we do instead: TRL's best-fit-decreasing packing (`pack_dataset(..., "bfd")`, whole rows,
never split) into bins of `max_seq_len`, batched as B rows (not flattened), with `position_ids`
restarting at 0 for every packed row and NO attention mask. From restarting position_ids,
transformers (5.x) builds a block-diagonal causal mask for SDPA and eager, and flash-attention
uses them as varlen boundaries, so packed rows never attend to each other (tested in
tests/test_finetune.py). The mask costs ~8% (6.0 s vs 5.5 s); no compute goes to padding, which
on a compute-bound CPU is the win: >= 2x the useful tokens/s of padding every batch to
`max_seq_len` (benchmarks/finetune.py). The model must not build a KV cache (use_cache=False),
or transformers skips the packed-sequence detection. `packing=False` falls back to
length-grouped batches with dynamic padding (`train_sampling_strategy="group_by_length"`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from llmtutor.training.finetune.data import DatasetError
from llmtutor.training.finetune.templating import IGNORE, tokenize_rows

if TYPE_CHECKING:  # config.py imports the method registry, which imports this module
    from llmtutor.training.finetune.config import FinetuneConfig


class PackedCollator:
    """Batches of packed rows (`seq_lengths` from `pack_dataset`) or plain rows.

    Packed: no attention mask, position_ids restart per packed row; the first token of each
    packed row gets no label (it would be predicted from the previous row's last token); the
    batch is padded to its longest bin, the padding forming its own ignored segment.
    Plain: right padding with an attention mask. `tokens` counts real training tokens,
    `batch_tokens` every position the model computed (padding included)."""

    def __init__(self, pad_token_id: int, packed: bool):
        self.pad_token_id = pad_token_id
        self.packed = packed
        self.counting = True  # off during evaluation, so `tokens` is training tokens only
        self.tokens = 0
        self.batch_tokens = 0

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        width = max(len(r["input_ids"]) for r in rows)
        ids, labels, positions, masks = [], [], [], []
        for row in rows:
            n = len(row["input_ids"])
            pad = width - n
            lengths = row.get("seq_lengths") or [n]
            pos = [i for length in lengths for i in range(length)]
            lab = [IGNORE if p == 0 else label for p, label in zip(pos, row["labels"], strict=True)]
            ids.append(list(row["input_ids"]) + [self.pad_token_id] * pad)
            labels.append(lab + [IGNORE] * pad)
            positions.append(pos + list(range(pad)))
            masks.append([1] * n + [0] * pad)
            if self.counting:
                self.tokens += n
                self.batch_tokens += width
        batch = {"input_ids": torch.tensor(ids), "labels": torch.tensor(labels)}
        if self.packed:
            batch["position_ids"] = torch.tensor(positions)
        else:
            batch["attention_mask"] = torch.tensor(masks)
        return batch


def common_args(config: FinetuneConfig, device: str, has_eval: bool) -> dict[str, Any]:
    """TrainingArguments shared by SFT, DPO and ORPO (TRL's configs subclass TrainingArguments)."""
    from llmtutor.training.finetune.model_setup import mixed_precision

    return dict(
        output_dir=str(config.checkpoints),
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.batch_size,
        gradient_accumulation_steps=config.grad_accum,
        learning_rate=config.lr,
        warmup_steps=config.warmup_ratio,  # a float < 1 is a ratio of the total steps
        lr_scheduler_type="cosine",
        num_train_epochs=config.epochs,
        max_steps=config.max_steps or -1,
        logging_steps=1,
        save_strategy="steps",
        save_steps=config.save_steps,
        save_total_limit=config.save_total_limit,
        eval_strategy="steps" if has_eval else "no",
        eval_steps=(config.eval_steps or 0.25) if has_eval else None,  # a float < 1: a ratio of the run
        seed=config.seed,
        data_seed=config.seed,
        use_cpu=device == "cpu",
        report_to="none",
        disable_tqdm=True,
        gradient_checkpointing=config.gradient_checkpointing,  # TRL's configs default it on; not on CPU
        gradient_checkpointing_kwargs={"use_reentrant": False} if config.gradient_checkpointing else None,
        dataloader_num_workers=0,
        # every trainable parameter gets a gradient each step: DDP need not search for unused ones
        ddp_find_unused_parameters=False,
        **mixed_precision(device),
    )


def prepare_sft_rows(
    tokenizer: Any,
    train_rows: list[dict],
    eval_rows: list[dict],
    config: FinetuneConfig,
    notes: list[str],
    stats: dict[str, Any],
) -> tuple[list[dict], list[dict]]:
    """Rows as token ids with the prompt masked (templating.py); counts go into `stats`."""
    train_rows, truncated, dropped = tokenize_rows(tokenizer, train_rows, config.max_seq_len)
    eval_rows, _, _ = tokenize_rows(tokenizer, eval_rows, config.max_seq_len)
    if not train_rows:
        raise DatasetError(
            f"no row has an answer within max_seq_len={config.max_seq_len} tokens",
            "raise max_seq_len or shorten the prompts",
        )
    if truncated or dropped:
        notes.append(
            f"{truncated} rows longer than max_seq_len={config.max_seq_len} were truncated"
            + (f", {dropped} dropped (no answer token left)" if dropped else "")
        )
    stats["supervised_tokens"] = sum(sum(1 for x in r["labels"] if x != -100) for r in train_rows)
    stats["train_rows"] = len(train_rows)
    return train_rows, eval_rows


def build_sft_trainer(
    model: Any,
    tokenizer: Any,
    train_rows: list[dict],
    eval_rows: list[dict],
    config: FinetuneConfig,
    device: str,
    bridge: Any,
) -> Any:
    """The trainer, reporting to `bridge` (a ProgressBridge), which counts the collator's tokens."""
    from datasets import Dataset
    from transformers import Trainer, TrainingArguments
    from trl import pack_dataset

    class SFTLoop(Trainer):
        def evaluate(self, *args: Any, **kwargs: Any) -> dict[str, float]:
            collator.counting = False
            try:
                return super().evaluate(*args, **kwargs)
            finally:
                collator.counting = True

    def dataset(rows: list[dict]) -> Any:
        data = Dataset.from_list(rows)
        return pack_dataset(data, config.max_seq_len, strategy="bfd") if config.packing else data

    collator = PackedCollator(tokenizer.pad_token_id, packed=config.packing)
    args = TrainingArguments(
        **common_args(config, device, has_eval=bool(eval_rows)),
        remove_unused_columns=False,  # the collator needs `seq_lengths`, which the model does not take
        train_sampling_strategy="random" if config.packing else "group_by_length",
    )
    trainer = SFTLoop(
        model=model,
        args=args,
        train_dataset=dataset(train_rows),
        eval_dataset=dataset(eval_rows) if eval_rows else None,
        data_collator=collator,
        processing_class=tokenizer,
        callbacks=[bridge],
    )
    bridge.token_counter = lambda: collator.tokens  # exact: what the collator batched
    bridge.padded_counter = lambda: collator.batch_tokens
    return trainer
