"""Fine-tuning throughput: the project's SFT (Trainer on TRL "bfd"-packed rows, no padding) vs a
naive padded baseline (plain transformers Trainer, every batch padded to max_seq_len), same
model, same LoRA, same data (the bundled course SFT set), same steps, same run.

    python benchmarks/finetune.py [--model tiny|smollm2] [--steps 20] [--batch-size 4] [--max-seq-len 256]

Each variant runs in its own subprocess so peak RSS is its own. Prints steps, trained
(non-padding) tokens/s, total tokens/s (padding included), s/step, peak RSS and final loss.
Goal: ≥ 2x trained tokens/s over the baseline on CPU. Both sides render rows with the chat
template and mask the prompt the same way, so the only difference is how batches are formed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def model_path(kind: str, workdir: Path) -> str:
    """The converted SmolLM2, or a 2-layer random Llama with its tokenizer (like tests' tiny_llama_dir)."""
    from llmtutor.hf_models import resolve_hf_model
    from llmtutor.settings import Settings

    smollm2 = resolve_hf_model(None, Settings().models_dir)  # <workspace>/models (LLMTUTOR_WORKSPACE)
    if kind == "smollm2":
        return str(smollm2)
    tiny = workdir / "tiny-llama"
    if not (tiny / "config.json").is_file():
        import torch
        from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

        tok = AutoTokenizer.from_pretrained(str(smollm2))
        config = LlamaConfig(
            vocab_size=len(tok),
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            tie_word_embeddings=True,
            bos_token_id=tok.bos_token_id,
            eos_token_id=tok.eos_token_id,
            pad_token_id=tok.pad_token_id,
        )
        torch.manual_seed(0)
        LlamaForCausalLM(config).save_pretrained(str(tiny))
        tok.save_pretrained(str(tiny))
    return str(tiny)


def run_project(args: argparse.Namespace, base: str, workdir: Path) -> dict[str, Any]:
    from llmtutor.training.finetune import BUNDLED_SFT, FinetuneConfig, run

    config = FinetuneConfig(
        base_model=base,
        dataset=BUNDLED_SFT,
        output_dir=workdir / "project",
        max_steps=args.steps,
        batch_size=args.batch_size,
        max_seq_len=args.max_seq_len,
        lora_r=8,
        lora_alpha=16,
        learning_rate=2e-4,
        eval_fraction=0,
        merge=False,
        save_steps=10**6,
        seed=42,
    )
    result = run(config)
    m = result.metrics
    total = m["trained_tokens"] / (
        1 - (m["padding_fraction"] or 0)
    )  # packed bins: padding only up to the longest bin
    return {
        "steps": m["steps"],
        "trained_tokens": m["trained_tokens"],
        "total_tokens": round(total),
        "seconds": m["train_runtime_s"],
        "final_loss": m["train_loss_last"],
        "peak_rss_mb": m["peak_rss_mb"],
    }


def run_baseline(args: argparse.Namespace, base: str, workdir: Path) -> dict[str, Any]:
    import torch
    from datasets import Dataset
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer, Trainer, TrainingArguments, set_seed

    from llmtutor.training.finetune import BUNDLED_SFT, DEFAULT_TARGET_MODULES, load_dataset_rows
    from llmtutor.training.finetune.artifacts import peak_rss_mb
    from llmtutor.training.finetune.templating import tokenize_rows

    set_seed(42)
    tok = AutoTokenizer.from_pretrained(base)
    rows, _, _ = tokenize_rows(tok, load_dataset_rows(BUNDLED_SFT).rows, args.max_seq_len)
    counts = {"real": 0, "total": 0}

    def collate(batch: list[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
        # padding="max_length": every row padded to max_seq_len, the textbook recipe.
        n = args.max_seq_len
        ids = [r["input_ids"] + [tok.pad_token_id] * (n - len(r["input_ids"])) for r in batch]
        labels = [r["labels"] + [-100] * (n - len(r["labels"])) for r in batch]
        mask = [[1] * len(r["input_ids"]) + [0] * (n - len(r["input_ids"])) for r in batch]
        counts["real"] += sum(map(sum, mask))
        counts["total"] += n * len(batch)
        return {
            "input_ids": torch.tensor(ids),
            "labels": torch.tensor(labels),
            "attention_mask": torch.tensor(mask),
        }

    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    model = get_peft_model(
        model,
        LoraConfig(
            r=8,
            lora_alpha=16,
            lora_dropout=0.05,
            target_modules=list(DEFAULT_TARGET_MODULES),
            task_type="CAUSAL_LM",
        ),
    )
    targs = TrainingArguments(
        output_dir=str(workdir / "baseline"),
        per_device_train_batch_size=args.batch_size,
        max_steps=args.steps,
        learning_rate=2e-4,
        warmup_steps=0.03,
        lr_scheduler_type="cosine",
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        use_cpu=True,
        remove_unused_columns=False,
        seed=42,
    )
    trainer = Trainer(model=model, args=targs, train_dataset=Dataset.from_list(rows), data_collator=collate)
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    losses = [log["loss"] for log in trainer.state.log_history if "loss" in log]
    return {
        "steps": trainer.state.global_step,
        "trained_tokens": counts["real"],
        "total_tokens": counts["total"],
        "seconds": seconds,
        "final_loss": losses[-1],
        "peak_rss_mb": peak_rss_mb(),
    }


def table(results: dict[str, dict[str, Any]], args: argparse.Namespace) -> str:
    lines = [
        f"model={args.model} LoRA r=8, batch {args.batch_size} x max_seq_len {args.max_seq_len}, {args.steps} steps, CPU",
        "",
        "| variant | steps | trained tokens/s | total tokens/s | s/step | peak RSS MB | final loss |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in results.items():
        lines.append(
            f"| {name} | {r['steps']} | {r['trained_tokens'] / r['seconds']:.0f} | {r['total_tokens'] / r['seconds']:.0f} "
            f"| {r['seconds'] / r['steps']:.2f} | {r['peak_rss_mb']:.0f} | {r['final_loss']:.3f} |"
        )
    if {"project", "baseline"} <= results.keys():
        p, b = results["project"], results["baseline"]
        ratio = (p["trained_tokens"] / p["seconds"]) / (b["trained_tokens"] / b["seconds"])
        lines += ["", f"trained tokens/s: project / baseline = {ratio:.2f}x (goal >= 2x)"]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", choices=["tiny", "smollm2"], default="smollm2")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument(
        "--max-seq-len", type=int, default=256, help="the bundled rows are 61-260 tokens (mean 98)"
    )
    parser.add_argument(
        "--variant", choices=["project", "baseline"], help="run one variant and print JSON (internal)"
    )
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="llmtutor-ft-bench-"))
    if args.variant:
        from llmtutor.hf_models import quiet_transformers

        with quiet_transformers():
            base = model_path(args.model, workdir)
            result = (run_project if args.variant == "project" else run_baseline)(args, base, workdir)
        print("RESULT " + json.dumps(result))
        return
    model_path(args.model, workdir)  # convert / build once, outside the timed subprocesses
    results: dict[str, dict[str, Any]] = {}
    for variant in ("baseline", "project"):
        cmd = [
            sys.executable,
            __file__,
            "--variant",
            variant,
            "--workdir",
            str(workdir),
            "--model",
            args.model,
            "--steps",
            str(args.steps),
            "--batch-size",
            str(args.batch_size),
            "--max-seq-len",
            str(args.max_seq_len),
        ]
        out = subprocess.run(cmd, capture_output=True, text=True, check=False)
        line = next((x for x in out.stdout.splitlines() if x.startswith("RESULT ")), None)
        if line is None:
            sys.exit(f"{variant} failed:\n{out.stderr[-3000:]}")
        results[variant] = json.loads(line.removeprefix("RESULT "))
    print(json.dumps(results, indent=2) if args.json else table(results, args))


if __name__ == "__main__":
    main()
