"""The files a finished run leaves next to its model: metrics, loss curve, model card.

They are written into a staging folder and moved into output_dir only once training finished
(runner.py), so a cancelled or crashed run never leaves a finished-looking folder."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import resource
import shutil
from pathlib import Path
from typing import Any

from llmtutor.training.finetune.config import FinetuneConfig
from llmtutor.training.finetune.methods import get_method
from llmtutor.training.finetune.templating import PLAIN_FORMAT


def peak_rss_mb() -> float:
    """Peak resident memory of this process (ru_maxrss is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (2**20 if platform.system() == "Darwin" else 2**10)


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for package in ("torch", "transformers", "trl", "peft", "datasets", "accelerate", "bitsandbytes"):
        with contextlib.suppress(PackageNotFoundError):
            out[package] = version(package)
    return out


def write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")


def plot_losses(
    path: Path, train: list[tuple[int, float]], evals: list[tuple[int, float]], title: str
) -> None:
    import matplotlib

    matplotlib.use("Agg")  # no display in jobs and servers
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4))
    if train:
        ax.plot(*zip(*train, strict=True), label="train loss", color="#3b6fb6", linewidth=1.2)
    if evals:
        ax.plot(*zip(*evals, strict=True), "o-", label="eval loss", color="#d0632a")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _article(acronym: str) -> str:
    """'An' before a method acronym that starts with a vowel sound (an SFT, an ORPO, a DPO)."""
    return "An" if acronym[:1] in set("AEFHILMNORSX") else "A"


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def model_card(
    config: FinetuneConfig,
    name: str,
    base: str,
    adapter: str,
    metrics: dict[str, Any],
    model_dir: str | None,
    notes: list[str],
    chat_template: bool,
) -> str:
    hp = {
        "method": config.method,
        "adapter": adapter,
        "learning rate": config.lr,
        "epochs": config.epochs,
        "max steps": config.max_steps,
        "batch size": config.batch_size,
        "gradient accumulation": config.grad_accum,
        "processes (devices)": f"{config.num_processes} ({config.distributed.upper()})"
        if config.num_processes > 1
        else 1,
        "global batch size": config.global_batch_size,
        "max sequence length": config.max_seq_len,
        "packing": config.packing,
        "warmup ratio": config.warmup_ratio,
        "seed": config.seed,
    }
    if adapter != "full":
        hp |= {
            "LoRA r": config.lora_r,
            "LoRA alpha": config.lora_alpha,
            "LoRA dropout": config.lora_dropout,
            "target modules": ", ".join(metrics.get("target_modules") or config.targets),
        }
    hp |= {name: getattr(config, name) for name in get_method(config.method).params}
    keys = (
        "train_loss_first",
        "train_loss_last",
        "eval_loss",
        "steps",
        "trained_tokens",
        "tokens_per_s",
        "runtime_s",
        "peak_rss_mb",
        "device",
    )
    lines = [
        f"# {name}",
        "",
        f"{_article(config.method.upper())} {config.method.upper()} fine-tune of `{base}` ({adapter}), made with llmtutor "
        "(TRL + PEFT on the LLM Course's fine-tuning lab).",
        "",
        "## Data",
        "",
        f"- file: `{metrics.get('dataset')}` ({metrics.get('dataset_format')})",
        f"- rows: {metrics.get('train_rows')} train, {metrics.get('eval_rows')} eval",
        "",
        "## Hyper-parameters",
        "",
        "| parameter | value |",
        "|---|---|",
    ]
    lines += [f"| {k} | {v} |" for k, v in hp.items()]
    lines += ["", "## Metrics", "", "| metric | value |", "|---|---|"]
    lines += [f"| {k} | {_fmt(metrics.get(k))} |" for k in keys]
    lines += ["", "![loss curve](loss_curve.png)", "", "## Use it", ""]
    if model_dir:
        prompt = (
            (
                "tok.apply_chat_template([{'role': 'user', 'content': 'What is LoRA?'}], "
                "add_generation_prompt=True, return_tensors='pt', return_dict=True)"
            )
            if chat_template
            else ("tok('### Instruction:\\nWhat is LoRA?\\n\\n### Response:\\n', return_tensors='pt')")
        )
        lines += [
            "```python",
            "from transformers import AutoModelForCausalLM, AutoTokenizer",
            "",
            f"tok = AutoTokenizer.from_pretrained('{model_dir}')",
            f"model = AutoModelForCausalLM.from_pretrained('{model_dir}')",
            f"inputs = {prompt}",
            "out = model.generate(**inputs, max_new_tokens=80)",
            "print(tok.decode(out[0][inputs['input_ids'].shape[1]:], skip_special_tokens=True))",
            "```",
            "",
            f"In llmtutor: set `LLMTUTOR_CHAT_MODEL` to the `{model_dir}` folder (or the registered name `{name}`).",
        ]
    if adapter != "full":
        lines += [
            "",
            "The LoRA adapter alone (needs the base model):",
            "",
            "```python",
            "from peft import AutoPeftModelForCausalLM",
            "",
            "model = AutoPeftModelForCausalLM.from_pretrained('adapter')",
            "```",
        ]
    if not chat_template:
        lines += ["", f"The base tokenizer has no chat template: prompts must use the {PLAIN_FORMAT} format."]
    lines += [
        "",
        "## Limitations",
        "",
        f"- Trained for {metrics.get('steps')} steps on {metrics.get('train_rows')} rows: it follows the "
        "style of its data, it does not know more than the base model.",
        "- Small models hallucinate confidently; check facts against the course notes.",
        "- Evaluate it (`evaluate_model`) before relying on it; a falling loss is not quality.",
    ]
    if notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"


def move_into(staging: Path, output_dir: Path, names: list[str]) -> None:
    """Move finished artifacts into place, the model card last (it marks the run as finished)."""
    for name in names:
        target = output_dir / name
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
        os.replace(staging / name, target)
