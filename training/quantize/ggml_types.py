"""llama.cpp quantization types: which ggml type each tensor gets, and the quantizer itself.

The quantizer is llama.cpp's own `ggml_quantize_chunk`, called through ctypes from the ggml
that the `xllamacpp` wheel ships (the same build the tutor chats with, so exporter and runtime
are one pinned llama.cpp version). Why not `llama_model_quantize`: xllamacpp does not export it,
and llama-cpp-python, which does, compiles llama.cpp from source for minutes on install. The
PyPI `gguf` package only dequantizes k-quants, it cannot make them.

The per-tensor choice ("Q4_K_M" is a mix, not one type) mirrors llama.cpp's
`llama_tensor_get_type` for dense Llama-family models: more bits for the output/embedding
matrix and for some attn_v/ffn_down layers, and the fallbacks for rows that are not a multiple
of the 256-value k-quant super-block (SmolLM2's 576-wide rows fall back to Q5_0/Q5_1/Q8_0 just
as `llama-quantize` does).
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from llmtutor.errors import ToolInputError

QK_K = 256

# file type name -> (default ggml type name, gguf.LlamaFileType member name)
FILE_TYPES: dict[str, tuple[str, str]] = {
    "F32": ("F32", "ALL_F32"),
    "F16": ("F16", "MOSTLY_F16"),
    "BF16": ("BF16", "MOSTLY_BF16"),
    "Q8_0": ("Q8_0", "MOSTLY_Q8_0"),
    "Q6_K": ("Q6_K", "MOSTLY_Q6_K"),
    "Q5_K_M": ("Q5_K", "MOSTLY_Q5_K_M"),
    "Q5_K_S": ("Q5_K", "MOSTLY_Q5_K_S"),
    "Q5_1": ("Q5_1", "MOSTLY_Q5_1"),
    "Q5_0": ("Q5_0", "MOSTLY_Q5_0"),
    "Q4_K_M": ("Q4_K", "MOSTLY_Q4_K_M"),
    "Q4_K_S": ("Q4_K", "MOSTLY_Q4_K_S"),
    "Q4_1": ("Q4_1", "MOSTLY_Q4_1"),
    "Q4_0": ("Q4_0", "MOSTLY_Q4_0"),
    "IQ4_NL": ("IQ4_NL", "MOSTLY_IQ4_NL"),
    "IQ4_XS": ("IQ4_XS", "MOSTLY_IQ4_XS"),
    "Q3_K_L": ("Q3_K", "MOSTLY_Q3_K_L"),
    "Q3_K_M": ("Q3_K", "MOSTLY_Q3_K_M"),
    "Q3_K_S": ("Q3_K", "MOSTLY_Q3_K_S"),
    "Q2_K": ("Q2_K", "MOSTLY_Q2_K"),
}
UNQUANTIZED = ("F32", "F16", "BF16")
# A k-quant/i-quant row must hold whole 256-value super-blocks; llama.cpp falls back to these.
_FALLBACK = {
    "Q2_K": "IQ4_NL",
    "Q3_K": "IQ4_NL",
    "IQ4_XS": "IQ4_NL",
    "Q4_K": "Q5_0",
    "Q5_K": "Q5_1",
    "Q6_K": "Q8_0",
}


def normalize_file_type(name: str) -> str:
    key = name.strip().upper().replace("-", "_")
    if key not in FILE_TYPES:
        # ValueError: raised inside pydantic validators, which turn it into a field error
        raise ValueError(f"unknown GGUF type {name!r}; use one of: " + ", ".join(FILE_TYPES))
    return key


def _use_more_bits(i: int, n: int) -> bool:
    # llama.cpp: the first and last eighth of the layers, and every third layer in between
    return i < n // 8 or i >= 7 * n // 8 or (i - n // 8) % 3 == 2


@dataclass
class TypePlan:
    """Which ggml type every tensor of one export gets (by GGUF tensor name)."""

    file_type: str
    n_layers: int
    tied_output: bool  # no output.weight: token_embd doubles as the output matrix

    def tensor_type(self, name: str, shape: tuple[int, ...]) -> str:
        if len(shape) < 2 or not name.endswith(".weight"):
            return "F32"  # norms and biases stay exact, as in llama.cpp
        ftype = self.file_type
        default = FILE_TYPES[ftype][0]
        if ftype in UNQUANTIZED:
            return default
        n_per_row = shape[-1]
        layer = int(name.split(".")[1]) if name.startswith("blk.") else -1
        chosen = default
        is_output = name == "output.weight" or (self.tied_output and name == "token_embd.weight")
        if is_output:
            chosen = "Q8_0" if n_per_row % QK_K else (default if default == "Q8_0" else "Q6_K")
        elif ".attn_v." in name:
            chosen = self._attn_v(ftype, layer, default)
        elif ".ffn_down." in name:
            chosen = self._ffn_down(ftype, layer, default)
        elif ".attn_output." in name:
            chosen = {"Q2_K": "Q3_K", "Q3_K_M": "Q4_K", "Q3_K_L": "Q5_K"}.get(ftype, default)
        if chosen in _FALLBACK and n_per_row % QK_K:
            chosen = _FALLBACK[chosen]
        return chosen

    def _attn_v(self, ftype: str, i: int, default: str) -> str:
        n = self.n_layers
        if ftype == "Q2_K":
            return "Q3_K"
        if ftype == "Q3_K_M":
            return "Q5_K" if i < 2 else "Q4_K"
        if ftype == "Q3_K_L":
            return "Q5_K"
        if ftype in ("Q4_K_M", "Q5_K_M") and _use_more_bits(i, n):
            return "Q6_K"
        if ftype == "Q4_K_S" and i < 4:
            return "Q5_K"
        return default

    def _ffn_down(self, ftype: str, i: int, default: str) -> str:
        n = self.n_layers
        if ftype == "Q2_K":
            return "Q3_K"
        if ftype == "Q3_K_M":
            return "Q5_K" if i < n // 16 else ("Q4_K" if _use_more_bits(i, n) else "Q3_K")
        if ftype == "Q3_K_L":
            return "Q5_K"
        if ftype in ("Q4_K_M", "Q5_K_M") and _use_more_bits(i, n):
            return "Q6_K"
        if ftype == "Q4_K_S" and i < n // 8:
            return "Q5_K"
        return default


@lru_cache(maxsize=1)
def _ggml() -> Any:
    try:
        import xllamacpp.xllamacpp as ext
    except ImportError as exc:  # pragma: no cover - a dependency of the project
        raise ToolInputError(
            "llama.cpp (xllamacpp) is not installed", "run `pip install xllamacpp` or `make setup`"
        ) from exc
    lib = ctypes.CDLL(ext.__file__)
    lib.ggml_quantize_chunk.restype = ctypes.c_size_t
    lib.ggml_quantize_chunk.argtypes = [
        ctypes.c_int,
        ctypes.POINTER(ctypes.c_float),
        ctypes.c_void_p,
        ctypes.c_int64,
        ctypes.c_int64,
        ctypes.c_int64,
        ctypes.POINTER(ctypes.c_float),
    ]
    lib.ggml_quantize_requires_imatrix.restype = ctypes.c_bool
    lib.ggml_quantize_requires_imatrix.argtypes = [ctypes.c_int]
    lib.ggml_quantize_init.argtypes = [ctypes.c_int]
    return lib


def quantize_matrix(data: Any, type_name: str, importance: Any = None) -> Any:
    """A float32 matrix [rows, n_per_row] as raw bytes of ggml type `type_name` (uint8 [rows, bytes]).

    `importance`: llama.cpp's importance matrix for this tensor (mean squared activation of
    every input column), which the quantizer uses to weigh the rounding error per column."""
    import gguf
    import numpy as np

    qtype = gguf.GGMLQuantizationType[type_name]
    rows, n_per_row = data.shape
    block, type_size = gguf.GGML_QUANT_SIZES[qtype]
    if n_per_row % block:
        raise ToolInputError(
            f"rows of {n_per_row} values cannot be stored as {type_name} (blocks of {block})",
            "choose another GGUF type",
        )
    lib = _ggml()
    if lib.ggml_quantize_requires_imatrix(int(qtype)) and importance is None:
        raise ToolInputError(f"{type_name} needs an importance matrix", "set imatrix=true")
    lib.ggml_quantize_init(int(qtype))
    src = np.ascontiguousarray(data, dtype=np.float32)
    out = np.empty((rows, n_per_row // block * type_size), dtype=np.uint8)
    imatrix = None
    if importance is not None:
        imp = np.ascontiguousarray(importance, dtype=np.float32)
        imatrix = imp.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
    written = lib.ggml_quantize_chunk(
        int(qtype),
        src.ctypes.data_as(ctypes.POINTER(ctypes.c_float)),
        out.ctypes.data,
        0,
        rows,
        n_per_row,
        imatrix,
    )
    if written != out.nbytes:  # pragma: no cover - would mean an ABI mismatch with this ggml build
        raise RuntimeError(f"ggml_quantize_chunk wrote {written} bytes, expected {out.nbytes}")
    return out


def encode_tensor(data: Any, type_name: str, importance: Any = None) -> tuple[Any, Any]:
    """(array, raw_dtype) ready for `GGUFWriter.add_tensor`."""
    import gguf
    import numpy as np

    if type_name == "F32":
        return np.ascontiguousarray(data, dtype=np.float32), None
    if type_name == "F16":
        return np.ascontiguousarray(data, dtype=np.float16), None
    if type_name == "BF16":
        return gguf.quants.quantize(
            np.asarray(data, dtype=np.float32), gguf.GGMLQuantizationType.BF16
        ), gguf.GGMLQuantizationType.BF16
    flat = np.asarray(data, dtype=np.float32).reshape(-1, data.shape[-1])
    return quantize_matrix(flat, type_name, importance), gguf.GGMLQuantizationType[type_name]
