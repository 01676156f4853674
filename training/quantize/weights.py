"""The fundamentals lab: quantize a model's weights by hand, in plain torch, and look at the damage.

As in the course's "Introduction to quantization" notebook:
- absmax (symmetric) int8, one scale per output row: q = round(127 · w / max|w|);
- zero-point (asymmetric) int8, one scale and zero point per row, using the full [-128, 127]
  range even when a row's weights are not centred on 0;
- int4 with groups: symmetric 4-bit, one fp16 scale per group of `group_size` consecutive
  weights of a row (what GPTQ/AWQ/llama.cpp's Q4 formats build on; groups keep one outlier from
  ruining the scale of a whole row).
Every Linear weight of the decoder layers is quantized and immediately dequantized ("fake
quantization"), so the model runs in float and its perplexity shows what the rounding cost.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

LAB_METHODS = ("absmax", "zeropoint", "int4")


def absmax_int8(w: Any) -> tuple[Any, Any]:
    """(int8 values, per-row scale); dequantize with q / scale."""
    import torch

    scale = 127 / w.abs().amax(dim=-1, keepdim=True).clamp(min=1e-12)
    return torch.clamp((w * scale).round(), -127, 127).to(torch.int8), scale


def zeropoint_int8(w: Any) -> tuple[Any, Any, Any]:
    """(int8 values, per-row scale, per-row zero point); dequantize with (q - zero) / scale."""
    import torch

    lo, hi = w.amin(dim=-1, keepdim=True), w.amax(dim=-1, keepdim=True)
    scale = 255 / (hi - lo).clamp(min=1e-12)
    zero = (-scale * lo).round() - 128
    return torch.clamp((w * scale + zero).round(), -128, 127).to(torch.int8), scale, zero


def int4_groups(w: Any, group_size: int) -> tuple[Any, Any]:
    """(int4 values in [-7, 7] stored in int8, fp16 scale per group); rows must split into groups."""
    import torch

    rows, cols = w.shape
    if cols % group_size:
        raise ValueError(f"rows of {cols} weights do not split into groups of {group_size}")
    groups = w.reshape(rows, cols // group_size, group_size)
    scale = (7 / groups.abs().amax(dim=-1, keepdim=True).clamp(min=1e-12)).half()
    q = torch.clamp((groups * scale.float()).round(), -7, 7).to(torch.int8)
    return q, scale


def fake_quantize(w: Any, method: str, group_size: int = 32) -> Any:
    """Quantize then dequantize `w` (float32): what the model computes with after quantization."""
    if method == "absmax":
        q, scale = absmax_int8(w)
        return q.float() / scale
    if method == "zeropoint":
        q, scale, zero = zeropoint_int8(w)
        return (q.float() - zero) / scale
    if method == "int4":
        q, scale = int4_groups(w, group_size)
        return (q.float() / scale.float()).reshape(w.shape)
    raise ValueError(f"unknown lab method {method!r}; use one of {LAB_METHODS}")


def bits_per_weight(method: str, n_per_row: int, group_size: int = 32) -> float:
    """Storage cost including the scales: float32 per-row scale (and zero point), fp16 per group."""
    return {"absmax": 8 + 32 / n_per_row, "zeropoint": 8 + 64 / n_per_row, "int4": 4 + 16 / group_size}[
        method
    ]


@dataclass
class LayerError:
    name: str
    shape: tuple[int, ...]
    relative_error: float  # ||W - Ŵ|| / ||W||
    max_abs_error: float


def quantize_model_weights(
    model: Any, method: str, group_size: int = 32
) -> tuple[list[LayerError], dict[str, Any]]:
    """Fake-quantize every Linear weight inside the decoder layers, in place.

    Returns the per-layer errors and {name: (original, dequantized)} for one representative
    layer per kind (used for the histogram)."""
    import torch

    errors: list[LayerError] = []
    samples: dict[str, Any] = {}
    with torch.no_grad():
        for name, module in model.named_modules():
            if not isinstance(module, torch.nn.Linear) or ".layers." not in name:
                continue
            w = module.weight.data.float()
            deq = fake_quantize(w, method, group_size)
            diff = deq - w
            errors.append(
                LayerError(
                    name,
                    tuple(w.shape),
                    float(diff.norm() / w.norm().clamp(min=1e-12)),
                    float(diff.abs().max()),
                )
            )
            if ".layers.0." in name and name.endswith(("q_proj", "down_proj")):
                samples[name] = (w.flatten().cpu(), deq.flatten().cpu())
            module.weight.data.copy_(deq.to(module.weight.dtype))
    return errors, samples


def write_histogram(samples: dict[str, Any], method: str, path: Any) -> bool:
    """Weight distribution before/after for the sampled layers (PNG)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover - matplotlib is a dependency
        return False
    fig, axes = plt.subplots(1, len(samples), figsize=(6 * len(samples), 4), squeeze=False)
    for ax, (name, (before, after)) in zip(axes[0], samples.items(), strict=True):
        lim = float(before.abs().max())
        bins = 150
        ax.hist(before.numpy(), bins=bins, range=(-lim, lim), alpha=0.6, label="original (float32)")
        ax.hist(after.numpy(), bins=bins, range=(-lim, lim), alpha=0.6, label=f"{method} (dequantized)")
        ax.set_title(name.replace("model.", ""), fontsize=9)
        ax.set_yscale("log")
        ax.set_xlabel("weight value")
        ax.legend(fontsize=8)
    fig.suptitle(f"Weight distribution before and after {method} quantization")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
