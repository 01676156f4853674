"""One process vs several on the same fine-tune: `FinetuneConfig(num_processes=N)` (DDP).

    python benchmarks/finetune_ddp.py [--model tiny|smollm2] [--processes 1,2] [--steps 12]
                                      [--global-batch 4] [--max-seq-len 256] [--repeats 1]

Same data (the bundled course SFT set), LoRA r=8, lr 2e-4, seed, steps and GLOBAL batch: with N
processes each trains on global-batch / N rows per step, so every variant sees as many rows per
optimizer step. Printed per variant: wall time of `run()` (launching the processes and loading
the model in each included), the Trainer's own `train()` time, trained tokens/s over that time
(summed over the processes), last logged loss and rank 0's peak RSS. On CPU the processes share
the machine's cores (each gets cores / N threads), so expect no speed-up there; on GPUs each
process has a device of its own. `--repeats N` alternates the order and keeps the fastest run.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent))


def run_once(base: str, processes: int, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    from llmtutor.training.finetune import BUNDLED_SFT, FinetuneConfig, run

    config = FinetuneConfig(
        base_model=base,
        dataset=BUNDLED_SFT,
        output_dir=Path(tempfile.mkdtemp(prefix=f"ddp{processes}-", dir=workdir)),
        max_steps=args.steps,
        batch_size=args.global_batch // processes,
        max_seq_len=args.max_seq_len,
        learning_rate=2e-4,
        eval_fraction=0,
        merge=False,
        save_steps=10**6,
        num_processes=processes,
    )
    load = os.getloadavg()[0]
    started = time.perf_counter()
    m = run(config).metrics
    return {
        "processes": processes,
        "wall_s": time.perf_counter() - started,
        "train_s": m["train_runtime_s"],
        "tokens_per_s": m["tokens_per_s"],
        "trained_tokens": m["trained_tokens"],
        "loss": m["train_loss_last"],
        "rss_mb": m["peak_rss_mb"],
        "load": f"{load:.1f}→{os.getloadavg()[0]:.1f}",
    }


def main() -> None:
    from finetune import model_path  # the converted SmolLM2 or the 2-layer tiny Llama

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=["tiny", "smollm2"], default="tiny")
    parser.add_argument("--processes", default="1,2")
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--global-batch", type=int, default=4)
    parser.add_argument("--max-seq-len", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    counts = [int(n) for n in args.processes.split(",")]
    with tempfile.TemporaryDirectory(prefix="bench-ddp-") as tmp:
        workdir = Path(tmp)
        base = model_path(args.model, workdir)
        best: dict[int, dict[str, Any]] = {}
        for repeat in range(args.repeats):
            for n in counts if repeat % 2 == 0 else counts[::-1]:
                row = run_once(base, n, args, workdir)
                print(f"run {repeat + 1}: {row}", flush=True)
                if n not in best or row["wall_s"] < best[n]["wall_s"]:
                    best[n] = row
    print(
        "\n| processes | batch per process | wall s | train() s | tokens/s | trained tokens | last loss | rank-0 RSS MB |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n in counts:
        r = best[n]
        print(
            f"| {n} | {args.global_batch // n} | {r['wall_s']:.1f} | {r['train_s']:.1f} | {r['tokens_per_s']:.0f} "
            f"| {r['trained_tokens']} | {r['loss']:.3f} | {r['rss_mb']:.0f} |"
        )


if __name__ == "__main__":
    main()
