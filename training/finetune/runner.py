"""`run(config, progress, cancel)`: one fine-tuning job from dataset file to finished model folder.

Order: validate data and config (cheap, fails fast) → load model → train (checkpoints in
checkpoint_dir, resumable) → write artifacts into a staging folder → move them into output_dir.
A cancel stops the loop after saving a checkpoint and raises `CancelledError`; nothing in
output_dir then looks finished (no model card, metrics, merged/ or model/).
With `num_processes > 1`, `run` launches the same `train` in one process per device
(launch.py, rank.py); rank 0 reports progress and writes the artifacts.
"""

from __future__ import annotations

import random
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmtutor.errors import ToolExecutionError, ToolInputError
from llmtutor.training.finetune import artifacts
from llmtutor.training.finetune.checkpoints import prepare_checkpoints, remove_checkpoints
from llmtutor.training.finetune.config import FinetuneConfig
from llmtutor.training.finetune.data import DatasetError, LoadedDataset, load_dataset_rows
from llmtutor.training.finetune.methods import choices, get_method
from llmtutor.training.finetune.result import (
    ADAPTER_DIR,
    FINISHED_MARKERS,
    FULL_DIR,
    LOSS_CURVE,
    MERGED_DIR,
    METRICS,
    MODEL_CARD,
    TRAINING_CONFIG,
    FinetuneResult,
)
from llmtutor.training.finetune.templating import PLAIN_FORMAT, has_chat_template
from llmtutor.training.progress import ProgressCallback, check_cancelled, emit

if TYPE_CHECKING:
    from llmtutor.training.finetune.rank import Group

DEFAULT_BASE_NAME = "SmolLM2-135M-Instruct"  # lineage name of the bundled model


def split_rows(rows: list[dict], fraction: float, seed: int) -> tuple[list[dict], list[dict]]:
    """(train, eval): a seeded shuffle, at least one train row; no eval split below 1 row."""
    n_eval = int(len(rows) * fraction)
    if fraction <= 0 or n_eval < 1 or len(rows) - n_eval < 1:
        return list(rows), []
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    eval_idx = set(order[:n_eval])
    return [r for i, r in enumerate(rows) if i not in eval_idx], [rows[i] for i in sorted(eval_idx)]


def check_output_dir(config: FinetuneConfig) -> None:
    out = Path(config.output_dir)
    finished = [name for name in FINISHED_MARKERS if (out / name).exists()]
    if finished:
        raise ToolInputError(
            f"{out} already holds a finished fine-tune ({', '.join(finished)})",
            "choose a new output_dir or delete the old one",
        )


def check_method(config: FinetuneConfig, data: LoadedDataset) -> None:
    """The data must be what the method trains on (`FinetuneMethod.data`)."""
    wants = get_method(config.method).data
    if wants == "preference" and data.format != "preference":
        raise DatasetError(
            f"{config.method.upper()} needs preference rows (prompt, chosen, rejected); "
            f"{data.path.name} is {data.format} data",
            f"use method={choices('sft')} for it, or a preference file",
        )
    if wants == "sft" and data.format == "preference":
        raise DatasetError(
            f"{data.path.name} holds preference pairs, which {config.method.upper()} cannot use",
            f"train it with method={choices('preference')}",
        )


def _base_label(config: FinetuneConfig) -> str:
    from llmtutor.hf_models import is_default_model

    return DEFAULT_BASE_NAME if is_default_model(config.base_model) else str(config.base_model)


def run(
    config: FinetuneConfig, progress: ProgressCallback | None = None, cancel: threading.Event | None = None
) -> FinetuneResult:
    """Fine-tune `config.base_model` on `config.dataset`; see the package docstring."""
    if config.num_processes > 1:
        from llmtutor.training.finetune.launch import launch

        return launch(config, progress, cancel)
    result = train(config, progress, cancel)
    assert result is not None  # only ranks other than 0 of a distributed run return None
    return result


