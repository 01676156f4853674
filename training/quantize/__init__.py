"""Quantization, as in the course's quantization notebooks, measured on the learner's model.

    result = run(QuantizeConfig(model="course-sft", methods=["absmax", "int4", "bnb_nf4", "gguf"],
                                gguf_types=["Q8_0", "Q4_K_M"]))

Every run starts with the source model in full precision (perplexity and tokens/s: the row all
others are compared with; `measure.py`), then for each method:
- "absmax" / "zeropoint" / "int4": the by-hand lab in plain torch (`lab.py`, `weights.py`), with
  per-layer errors and a before/after weight histogram;
- "bnb_int8" / "bnb_nf4": bitsandbytes load-time quantization (`library_methods.py`, `bnb.py`);
- "gguf": export to llama.cpp types (`gguf_rows.py`, `gguf_export.py`), optionally with an
  importance matrix, checked by llama.cpp itself (`gguf_check.py`), with an Ollama Modelfile;
  the first type is registered as a model the tutor can chat with (llamacpp backend);
- "gptq" / "awq": calibrated 4-bit (`library_methods.py`, `calibrated.py`); need CUDA and their
  optional packages, refused up front otherwise (`check_methods`).
This module is the recipe: it checks the methods, runs them in that order and writes the
report; `register_kind` makes it a job kind (the job row names this module).
"""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

from llmtutor.errors import ToolInputError
from llmtutor.jobs.kinds import register_kind
from llmtutor.training.progress import ProgressCallback, check_cancelled, emit
from llmtutor.training.quantize.config import BNB, LAB, QuantizeConfig
from llmtutor.training.quantize.gguf_rows import gguf_rows, source_gguf
from llmtutor.training.quantize.lab import lab_row
from llmtutor.training.quantize.library_methods import bnb_row, calibrated_row
from llmtutor.training.quantize.measure import hf_ppl, hf_speed, load_source, mb
from llmtutor.training.quantize.result import QuantizeResult, QuantRow

__all__ = ["QuantizeConfig", "QuantizeResult", "QuantRow", "run", "check_methods", "source_gguf"]


def check_methods(config: QuantizeConfig, device: str) -> list[str]:
    """Refuse what cannot run here before any work; returns notes for what runs differently."""
    import importlib.util

    notes = []
    for method in ("gptq", "awq"):
        if method not in config.methods:
            continue
        package = {"gptq": "gptqmodel", "awq": "awq"}[method]
        if not device.startswith("cuda"):
            raise ToolInputError(
                f"{method.upper()} quantization needs a CUDA GPU (this run is on {device})",
                "use gguf (Q4_K_M) or bnb_nf4 on CPU, or run on a GPU machine",
            )
        if importlib.util.find_spec(package) is None:
            raise ToolInputError(
                f"{method.upper()} needs the optional package {package!r}",
                f"pip install {package} (CUDA build), or use gguf / bnb_nf4",
            )
    if any(m in BNB for m in config.methods) and not device.startswith("cuda"):
        notes.append(
            "bitsandbytes ran on its CPU kernels: correct but slow; on a GPU the same formats are the fast path"
        )
    return notes


def run(
    config: QuantizeConfig, progress: ProgressCallback | None = None, cancel: threading.Event | None = None
) -> QuantizeResult:
    import torch

    from llmtutor.hf_models import pick_device
    from llmtutor.training.evaluate.perplexity import load_text, tokenize

    started = time.perf_counter()
    device = pick_device(config.device)
    notes = check_methods(config, device)
    torch.manual_seed(config.seed)
    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    work = out / ".work"
    work.mkdir(exist_ok=True)
    emit(progress, "load", f"loading {config.model or 'smollm2'}")
    model, tokenizer, folder = load_source(config, device, work)
    every_id = tokenize(tokenizer, load_text(config.perplexity_text), None)
    ids = every_id[: config.perplexity_tokens]
    # The importance matrix is calibrated on the text AFTER the scored tokens, so the GGUF
    # perplexity does not flatter it (falls back to the scored text when nothing is left).
    calibration = every_id[config.perplexity_tokens : config.perplexity_tokens + 4096]
    calibration = calibration if len(calibration) >= 64 else ids
    window = min(config.perplexity_window, len(ids))
    n_params = sum(p.numel() for p in model.parameters())
    src_ppl = hf_ppl(model, ids, window, "source", progress, cancel)
    src_speed = hf_speed(model, tokenizer, config.prompt)
    source_label = config.model or "smollm2"
    rows = [
        QuantRow(
            label=f"source ({str(next(model.parameters()).dtype).removeprefix('torch.')})",
            method="source",
            bits_per_weight=next(model.parameters()).element_size() * 8.0,
            size_mb=mb(sum(p.numel() * p.element_size() for p in model.parameters())),
            memory_mb=mb(model.get_memory_footprint()),
            perplexity=src_ppl,
            tokens_per_s=src_speed,
            speed_ratio=1.0,
        )
    ]

    def add(row: QuantRow) -> None:
        if row.perplexity is not None:
            row.perplexity_delta_pct = 100 * (row.perplexity / src_ppl - 1)
        if row.tokens_per_s is not None:
            row.speed_ratio = row.tokens_per_s / src_speed
        rows.append(row)

    result = QuantizeResult(
        output_dir=str(out),
        source=source_label,
        source_path=str(folder),
        device=device,
        rows=[],
        perplexity_setup=f"{len(ids)} tokens of {'the course notes' if config.perplexity_text == 'course' else config.perplexity_text}, "
        f"disjoint {window}-token windows",
        notes=notes,
    )
    try:
        for method in [m for m in config.methods if m in LAB]:
            check_cancelled(cancel)
            add(lab_row(method, model, tokenizer, ids, window, config, result, out, progress, cancel))
        for method in [m for m in config.methods if m in BNB]:
            check_cancelled(cancel)
            add(bnb_row(method, folder, tokenizer, ids, window, config, device, progress, cancel))
        for method in [m for m in config.methods if m in ("gptq", "awq")]:
            check_cancelled(cancel)
            add(
                calibrated_row(
                    method, folder, tokenizer, ids, calibration, window, config, out, progress, cancel
                )
            )
        if "gguf" in config.methods:
            for row in gguf_rows(
                model,
                tokenizer,
                folder,
                ids,
                calibration,
                window,
                n_params,
                config,
                result,
                out,
                progress,
                cancel,
            ):
                add(row)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result.rows = rows
    result.seconds = time.perf_counter() - started
    (out / "quantize_result.json").write_text(result.model_dump_json(indent=2), encoding="utf-8")
    (out / "quantize_report.md").write_text(result.to_markdown(), encoding="utf-8")
    emit(progress, "save", f"finished in {result.seconds:.0f} s")
    return result


register_kind("quantize", QuantizeConfig, run)
