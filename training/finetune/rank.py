"""One process of a distributed fine-tune: `python -m llmtutor.training.finetune.rank RUN_DIR`.

Started by torchrun / accelerate launch (launch.py), one per device, with RANK, LOCAL_RANK and
WORLD_SIZE set. Every rank runs the same `runner.train`; the Trainer (through accelerate) wraps
the model in DDP or FSDP, shards the batches and averages the gradients. RUN_DIR is how the
ranks talk to the launcher:

- `launch.json` (in): the config, the resolved base model, the checkpoint to resume from;
- `events.jsonl` (out): progress events, written by rank 0 only;
- `result.json` (out): the `FinetuneResult`, written by rank 0 once the artifacts are in place;
- `error-<rank>.json` (out): a rank's exception (or that it stopped on cancel);
- `cancel` (in): created by the launcher when its job is cancelled.

Cancel: SIGTERM (torchrun forwards it) or the `cancel` file set a local flag; the ranks agree
on it at each step end (a one-number all-reduce), so all of them save the same checkpoint and
stop at the same step, as a single-process run does.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from transformers import TrainerCallback  # this module runs only inside a training process

from llmtutor.errors import CancelledError, LLMTutorError
from llmtutor.training.finetune.launch import CANCEL, EVENTS, LAUNCH, RESULT, error_file


@dataclass
class Group:
    """What `runner.train` needs to know when it is one rank of several."""

    rank: int
    world_size: int
    device: str  # "cpu" or "cuda:<local rank>"
    base_path: str
    resume_from: str | None
    notes: list[str]
    run_dir: Path
    launched_at: float = 0.0  # time.time() when the launcher started the group
    fsdp: bool = False
    requested: threading.Event = field(default_factory=threading.Event)  # this rank was asked to stop
    agreed: threading.Event = field(default_factory=threading.Event)  # all ranks stop (the recipe's cancel)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def checkpoint(self, notes: list[str]) -> str | None:
        """The checkpoint the launcher chose to resume from (its notes join the run's)."""
        notes += self.notes
        return self.resume_from

    def attach(self, trainer: Any, bridge: Any) -> None:
        """Cancel agreement, and token counts summed over the ranks (each collates its own share)."""
        accelerator = trainer.accelerator

        def summed(count: Any) -> Any:
            import torch

            # called at the same points on every rank (train begin, each logged step, the end)
            return lambda: int(accelerator.reduce(torch.tensor([count()], device=accelerator.device)).item())

        if bridge.token_counter is not None:
            bridge.token_counter = summed(bridge.token_counter)
        if bridge.padded_counter is not None:
            bridge.padded_counter = summed(bridge.padded_counter)
        if bridge.tokens_per_step is not None:  # DPO/ORPO: estimated from one device's batch
            bridge.tokens_per_step *= self.world_size
        trainer.add_callback(CancelAgreement(self, accelerator))

    def gather_weights(self, trainer: Any) -> dict[str, Any] | None:
        """FSDP: the full state dict from the shards (a collective: every rank calls it); DDP: None,
        rank 0's model holds all the weights."""
        if not self.fsdp:
            return None
        return trainer.accelerator.get_state_dict(trainer.model)


class CancelAgreement(TrainerCallback):
    """Stops every rank at the same step end once any of them was asked to (SIGTERM or the
    launcher's cancel file): the Trainer saves a checkpoint and the loop ends on all ranks."""

    def __init__(self, group: Group, accelerator: Any):
        self.group = group
        self.accelerator = accelerator

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        import torch

        group = self.group
        if group.agreed.is_set():
            return
        asked = group.requested.is_set() or (group.run_dir / CANCEL).exists()
        flag = torch.tensor([1.0 if asked else 0.0], device=self.accelerator.device)
        if self.accelerator.reduce(flag).item() > 0:
            group.agreed.set()  # the ProgressBridge and the runner's cancel checks read this
            control.should_save = True
            control.should_training_stop = True


def _watch_parents(job_pid: int) -> None:
    """Exit when the launcher or the job's worker is gone (killed: nobody would read our result,
    and torchrun starts each rank in its own session, so a kill of the job's group misses us)."""
    import psutil

    launcher = os.getppid()

    def alive(pid: int) -> bool:
        try:
            return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False

    def watch() -> None:
        while True:
            time.sleep(0.5)
            if os.getppid() != launcher or not alive(job_pid):
                os._exit(1)

    threading.Thread(target=watch, daemon=True, name="watch-parents").start()


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, default=str), encoding="utf-8")
    os.replace(tmp, path)  # the launcher never reads a half-written file


def _record_error(run_dir: Path, rank: int, exc: BaseException) -> None:
    cancelled = isinstance(exc, CancelledError)
    error = {
        "rank": rank,
        "time": time.time(),
        "cancelled": cancelled,
        "type": type(exc).__name__,
        "module": type(exc).__module__,
        "message": exc.message if isinstance(exc, LLMTutorError) else str(exc),
        "hint": exc.hint if isinstance(exc, LLMTutorError) else None,
    }
    _write_json(error_file(run_dir, rank), error)


def main(run_dir: Path) -> int:
    from llmtutor.training.finetune.config import FinetuneConfig
    from llmtutor.training.finetune.runner import train
    from llmtutor.training.progress import TrainingEvent

    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    spec = json.loads((run_dir / LAUNCH).read_text(encoding="utf-8"))
    _watch_parents(int(spec["job_pid"]))
    config = FinetuneConfig.model_validate(spec["config"])
    group = Group(
        rank=rank,
        world_size=int(os.environ.get("WORLD_SIZE", "1")),
        device="cpu" if spec["device"] == "cpu" else f"cuda:{local_rank}",
        base_path=spec["base_path"],
        resume_from=spec["resume_from"],
        notes=list(spec["notes"]),
        run_dir=run_dir,
        launched_at=float(spec["launched_at"]),
        fsdp=config.distributed == "fsdp",
    )
    signal.signal(signal.SIGTERM, lambda *_: group.requested.set())
    events = run_dir / EVENTS

    def progress(event: TrainingEvent) -> None:
        with events.open("a", encoding="utf-8") as handle:  # one line per event, whole lines only
            handle.write(event.model_dump_json(exclude_none=True) + "\n")

    try:
        result = train(config, progress if group.is_main else None, group.agreed, group=group)
    except BaseException as exc:  # noqa: BLE001 - recorded for the launcher, which fails the job with it
        _record_error(run_dir, rank, exc)
        if isinstance(exc, CancelledError):
            return 0  # stopped as asked, after saving the checkpoint
        traceback.print_exc()
        return 1
    finally:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()
    if result is not None:
        _write_json(run_dir / RESULT, result.model_dump(mode="json"))
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