def train(
    config: FinetuneConfig,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
    group: Group | None = None,
) -> FinetuneResult | None:
    """The training itself, in this process. `group`: this process is one rank of a distributed
    run; the launcher already resolved the base model and the checkpoint to resume from."""
    from llmtutor.hf_models import pick_device, resolve_hf_model
    from llmtutor.training.finetune.model_setup import load_tokenizer, resolve_adapter

    started = time.perf_counter()
    if group:  # runtime_s counts from the launch, as the caller waited for it
        started -= max(0.0, time.time() - group.launched_at)
    notes: list[str] = []
    check_output_dir(config)
    name = config.model_name()
    device = group.device if group else pick_device(config.device)
    adapter, adapter_notes = resolve_adapter(config, device)
    notes += adapter_notes

    emit(progress, "data", f"reading {config.dataset_path.name}")
    data = load_dataset_rows(config.dataset_path, config.dataset_format)
    check_method(config, data)
    notes += data.notes
    check_cancelled(cancel)

    if group:  # resolved (a GGUF converted) once by the launcher
        base_path: Path | str = group.base_path
    else:
        emit(progress, "load", "resolving the base model")
        base_path = resolve_hf_model(
            config.base_model,
            config.models_dir,
            lambda stage, step=None, total=None, message="": emit(
                progress, "load", message, step=step, total=total
            ),
        )
    tokenizer = load_tokenizer(base_path)
    chat = has_chat_template(tokenizer)
    if not chat:
        notes.append(f"the base tokenizer has no chat template: trained on the plain {PLAIN_FORMAT} format")
    train_rows, eval_rows = split_rows(data.rows, config.eval_fraction, config.seed)
    if config.eval_fraction > 0 and not eval_rows:
        notes.append(
            f"too few rows ({len(data.rows)}) for a {config.eval_fraction:.0%} eval split: no evaluation"
        )
    stats: dict[str, Any] = {
        "dataset": str(data.path),
        "dataset_format": data.format
        if data.source_format == data.format
        else f"{data.format} ({data.source_format})",
        "train_rows": len(train_rows),
        "eval_rows": len(eval_rows),
    }
    prepare = get_method(config.method).prepare_rows
    if prepare is not None:  # SFT tokenizes here (prompt masked); TRL's trainers do it themselves
        train_rows, eval_rows = prepare(tokenizer, train_rows, eval_rows, config, notes, stats)
    check_cancelled(cancel)

    trainer, bridge, model = _build(
        config, base_path, tokenizer, train_rows, eval_rows, adapter, device, progress, cancel
    )
    if group:
        group.attach(trainer, bridge)
    stats["trainable_params"] = sum(p.numel() for p in model.parameters() if p.requires_grad)
    stats["total_params"] = sum(p.numel() for p in model.parameters())
    resume_from = group.checkpoint(notes) if group else prepare_checkpoints(config, notes)
    emit(progress, "train", "training", step=0, total=trainer.state.max_steps or None)
    train_started = time.perf_counter()
    output = trainer.train(resume_from_checkpoint=resume_from)
    train_seconds = time.perf_counter() - train_started
    check_cancelled(cancel)  # CancelledError; checkpoint_dir keeps the state to resume from
    if bridge.diverged:
        raise ToolExecutionError(
            f"the training loss became {bridge.train_losses[-1][1]} at step {trainer.state.global_step}",
            "lower learning_rate (or raise warmup_ratio) and start again",
        )
    eval_loss = bridge.eval_losses[-1][1] if bridge.eval_losses else None
    if eval_rows and (not bridge.eval_losses or bridge.eval_losses[-1][0] != trainer.state.global_step):
        emit(progress, "eval", "final evaluation")
        eval_loss = float(trainer.evaluate()["eval_loss"])
        bridge.eval_losses.append((trainer.state.global_step, eval_loss))
    seen = bridge.trained_tokens(trainer.state)  # exact for SFT, estimated from the rows for DPO/ORPO
    losses = [loss for _, loss in bridge.train_losses]
    metrics = {
        "train_loss_first": losses[0] if losses else None,
        "train_loss_last": losses[-1] if losses else None,
        "train_loss_mean": output.training_loss,
        "eval_loss": eval_loss,
        "steps": trainer.state.global_step,
        "max_steps": trainer.state.max_steps,
        "epochs": trainer.state.epoch,
        "trained_tokens": int(seen),
        "padding_fraction": bridge.padding_fraction(),
        "tokens_per_s": seen / train_seconds if train_seconds > 0 else None,
        "train_runtime_s": train_seconds,
        "peak_rss_mb": artifacts.peak_rss_mb(),  # of this process (rank 0 of a distributed run)
        "device": device.split(":")[0] if group else device,  # a rank trains on cuda:<local rank>
        "world_size": group.world_size if group else 1,
        "global_batch_size": config.global_batch_size,
        "method": config.method,
        "adapter": adapter,
        "learning_rate": config.lr,
        "target_modules": _target_modules(model),
        "chat_template": chat,
        **stats,
        "versions": artifacts.versions(),
    }
    weights = group.gather_weights(trainer) if group else None  # FSDP: every rank takes part
    if group and not group.is_main:
        return None
    model = trainer.accelerator.unwrap_model(trainer.model) if group else trainer.model
    return _finish(
        config, name, adapter, base_path, tokenizer, model, weights, bridge, metrics, notes, started, progress
    )


@contextmanager
def _quiet_datasets() -> Iterator[None]:
    """No "Packing train dataset" bars on stdout (progress goes through `progress`)."""
    import datasets

    was_enabled = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if was_enabled:
            datasets.enable_progress_bars()


