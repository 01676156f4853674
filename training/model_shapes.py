"""Model architectures for the memory estimator: a built-in table of popular
models, tolerant name matching, HF config.json reading, and a documented guess
when only a parameter count is known. Pure Python."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from llmtutor.errors import ToolInputError

DEFAULT_MODEL = "SmolLM2-135M"  # the tutor's own chat model


class Architecture(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    params: int  # total, all experts included
    layers: int
    hidden_size: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab_size: int
    intermediate_size: int
    tied_embeddings: bool = False
    gated_mlp: bool = True  # SwiGLU/GeGLU: gate, up, down; GPT-2 style: up, down
    experts: int = 1  # MoE experts per layer (all loaded)
    experts_per_token: int = 1

    @property
    def q_dim(self) -> int:
        return self.heads * self.head_dim

    @property
    def kv_dim(self) -> int:
        return self.kv_heads * self.head_dim

    def _module_shapes(self) -> dict[str, tuple[int, int, int]]:
        """LoRA-targetable module -> (in, out, copies per layer)."""
        h, i, e = self.hidden_size, self.intermediate_size, self.experts
        shapes = {
            "q_proj": (h, self.q_dim, 1),
            "k_proj": (h, self.kv_dim, 1),
            "v_proj": (h, self.kv_dim, 1),
            "o_proj": (self.q_dim, h, 1),
            "up_proj": (h, i, e),
            "down_proj": (i, h, e),
        }
        if self.gated_mlp:
            shapes["gate_proj"] = (h, i, e)
        return shapes

    def linear_params_per_layer(self) -> int:
        router = self.hidden_size * self.experts if self.experts > 1 else 0
        return router + sum(a * b * n for a, b, n in self._module_shapes().values())

    def embedding_params(self) -> int:
        return self.vocab_size * self.hidden_size * (1 if self.tied_embeddings else 2)

    def count_params(self) -> int:
        """Parameters implied by the shapes (norms included, biases ignored)."""
        per_layer = self.linear_params_per_layer() + 2 * self.hidden_size
        return self.layers * per_layer + self.embedding_params() + self.hidden_size

    def lora_params(self, rank: int, targets: list[str]) -> int:
        """r × (in + out) per adapted module (A is r×in, B is out×r), in every layer."""
        shapes = self._module_shapes()
        return self.layers * sum(
            rank * (shapes[t][0] + shapes[t][1]) * shapes[t][2] for t in targets if t in shapes
        )

    def activation_elements_per_token(self) -> int:
        """Tensors one layer saves for backward, per token (Korthikanti et al. adapted):
        2 norm inputs + 2 normed inputs (h each), q, k, v, attention output, and
        for the MLP up/act (+ gate, product when gated) of the active experts."""
        mlp = (4 if self.gated_mlp else 2) * self.intermediate_size * self.experts_per_token
        return 4 * self.hidden_size + 2 * self.q_dim + 2 * self.kv_dim + mlp


def _arch(
    name: str,
    params: int,
    layers: int,
    h: int,
    heads: int,
    kv: int,
    hd: int,
    vocab: int,
    inter: int,
    tied: bool = False,
    **extra: object,
) -> Architecture:
    return Architecture(
        name=name,
        params=params,
        layers=layers,
        hidden_size=h,
        heads=heads,
        kv_heads=kv,
        head_dim=hd,
        vocab_size=vocab,
        intermediate_size=inter,
        tied_embeddings=tied,
        **extra,
    )


# Shapes from each model's published config.json; params from its model card/safetensors.
_TABLE: tuple[Architecture, ...] = (
    _arch("SmolLM2-135M", 134_515_008, 30, 576, 9, 3, 64, 49152, 1536, tied=True),
    _arch("SmolLM2-360M", 361_821_120, 32, 960, 15, 5, 64, 49152, 2560, tied=True),
    _arch("SmolLM2-1.7B", 1_711_376_384, 24, 2048, 32, 32, 64, 49152, 8192, tied=True),
    _arch("GPT-2", 124_439_808, 12, 768, 12, 12, 64, 50257, 3072, tied=True, gated_mlp=False),
    _arch("TinyLlama-1.1B", 1_100_048_384, 22, 2048, 32, 4, 64, 32000, 5632),
    _arch("Llama-2-7B", 6_738_415_616, 32, 4096, 32, 32, 128, 32000, 11008),
    _arch("Llama-2-13B", 13_015_864_320, 40, 5120, 40, 40, 128, 32000, 13824),
    _arch("Llama-2-70B", 68_976_648_192, 80, 8192, 64, 8, 128, 32000, 28672),
    _arch("Llama-3-8B", 8_030_261_248, 32, 4096, 32, 8, 128, 128256, 14336),
    _arch("Llama-3.1-8B", 8_030_261_248, 32, 4096, 32, 8, 128, 128256, 14336),
    _arch("Llama-3-70B", 70_553_706_496, 80, 8192, 64, 8, 128, 128256, 28672),
    _arch("Llama-3.1-70B", 70_553_706_496, 80, 8192, 64, 8, 128, 128256, 28672),
    _arch("Llama-3.1-405B", 405_853_388_800, 126, 16384, 128, 8, 128, 128256, 53248),
    _arch("Llama-3.2-1B", 1_235_814_400, 16, 2048, 32, 8, 64, 128256, 8192, tied=True),
    _arch("Llama-3.2-3B", 3_212_749_824, 28, 3072, 24, 8, 128, 128256, 8192, tied=True),
    _arch("Mistral-7B", 7_241_732_096, 32, 4096, 32, 8, 128, 32000, 14336),
    _arch("Mixtral-8x7B", 46_702_792_704, 32, 4096, 32, 8, 128, 32000, 14336, experts=8, experts_per_token=2),
    _arch(
        "Mixtral-8x22B", 140_630_071_296, 56, 6144, 48, 8, 128, 32768, 16384, experts=8, experts_per_token=2
    ),
    _arch("Qwen2.5-0.5B", 494_032_768, 24, 896, 14, 2, 64, 151936, 4864, tied=True),
    _arch("Qwen2.5-1.5B", 1_543_714_304, 28, 1536, 12, 2, 128, 151936, 8960, tied=True),
    _arch("Qwen2.5-3B", 3_085_938_688, 36, 2048, 16, 2, 128, 151936, 11008, tied=True),
    _arch("Qwen2.5-7B", 7_615_616_512, 28, 3584, 28, 4, 128, 152064, 18944),
    _arch("Qwen2.5-14B", 14_770_033_664, 48, 5120, 40, 8, 128, 152064, 13824),
    _arch("Qwen2.5-32B", 32_763_876_352, 64, 5120, 40, 8, 128, 152064, 27648),
    _arch("Qwen2.5-72B", 72_706_203_648, 80, 8192, 64, 8, 128, 152064, 29568),
    _arch("Phi-3-mini", 3_821_079_552, 32, 3072, 32, 32, 96, 32064, 8192),
    _arch("Gemma-2-2B", 2_614_341_888, 26, 2304, 8, 4, 256, 256000, 9216, tied=True),
    _arch("Gemma-2-9B", 9_241_705_984, 42, 3584, 16, 8, 256, 256000, 14336, tied=True),
    _arch("Gemma-2-27B", 27_227_128_320, 46, 4608, 32, 16, 128, 256000, 36864, tied=True),
)
# Shapes borrowed when only a parameter count is known: modern dense GQA models.
_REFERENCES = (
    "SmolLM2-135M",
    "SmolLM2-360M",
    "Qwen2.5-0.5B",
    "Llama-3.2-1B",
    "SmolLM2-1.7B",
    "Llama-3.2-3B",
    "Mistral-7B",
    "Llama-3-8B",
    "Qwen2.5-14B",
    "Qwen2.5-32B",
    "Llama-3-70B",
    "Llama-3.1-405B",
)
# A family name without a size means its best-known size.
FAMILY_DEFAULTS = {
    "llama2": "Llama-2-7B",
    "llama3": "Llama-3-8B",
    "llama31": "Llama-3.1-8B",
    "llama32": "Llama-3.2-3B",
    "mistral": "Mistral-7B",
    "mixtral": "Mixtral-8x7B",
    "qwen25": "Qwen2.5-7B",
    "phi3": "Phi-3-mini",
    "gemma2": "Gemma-2-9B",
    "smollm2": "SmolLM2-135M",
    "smollm": "SmolLM2-135M",
    "tinyllama": "TinyLlama-1.1B",
    "gpt2": "GPT-2",
}
# Words that do not change the memory footprint: org prefixes, chat/instruct tags, versions.
_NOISE = re.compile(r"^(meta|hf|instruct|chat|it|base|model|v\d+|\d+k)$")
FAMILY_WORDS = ("llama", "mistral", "mixtral", "qwen", "phi", "gemma", "smollm", "tinyllama", "gpt")


def name_key(name: str) -> str:
    """'meta-llama/Meta-Llama-3-8B-Instruct' -> 'llama38b' (case/punctuation-insensitive)."""
    name = name.strip().lower().rsplit("/", 1)[-1]
    name = re.sub(r"v\d+(\.\d+)+", " ", name)  # v0.1, v0.3
    return "".join(tok for tok in re.findall(r"[a-z0-9]+", name) if not _NOISE.match(tok))


_BY_KEY: dict[str, Architecture] = {name_key(a.name): a for a in _TABLE}
_BY_KEY.update(
    {
        "smollm135m": _BY_KEY["smollm2135m"],
        "smollm360m": _BY_KEY["smollm2360m"],
        "gpt2small": _BY_KEY["gpt2"],
        "phi3mini38b": _BY_KEY["phi3mini"],
    }
)


def lookup(name: str) -> Architecture | None:
    """A built-in architecture by (fuzzy) name, or None."""
    key = name_key(name)
    if key in _BY_KEY:
        return _BY_KEY[key]
    family = FAMILY_DEFAULTS.get(key)
    return _BY_KEY[name_key(family)] if family else None


def known_models() -> list[str]:
    return [a.name for a in _TABLE]


_SUFFIX = {
    "": 1.0,
    "b": 1e9,
    "bn": 1e9,
    "billion": 1e9,
    "m": 1e6,
    "million": 1e6,
    "k": 1e3,
    "t": 1e12,
    "trillion": 1e12,
    "亿": 1e8,
    "万": 1e4,
    "十亿": 1e9,
}


def parse_param_count(value: float | int | str) -> float:
    """'3B' -> 3e9, '135M' -> 1.35e8, '70亿' -> 7e9, 7e9 -> 7e9; a bare number below 1e5 means billions."""
    if isinstance(value, bool):
        raise ValueError("params must be a number or a size like '7B'")
    if isinstance(value, int | float):
        number = float(value)
    else:
        text = str(value).strip().lower().replace(",", "").replace("_", "")
        match = re.fullmatch(
            r"(-?\d+(?:\.\d+)?(?:e[+-]?\d+)?)\s*(b|bn|billion|m|million|k|t|trillion|十亿|亿|万)?\s*"
            r"(params|parameters|参数)?",
            text,
        )
        if not match:
            raise ValueError(f"cannot read {value!r} as a parameter count; write e.g. '7B', '135M' or 7e9")
        number = float(match.group(1)) * _SUFFIX[match.group(2) or ""]
    if not math.isfinite(number) or number <= 0:
        raise ValueError(f"params must be positive, e.g. '7B' or 7e9 (got {value!r})")
    return number * 1e9 if number < 1e5 else number


def approximate_from_params(params: float, name: str) -> Architecture:
    """Borrow the shape of the reference model nearest in size (log scale), and
    scale its depth so the non-embedding parameters match `params`."""
    ref = min((_BY_KEY[name_key(r)] for r in _REFERENCES), key=lambda a: abs(math.log(params / a.params)))
    body = ref.params - ref.embedding_params()
    layers = max(1, round(ref.layers * (params - ref.embedding_params()) / body))
    return ref.model_copy(update={"name": name, "params": int(params), "layers": layers})


def from_config(path: str) -> Architecture:
    """Read a Hugging Face config.json (or the folder holding it)."""
    file = Path(path).expanduser()
    if file.is_dir():
        file = file / "config.json"
    if not file.is_file():
        raise ToolInputError(
            f"config file not found: {file}", "give the path of a model's config.json or its folder"
        )
    try:
        raw = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ToolInputError(f"cannot read {file}: {exc}", "check that it is a valid JSON config") from None
    cfg = {**raw, **(raw.get("text_config") or {})}  # multimodal configs nest the language model

    def first(*keys: str, default: object = None) -> object:
        return next((cfg[k] for k in keys if cfg.get(k) is not None), default)

    try:
        h = int(first("hidden_size", "n_embd", "d_model"))  # type: ignore[arg-type]
        layers = int(first("num_hidden_layers", "n_layer", "num_layers"))  # type: ignore[arg-type]
        heads = int(first("num_attention_heads", "n_head"))  # type: ignore[arg-type]
        vocab = int(first("vocab_size"))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ToolInputError(
            f"{file} lacks hidden_size/num_hidden_layers/num_attention_heads/vocab_size",
            "point config_path at a decoder LLM's config.json",
        ) from None
    model_type = str(cfg.get("model_type", ""))
    plain_mlp = model_type in {
        "gpt2",
        "gpt_neox",
        "gptj",
        "opt",
        "bloom",
        "falcon",
        "phi",
        "gpt_bigcode",
        "starcoder2",
    }
    arch = Architecture(
        name=str(raw.get("_name_or_path") or file.parent.name or "config.json"),
        params=1,
        layers=layers,
        hidden_size=h,
        heads=heads,
        kv_heads=int(first("num_key_value_heads", "num_kv_heads", default=heads)),  # type: ignore[arg-type]
        head_dim=int(first("head_dim", default=h // heads)),  # type: ignore[arg-type]
        vocab_size=vocab,
        intermediate_size=int(first("intermediate_size", "n_inner", "ffn_dim", default=4 * h)),  # type: ignore[arg-type]
        tied_embeddings=bool(cfg.get("tie_word_embeddings", True)),
        gated_mlp=not plain_mlp,
        experts=int(first("num_local_experts", "num_experts", default=1)),  # type: ignore[arg-type]
        experts_per_token=int(first("num_experts_per_tok", default=1)),  # type: ignore[arg-type]
    )
    return arch.model_copy(update={"params": arch.count_params()})


def resolve_architecture(
    model: str | None, params: float | str | None, params_billion: float | None, config_path: str | None
) -> tuple[Architecture, str, bool, list[str]]:
    """(architecture, source, approximate, notes). Priority: config_path, model, params, params_billion."""
    notes: list[str] = []
    ignored = [n for n, v in (("model", model), ("params", params), ("params_billion", params_billion)) if v]
    if config_path:
        if ignored:
            notes.append(f"{', '.join(ignored)} ignored: config_path wins")
        arch = from_config(config_path)
        notes.append("parameter count computed from the config's shapes (biases ignored)")
        return arch, "config.json", False, notes
    if model:
        arch = lookup(model)
        if ignored[1:]:
            notes.append(f"{', '.join(ignored[1:])} ignored: model wins")
        if arch is not None:
            if name_key(model) in FAMILY_DEFAULTS:
                notes.append(f"'{model}' names no size: assumed {arch.name}")
            return arch, "built-in table", False, notes
        size = re.search(r"(?<![a-z0-9.])(\d+(?:\.\d+)?)\s*([bm])(?![a-z])", model.lower().rsplit("/", 1)[-1])
        if size is None:
            raise ToolInputError(
                f"unknown model {model!r}",
                f"give its size instead (params='7B') or config_path; known: {', '.join(known_models())}",
            )
        count = parse_param_count(size.group(1) + size.group(2))
        notes.append(f"{model} is not in the built-in table: sized from its name ({size.group(0).upper()})")
        arch = approximate_from_params(count, model)
        return arch, "name", True, notes + [_borrowed_note(arch, count)]
    if params is None and params_billion is None:
        notes.append(f"no model given: using the tutor's default {DEFAULT_MODEL}")
        return _BY_KEY[name_key(DEFAULT_MODEL)], "built-in table", False, notes
    count = parse_param_count(params) if params is not None else float(params_billion) * 1e9  # type: ignore[arg-type]
    arch = approximate_from_params(count, f"{_short(count)} model")
    return arch, "parameter count", True, [_borrowed_note(arch, count)]


def _borrowed_note(arch: Architecture, count: float) -> str:
    ref = min((_BY_KEY[name_key(r)] for r in _REFERENCES), key=lambda a: abs(math.log(count / a.params)))
    return (
        f"architecture approximated from the parameter count: shape of {ref.name} "
        f"(hidden {arch.hidden_size}, {arch.kv_heads} KV heads) with depth scaled to {arch.layers} layers"
    )


def _short(count: float) -> str:
    return f"{count / 1e9:.3g}B" if count >= 1e9 else f"{count / 1e6:.3g}M"
