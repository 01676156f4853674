"""Export a Hugging Face Llama-family model to a GGUF file llama.cpp and Ollama can run.

Written with the PyPI `gguf` package's `GGUFWriter` (llama.cpp's own writer library), one
tensor at a time from the safetensors files, quantized on the way by llama.cpp's kernels
(`ggml_types.py`). Why not llama.cpp's `convert_hf_to_gguf.py`: it is not on PyPI and only works
with the `gguf-py` of its own source tree (measured: a version mismatch breaks it, the most
reported export failure); for the Llama architecture the conversion is small enough to own.

What the "export doctor" must keep intact, and how:
- Q/K weights: HF stores rotary halves split ("rotate_half"), llama.cpp interleaved; they are
  permuted exactly as llama.cpp's converter does (a wrong permutation still loads and babbles).
- Tokenizer: when the model descends from a GGUF (the bundled SmolLM2 and everything fine-tuned
  or merged from it), its tokenizer block is copied verbatim from that GGUF, so the pre-tokenizer
  name and token types are llama.cpp's own; otherwise it is built from tokenizer.json.
- Chat template, BOS/EOS/PAD ids and add_bos come from the model's own tokenizer (a fine-tune
  may have changed the template); `gguf_check.py` then verifies tokenization, template and EOS
  through llama.cpp itself.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from llmtutor.errors import ToolInputError
from llmtutor.training.progress import ProgressCallback, check_cancelled, emit
from llmtutor.training.quantize.ggml_types import FILE_TYPES, TypePlan, encode_tensor

SUPPORTED_ARCHS = ("llama", "mistral")  # same GGUF layout ("llama" in llama.cpp)


def _permute(weights: Any, n_head: int) -> Any:
    # llama.cpp's convert_hf_to_gguf.LlamaModel.permute
    return (
        weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
        .swapaxes(1, 2)
        .reshape(weights.shape)
    )


def read_config(hf_dir: Path) -> dict[str, Any]:
    try:
        config = json.loads((Path(hf_dir) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ToolInputError(
            f"{hf_dir} has no readable config.json", "export a Hugging Face model folder"
        ) from exc
    if config.get("model_type") not in SUPPORTED_ARCHS:
        raise ToolInputError(
            f"GGUF export supports Llama-architecture models ({', '.join(SUPPORTED_ARCHS)}), not {config.get('model_type')!r}",
            "for other architectures use llama.cpp's convert_hf_to_gguf.py from a matching llama.cpp checkout",
        )
    return config


def _tensors(hf_dir: Path) -> Any:
    """(HF name, float32 numpy array) for every stored tensor, one at a time."""
    from safetensors import safe_open

    files = sorted(Path(hf_dir).glob("*.safetensors"))
    if not files:
        raise ToolInputError(
            f"{hf_dir} has no .safetensors weights", "save the model with save_pretrained first"
        )
    for file in files:
        with safe_open(str(file), framework="pt") as handle:
            for key in handle.keys():  # noqa: SIM118 - safe_open is not a dict
                yield key, handle.get_tensor(key).float().numpy()


def gguf_tensor_count(config: dict[str, Any]) -> int:
    tied = config.get("tie_word_embeddings", False)
    return 2 + (0 if tied else 1) + 9 * int(config["num_hidden_layers"])


def export_gguf(
    hf_dir: Path,
    out_path: Path,
    file_type: str,
    *,
    name: str,
    tokenizer_gguf: Path | None = None,
    imatrix: dict[str, Any] | None = None,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
) -> dict[str, str]:
    """Write `out_path`; returns {gguf tensor name: ggml type} (the mix actually used)."""
    import gguf

    config = read_config(hf_dir)
    n_layers, n_head = int(config["num_hidden_layers"]), int(config["num_attention_heads"])
    n_kv = int(config.get("num_key_value_heads") or n_head)
    tied = bool(config.get("tie_word_embeddings", False))
    plan = TypePlan(file_type, n_layers, tied_output=tied)
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, n_layers)
    writer = gguf.GGUFWriter(str(out_path), arch="llama")
    _add_hparams(writer, config, name, file_type)
    add_tokenizer(writer, Path(hf_dir), tokenizer_gguf)
    types: dict[str, str] = {}
    total = gguf_tensor_count(config)
    for hf_name, data in _tensors(Path(hf_dir)):
        check_cancelled(cancel)
        if hf_name.endswith("rotary_emb.inv_freq") or (tied and hf_name == "lm_head.weight"):
            continue
        target = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if target is None:
            raise ToolInputError(
                f"unexpected tensor {hf_name!r} for a Llama model", "is this a Llama-family checkpoint?"
            )
        if target.endswith("attn_q.weight"):
            data = _permute(data, n_head)
        elif target.endswith("attn_k.weight"):
            data = _permute(data, n_kv)
        qtype = plan.tensor_type(target, data.shape)
        array, raw_dtype = encode_tensor(data, qtype, (imatrix or {}).get(target))
        writer.add_tensor(target, array, raw_dtype=raw_dtype)
        types[target] = qtype
        emit(progress, "export", f"{file_type}: {target} → {qtype}", step=len(types), total=total)
    missing = total - len(types)
    if missing:
        raise ToolInputError(
            f"{hf_dir} is missing {missing} tensors of a {n_layers}-layer Llama model",
            "is the checkpoint complete?",
        )
    out_path.parent.mkdir(parents=True, exist_ok=True)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return types


def _add_hparams(writer: Any, config: dict[str, Any], name: str, file_type: str) -> None:
    import gguf

    head_dim = int(config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"])
    writer.add_name(name)
    writer.add_quantized_by("llmtutor")
    writer.add_context_length(int(config.get("max_position_embeddings", 2048)))
    writer.add_embedding_length(int(config["hidden_size"]))
    writer.add_block_count(int(config["num_hidden_layers"]))
    writer.add_feed_forward_length(int(config["intermediate_size"]))
    writer.add_head_count(int(config["num_attention_heads"]))
    writer.add_head_count_kv(int(config.get("num_key_value_heads") or config["num_attention_heads"]))
    writer.add_layer_norm_rms_eps(float(config.get("rms_norm_eps", 1e-5)))
    writer.add_rope_freq_base(
        float(config.get("rope_theta") or (config.get("rope_parameters") or {}).get("rope_theta", 10000.0))
    )
    writer.add_rope_dimension_count(head_dim)
    writer.add_vocab_size(int(config["vocab_size"]))
    writer.add_file_type(gguf.LlamaFileType[FILE_TYPES[file_type][1]])
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)


def add_tokenizer(writer: Any, hf_dir: Path, tokenizer_gguf: Path | None) -> str:
    """Tokenizer block; returns where it came from ("copied from X" or "tokenizer.json")."""
    import gguf
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(hf_dir))
    if tokenizer_gguf is not None and _copy_tokenizer(writer, tokenizer_gguf, len(tokenizer)):
        source = f"copied from {tokenizer_gguf.name}"
    else:
        vocab = gguf.vocab.BpeVocab(hf_dir)
        tokens, _scores, types = (list(x) for x in zip(*vocab.all_tokens(), strict=True))
        # Special tokens that live inside the base vocabulary (SmolLM2's <|im_start|> is id 1)
        # come out of BpeVocab as NORMAL; llama.cpp only parses CONTROL/USER_DEFINED ones as one token.
        for token_id, added in tokenizer.added_tokens_decoder.items():
            if token_id < len(types):
                types[token_id] = gguf.TokenType.CONTROL if added.special else gguf.TokenType.USER_DEFINED
        writer.add_tokenizer_model("gpt2")
        writer.add_tokenizer_pre(_guess_pre(tokenizer))
        writer.add_token_list(tokens)
        writer.add_token_types(types)
        special = gguf.SpecialVocab(hf_dir, load_merges=True, n_vocab=len(tokens))
        special.chat_template = None  # added below from the tokenizer itself
        special.add_to_gguf(writer, quiet=True)
        source = "tokenizer.json"
    if tokenizer.chat_template:
        writer.add_chat_template(tokenizer.chat_template)
    return source


_TOKENIZER_IDS = (
    "tokenizer.ggml.bos_token_id",
    "tokenizer.ggml.eos_token_id",
    "tokenizer.ggml.padding_token_id",
    "tokenizer.ggml.add_bos_token",
)


def _copy_tokenizer(writer: Any, source: Path, vocab_size: int) -> bool:
    import gguf

    reader = gguf.GGUFReader(str(source))
    tokens = reader.fields.get("tokenizer.ggml.tokens")
    if tokens is None or len(tokens.data) != vocab_size:
        return False  # a different vocabulary: build it from tokenizer.json instead
    for key, field in reader.fields.items():
        if not key.startswith("tokenizer.") or key == "tokenizer.chat_template":
            continue
        sub_type = field.types[1] if len(field.types) > 1 else None
        writer.add_key_value(key, field.contents(), field.types[0], sub_type=sub_type)
    return True


def _guess_pre(tokenizer: Any) -> str:
    """llama.cpp's pre-tokenizer name for a BPE tokenizer not converted by llama.cpp itself.
    llama.cpp identifies it by hashing the tokenization of a test text; the few families a
    learner fine-tunes here are recognised by their special tokens, and `gguf_check` verifies
    the tokenization end to end, so a wrong guess is reported, not shipped silently."""
    vocab = tokenizer.get_vocab()
    if "<|begin_of_text|>" in vocab:
        return "llama-bpe"
    if "<|im_start|>" in vocab and len(vocab) > 150_000:
        return "qwen2"
    if "<|im_start|>" in vocab:
        return "smollm"
    return "gpt-2"
