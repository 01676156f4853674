"""Quantization, as in the course's quantization notebooks, measured on the learner's model.

    result = run(QuantizeConfig(model="course-sft", methods=["absmax", "int4", "bnb_nf4", "gguf"],
                                gguf_types=["Q8_0", "Q4_K_M"]))

Every run starts with the source model in full precision (perplexity and tokens/s: the row all
others are compared with), then for each method:
- "absmax" / "zeropoint" / "int4": the by-hand lab in plain torch (`weights.py`), with per-layer
  errors and a before/after weight histogram;
- "bnb_int8" / "bnb_nf4": bitsandbytes load-time quantization (`bnb.py`);
- "gguf": export to llama.cpp types (`gguf_export.py`), optionally with an importance matrix,
  checked by llama.cpp itself (`gguf_check.py`), with an Ollama Modelfile; the first type is
  registered as a model the tutor can chat with (llamacpp backend);
- "gptq" / "awq": calibrated 4-bit (`calibrated.py`); need CUDA and their optional packages,
  refused up front otherwise.
"""

from __future__ import annotations

import copy
import shutil
import threading
import time
from pathlib import Path
from typing import Any

from llmtutor.errors import ToolInputError
from llmtutor.jobs.kinds import register_kind
from llmtutor.training.progress import ProgressCallback, check_cancelled, emit
from llmtutor.training.quantize.config import BNB, LAB, QuantizeConfig
from llmtutor.training.quantize.result import QuantizeResult, QuantRow, type_counts

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


def source_gguf(ref: str, models_dir: Path) -> Path | None:
    """The GGUF a model descends from (bundled SmolLM2 → its file), to copy its tokenizer block."""
    from llmtutor.assets import default_gguf_path
    from llmtutor.hf_models import DEFAULT_HF_FOLDER, is_default_model
    from llmtutor.model_registry import find_model
    from llmtutor.training.evaluate.loading import _gguf_source

    seen: set[str] = set()
    while ref not in seen:
        seen.add(ref)
        if is_default_model(ref) or ref == DEFAULT_HF_FOLDER:
            return default_gguf_path()
        path = Path(ref).expanduser()
        if path.is_file() and path.suffix.lower() == ".gguf":
            return path
        if path.is_dir():
            return _gguf_source(path)
        entry = find_model(models_dir, ref)
        if entry is None:
            return None
        if entry.kind == "gguf":
            return Path(entry.path)
        parents = (entry.meta.get("lineage") or {}).get("parents") or ([entry.base] if entry.base else [])
        if not parents:
            return _gguf_source(Path(entry.path)) if Path(entry.path).is_dir() else None
        ref = str(parents[0])
    return None


