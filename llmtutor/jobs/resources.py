"""Free memory on a device, and refusing work that cannot fit (with the numbers)."""

from __future__ import annotations

from llmtutor.errors import ToolInputError


class InsufficientMemoryError(ToolInputError):
    """The job needs more memory than the device has free."""


def free_memory(device: str = "cpu") -> int:
    if device.startswith("cuda"):
        import torch

        free, _total = torch.cuda.mem_get_info(torch.device(device))
        return int(free)
    import psutil

    return int(psutil.virtual_memory().available)


def check_fits(required_bytes: int, device: str, what: str, headroom: float = 0.9) -> int:
    """Free bytes; raises when `required_bytes` exceeds `headroom` of them."""
    free = free_memory(device)
    if required_bytes > headroom * free:
        raise InsufficientMemoryError(
            f"{what} needs about {required_bytes / 2**30:.1f} GiB but only {free / 2**30:.1f} GiB is free on {device}",
            "try LoRA instead of full fine-tuning, QLoRA on a GPU, a smaller batch or max_seq_len, "
            "gradient checkpointing, or a smaller model",
        )
    return free
