"""The "gguf" method: llama.cpp files of the source model, checked, measured and registered.

For each requested type the source folder is exported (`gguf_export.py`, optionally with an
importance matrix calibrated on text after the scored tokens, `imatrix.py`), checked by
llama.cpp itself (`gguf_check.py`: tokenizer, template, EOS, speed) and scored with llama.cpp's
perplexity; each file is registered as a chat model with its lineage, and an Ollama Modelfile
is written for the first. `source_gguf` finds the GGUF a model descends from, whose tokenizer
block the export copies.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from llmtutor.training.progress import ProgressCallback, check_cancelled, emit
from llmtutor.training.quantize.config import QuantizeConfig
from llmtutor.training.quantize.measure import mb
from llmtutor.training.quantize.result import QuantizeResult, QuantRow, type_counts


def gguf_rows(
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
                size_mb=mb(size),
                memory_mb=mb(size),
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


def source_label_of(config: QuantizeConfig) -> str:
    from llmtutor.hf_models import DEFAULT_HF_FOLDER, is_default_model

    return DEFAULT_HF_FOLDER if is_default_model(config.model) else config.model


def _safe(name: str) -> str:
    import re

    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.")[:60] or "model"