def _load_source(config: QuantizeConfig, device: str, work: Path) -> tuple[Any, Any, Path]:
    """(model, tokenizer, HF folder) of the source; adapters are merged into `work` first."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from llmtutor.hf_models import pick_dtype, quiet_transformers, resolve_hf_model
    from llmtutor.training.evaluate.config import ModelSpec
    from llmtutor.training.evaluate.loading import _kind, load_model

    if _kind(config.model, config.models_dir) == "adapter":
        loaded = load_model(ModelSpec(model=config.model), config.models_dir, "cpu")
        folder = work / "merged-source"
        loaded.model.save_pretrained(folder)
        loaded.tokenizer.save_pretrained(folder)
    else:
        folder = resolve_hf_model(config.model or None, config.models_dir)
        if not isinstance(folder, Path):
            raise ToolInputError(
                f"{config.model!r} is not a local model", "download it first; quantization runs offline"
            )
    with quiet_transformers():
        model = (
            AutoModelForCausalLM.from_pretrained(str(folder), dtype=pick_dtype(None, device))
            .to(device)
            .eval()
        )
        tokenizer = AutoTokenizer.from_pretrained(str(folder))
    return model, tokenizer, Path(folder)


def _hf_ppl(
    model: Any,
    ids: list[int],
    window: int,
    label: str,
    progress: ProgressCallback | None,
    cancel: threading.Event | None,
) -> float:
    from llmtutor.training.evaluate.perplexity import perplexity, sliding_window_nll

    return perplexity(
        *sliding_window_nll(model, ids, window, window, progress=progress, cancel=cancel, label=label)
    )


def _hf_speed(model: Any, tokenizer: Any, prompt: str, new_tokens: int = 32) -> float:
    import torch

    device = next(model.parameters()).device
    inputs = tokenizer(prompt, return_tensors="pt").to(device)
    with torch.no_grad():
        model.generate(
            **inputs, max_new_tokens=2, do_sample=False, pad_token_id=tokenizer.eos_token_id
        )  # warm-up
        start = time.perf_counter()
        model.generate(
            **inputs,
            max_new_tokens=new_tokens,
            min_new_tokens=new_tokens,
            do_sample=False,
            pad_token_id=tokenizer.eos_token_id,
        )
    return new_tokens / (time.perf_counter() - start)


def _mb(n_bytes: float) -> float:
    return n_bytes / 2**20


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
    model, tokenizer, folder = _load_source(config, device, work)
    every_id = tokenize(tokenizer, load_text(config.perplexity_text), None)
    ids = every_id[: config.perplexity_tokens]
    # The importance matrix is calibrated on the text AFTER the scored tokens, so the GGUF
    # perplexity does not flatter it (falls back to the scored text when nothing is left).
    calibration = every_id[config.perplexity_tokens : config.perplexity_tokens + 4096]
    calibration = calibration if len(calibration) >= 64 else ids
    window = min(config.perplexity_window, len(ids))
    n_params = sum(p.numel() for p in model.parameters())
    src_ppl = _hf_ppl(model, ids, window, "source", progress, cancel)
    src_speed = _hf_speed(model, tokenizer, config.prompt)
    source_label = config.model or "smollm2"
    rows = [
        QuantRow(
            label=f"source ({str(next(model.parameters()).dtype).removeprefix('torch.')})",
            method="source",
            bits_per_weight=next(model.parameters()).element_size() * 8.0,
            size_mb=_mb(sum(p.numel() * p.element_size() for p in model.parameters())),
            memory_mb=_mb(model.get_memory_footprint()),
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
            add(_lab(method, model, tokenizer, ids, window, config, result, out, progress, cancel))
        for method in [m for m in config.methods if m in BNB]:
            check_cancelled(cancel)
            add(_bnb(method, folder, tokenizer, ids, window, config, device, progress, cancel))
        for method in [m for m in config.methods if m in ("gptq", "awq")]:
            check_cancelled(cancel)
            add(
                _calibrated(
                    method, folder, tokenizer, ids, calibration, window, config, out, progress, cancel
                )
            )
        if "gguf" in config.methods:
            for row in _gguf(
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


def _lab(
    method: str,
    model: Any,
    tokenizer: Any,
    ids: list[int],
    window: int,
    config: QuantizeConfig,
    result: QuantizeResult,
    out: Path,
    progress: ProgressCallback | None,
    cancel: threading.Event | None,
) -> QuantRow:
    from llmtutor.training.quantize.weights import bits_per_weight, quantize_model_weights, write_histogram

    emit(progress, "quantize", f"{method}: quantizing every linear weight of the decoder layers")
    copy_ = copy.deepcopy(model)
    errors, samples = quantize_model_weights(copy_, method, config.group_size)
    worst = max(errors, key=lambda e: e.relative_error)
    mean = sum(e.relative_error for e in errors) / len(errors)
    result.layer_errors[method] = {
        "mean_pct": 100 * mean,
        "max_pct": 100 * worst.relative_error,
        "worst": worst.name,
        "layers": len(errors),
    }
    plot = f"weights_{method}.png"
    if write_histogram(samples, method, out / plot):
        result.files[f"histogram_{method}"] = plot
    ppl = _hf_ppl(copy_, ids, window, method, progress, cancel)
    n_per_row = errors[0].shape[-1]
    label = {
        "absmax": "absmax int8 (per row)",
        "zeropoint": "zero-point int8 (per row)",
        "int4": f"int4 absmax (groups of {config.group_size})",
    }[method]
    del copy_
    return QuantRow(
        label=label,
        method=method,
        bits_per_weight=bits_per_weight(method, n_per_row, config.group_size),
        perplexity=ppl,
        weight_error_pct=100 * mean,
        engine="torch (fake-quantized)",
        note="dequantized for compute: shows the rounding error, not a speed-up",
    )


def _bnb(
    method: str,
    folder: Path,
    tokenizer: Any,
    ids: list[int],
    window: int,
    config: QuantizeConfig,
    device: str,
    progress: ProgressCallback | None,
    cancel: threading.Event | None,
) -> QuantRow:
    from llmtutor.training.quantize.bnb import bits_per_weight, load_bnb

    emit(progress, "quantize", f"{method}: loading with bitsandbytes on {device}")
    model = load_bnb(folder, method, device, config.double_quant)
    ppl = _hf_ppl(model, ids, window, method, progress, cancel)
    speed = _hf_speed(model, tokenizer, config.prompt)
    label = (
        "bitsandbytes LLM.int8()"
        if method == "bnb_int8"
        else f"bitsandbytes NF4{' + double quant' if config.double_quant else ''}"
    )
    memory = _mb(model.get_memory_footprint())
    del model
    return QuantRow(
        label=label,
        method=method,
        bits_per_weight=bits_per_weight(method, config.double_quant),
        memory_mb=memory,
        perplexity=ppl,
        tokens_per_s=speed,
        engine=f"bitsandbytes ({device})",
    )


def _calibrated(
    method: str,
    folder: Path,
    tokenizer: Any,
    ids: list[int],
    calibration: list[int],
    window: int,
    config: QuantizeConfig,
    out: Path,
    progress: ProgressCallback | None,
    cancel: threading.Event | None,
) -> QuantRow:
    from llmtutor.training.quantize.calibrated import (
        calibration_texts,
        folder_mb,
        quantize_awq,
        quantize_gptq,
    )

    emit(progress, "quantize", f"{method.upper()}: calibrating on {len(calibration)} tokens (CUDA)")
    target = out / f"{method}-int4"
    quantize = quantize_gptq if method == "gptq" else quantize_awq
    model = quantize(folder, tokenizer, calibration_texts(tokenizer, calibration), target, config.group_size)
    ppl = _hf_ppl(model, ids, window, method, progress, cancel)
    speed = _hf_speed(model, tokenizer, config.prompt)
    memory = _mb(model.get_memory_footprint())
    del model
    return QuantRow(
        label=f"{method.upper()} int4 (groups of {config.group_size})",
        method=method,
        bits_per_weight=4 + 32 / config.group_size,
        size_mb=folder_mb(target),
        memory_mb=memory,
        perplexity=ppl,
        tokens_per_s=speed,
        engine=f"{method} (cuda)",
    )


def _gguf(
    model: Any,
    tokenizer: Any,
    folder: Path,
    ids: list[int],
    calibration: list[int],
    window: int,
    n_params: int,
    config: QuantizeConfig,
    result: QuantizeResult,
    out: Path,
    progress: ProgressCallback | None,
    cancel: threading.Event | None,
) -> list[QuantRow]:
    from llmtutor.training.evaluate.llamacpp_ppl import llamacpp_window_nll
    from llmtutor.training.evaluate.perplexity import perplexity
    from llmtutor.training.quantize.gguf_check import check_gguf
    from llmtutor.training.quantize.gguf_export import export_gguf
    from llmtutor.training.quantize.imatrix import compute_imatrix
    from llmtutor.training.quantize.modelfile import modelfile

    importance = compute_imatrix(model, calibration, window, progress, cancel) if config.imatrix else None
    tokenizer_gguf = source_gguf(config.model, config.models_dir)
    stem = _safe(config.name or (config.model and Path(config.model).name) or "smollm2")
    rows = []
    for ftype in config.gguf_types:
        check_cancelled(cancel)
        file_name = f"{stem}-{ftype}.gguf"
        types = export_gguf(
            folder,
            out / file_name,
            ftype,
            name=stem,
            tokenizer_gguf=tokenizer_gguf,
            imatrix=importance,
            progress=progress,
            cancel=cancel,
        )
        result.files[f"gguf_{ftype}"] = file_name
        result.type_mix[ftype] = type_counts(types)
        emit(progress, "check", f"{ftype}: llama.cpp smoke test (tokenizer, template, EOS, speed)")
        check = check_gguf(out / file_name, tokenizer, config.prompt)
        result.gguf_checks[ftype] = check
        ppl = perplexity(
            *llamacpp_window_nll(out / file_name, ids, window, window, progress, cancel, label=ftype)
        )
        size = (out / file_name).stat().st_size
        rows.append(
            QuantRow(
                label=f"GGUF {ftype}{' + imatrix' if importance else ''}",
                method="gguf",
                bits_per_weight=8 * size / n_params,
                size_mb=_mb(size),
                memory_mb=_mb(size),
                perplexity=ppl,
                tokens_per_s=check.tokens_per_s,
                engine="llama.cpp (CPU)",
                note="memory: the file is memory-mapped, plus a small KV cache",
            )
        )
        registration = {
            "name": f"{stem}-{ftype.lower()}"
            if not config.name or len(config.gguf_types) > 1
            else config.name,
            "kind": "gguf",
            "path": file_name,
            "base": source_label_of(config),
            "lineage": {
                "parents": [source_label_of(config)],
                "method": "quantize",
                "parameters": {"type": ftype, "imatrix": bool(importance)},
            },
        }
        result.registrations.append(registration)
    first = config.gguf_types[0]
    (out / "Modelfile").write_text(modelfile(result.files[f"gguf_{first}"], tokenizer), encoding="utf-8")
    result.files["modelfile"] = "Modelfile"
    result.registration = result.registrations[0]
    if importance:
        same = calibration is ids
        result.notes.append(
            f"importance matrix from {len(calibration)} calibration tokens "
            + (
                "(the scored text itself: the text is short, so its perplexity flatters the imatrix)"
                if same
                else "(text after the scored tokens, so the perplexity is not flattered)"
            )
        )
    return rows


def source_label_of(config: QuantizeConfig) -> str:
    from llmtutor.hf_models import DEFAULT_HF_FOLDER, is_default_model

    return DEFAULT_HF_FOLDER if is_default_model(config.model) else config.model


def _safe(name: str) -> str:
    import re

    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.")[:60] or "model"


register_kind("quantize", QuantizeConfig, run)