def _build(
    config: FinetuneConfig,
    base_path: Path | str,
    tokenizer: Any,
    train_rows: list[dict],
    eval_rows: list[dict],
    adapter: str,
    device: str,
    progress: ProgressCallback | None,
    cancel: threading.Event | None,
) -> tuple[Any, Any, Any]:
    from transformers import set_seed
    from transformers.trainer_callback import PrinterCallback

    from llmtutor.hf_models import quiet_transformers
    from llmtutor.training.finetune.callbacks import ProgressBridge
    from llmtutor.training.finetune.model_setup import load_model

    set_seed(config.seed)  # python, numpy, torch: LoRA init and data order are reproducible
    emit(progress, "load", f"loading {Path(str(base_path)).name} for {adapter} training on {device}")
    model = load_model(base_path, config, adapter, device)
    bridge = ProgressBridge(progress, cancel)  # the method's builder tells it how to count tokens
    with quiet_transformers(), _quiet_datasets():
        trainer = get_method(config.method).build_trainer(
            model, tokenizer, train_rows, eval_rows, config, device, bridge
        )
    trainer.remove_callback(
        PrinterCallback
    )  # with tqdm off it prints every log dict; progress goes to `bridge`
    return trainer, bridge, trainer.model


def _target_modules(model: Any) -> list[str] | None:
    peft_config = getattr(model, "peft_config", None)
    if not peft_config:
        return None
    targets = next(iter(peft_config.values())).target_modules
    return sorted(targets) if isinstance(targets, (set, list, tuple)) else [str(targets)]


def _finish(
    config: FinetuneConfig,
    name: str,
    adapter: str,
    base_path: Path | str,
    tokenizer: Any,
    model: Any,
    weights: dict[str, Any] | None,
    bridge: Any,
    metrics: dict[str, Any],
    notes: list[str],
    started: float,
    progress: ProgressCallback | None,
) -> FinetuneResult:
    from llmtutor.training.finetune.model_setup import merge_adapter, save_model

    out = Path(config.output_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    staging = out / ".staging"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        emit(progress, "save", "saving the trained weights")
        written: list[str] = []
        if adapter == "full":
            save_model(model, tokenizer, staging / FULL_DIR, weights)
            model_dir, adapter_dir, kind = FULL_DIR, None, "full"
            written.append(FULL_DIR)
        else:
            model.save_pretrained(str(staging / ADAPTER_DIR), state_dict=weights)
            tokenizer.save_pretrained(str(staging / ADAPTER_DIR))
            adapter_dir, model_dir, kind = ADAPTER_DIR, None, "adapter"
            written.append(ADAPTER_DIR)
            if config.merge:
                emit(progress, "merge", "merging the adapter into the base weights")
                merge_adapter(base_path, staging / ADAPTER_DIR, staging / MERGED_DIR, tokenizer)
                model_dir, kind = MERGED_DIR, "merged"
                written.append(MERGED_DIR)
        metrics["runtime_s"] = time.perf_counter() - started
        metrics["peak_rss_mb"] = artifacts.peak_rss_mb()
        training_config = config.model_dump(mode="json") | {
            "resolved": {
                "base_model_path": str(base_path),
                "adapter": adapter,
                "learning_rate": config.lr,
                "name": name,
                "device": metrics["device"],
                "checkpoint_dir": str(config.checkpoints),
            }
        }
        artifacts.write_json(staging / TRAINING_CONFIG, training_config)
        artifacts.plot_losses(
            staging / LOSS_CURVE,
            bridge.train_losses,
            bridge.eval_losses,
            f"{name}: {config.method.upper()} ({adapter})",
        )
        artifacts.write_json(staging / METRICS, metrics)
        base = _base_label(config)
        card = artifacts.model_card(
            config, name, base, adapter, metrics, model_dir, notes, metrics["chat_template"]
        )
        (staging / MODEL_CARD).write_text(card, encoding="utf-8")
        artifacts.move_into(staging, out, written + [TRAINING_CONFIG, LOSS_CURVE, METRICS, MODEL_CARD])
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if not config.keep_checkpoints:
        remove_checkpoints(config)
    lineage = {
        "parents": [base],
        "method": f"{config.method}-{adapter}",
        "parameters": {"lr": config.lr, "steps": metrics["steps"]}
        | ({"r": config.lora_r} if adapter != "full" else {}),
    }
    path = model_dir or adapter_dir
    emit(progress, "save", f"finished: {out / str(path)}", step=metrics["steps"], total=metrics["steps"])
    return FinetuneResult(
        output_dir=str(out),
        name=name,
        method=config.method,
        adapter=adapter,
        base_model=base,
        model_dir=model_dir,
        adapter_dir=adapter_dir,
        metrics=metrics,
        notes=notes,
        registration={"name": name, "kind": kind, "path": path, "base": base, "lineage": lineage},
    )
