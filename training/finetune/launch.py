"""Several processes training one model: `run` hands a config with `num_processes > 1` here.

The calling process (a job's worker) stays the one process the job store knows: it validates
the data, resolves the base model (a GGUF is converted once, not by every rank) and the
checkpoint to resume from, then starts the group as its child and waits for it:

- CUDA: `accelerate launch --config_file accelerate_configs/{ddp,fsdp}.yaml`, one process per
  GPU, NCCL; the Trainer reads the DDP or FSDP setup accelerate puts in the environment.
- CPU: `torchrun` with gloo (accelerate launch starts several CPU processes only through MPI;
  for GPUs it runs the same torchrun agent in-process). Only DDP is tested on the CPU (CI has
  no GPU); FSDP is for models too large for one GPU and is refused on the CPU.

Every rank runs `rank.py` (see there for the files in the run folder). Rank 0's progress
events are forwarded to `progress`; its `FinetuneResult` is returned as a single-process run
returns it, so the worker stages, finalizes and registers it the same way. `cancel` becomes the
run folder's `cancel` file (a job's SIGTERM also reaches the ranks through torchrun, which
forwards it); the ranks save a checkpoint and stop together. A failed rank fails the run with
its own error; the others are killed a few seconds later rather than left waiting for it in a
collective until the distributed timeout.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from llmtutor.errors import CancelledError, LLMTutorError, ToolExecutionError, ToolInputError
from llmtutor.training.finetune.config import FinetuneConfig
from llmtutor.training.finetune.result import FinetuneResult
from llmtutor.training.progress import ProgressCallback, TrainingEvent, check_cancelled, emit

LAUNCH, EVENTS, RESULT, CANCEL = "launch.json", "events.jsonl", "result.json", "cancel"
CONFIGS = Path(__file__).resolve().parent / "accelerate_configs"
POLL_S = 0.2
FAILED_RANK_GRACE_S = 3.0  # time the other ranks get to record their own error after one fails


def error_file(run_dir: Path, rank: int) -> Path:
    return run_dir / f"error-{rank}.json"


def launch_device(config: FinetuneConfig) -> str:
    """ "cuda" or "cpu", after checking there are devices for `num_processes` processes."""
    from llmtutor.hf_models import pick_device

    device, n = pick_device(config.device), config.num_processes
    if device.startswith("cuda"):
        import torch

        if ":" in device:
            raise ToolInputError(
                f"device={device} names one GPU, but num_processes={n} trains on {n}",
                "set device to auto or cuda (choose the GPUs with CUDA_VISIBLE_DEVICES)",
            )
        if torch.cuda.device_count() < n:
            raise ToolInputError(
                f"num_processes={n} needs {n} GPUs (one process per GPU), {torch.cuda.device_count()} are visible",
                f"set num_processes to {torch.cuda.device_count()} or less",
            )
        return "cuda"
    if device != "cpu":
        raise ToolInputError(
            f"several processes train on CUDA GPUs or on the CPU, not on {device}",
            "set device to auto, cuda or cpu, or num_processes to 1",
        )
    if config.distributed == "fsdp":
        raise ToolInputError(
            "FSDP shards a model over GPUs; on the CPU only DDP runs",
            "set distributed='ddp' or train on GPUs",
        )
    if n > cpu_cores():
        raise ToolInputError(
            f"num_processes={n} CPU processes, but this machine gives {cpu_cores()} cores",
            f"set num_processes to {cpu_cores()} or less",
        )
    return "cpu"


def cpu_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def command(
    config: FinetuneConfig, device: str, run_dir: Path, port: int
) -> tuple[list[str], dict[str, str]]:
    """The launcher's command line and environment."""
    n = config.num_processes
    entry = ["-m", "llmtutor.training.finetune.rank", str(run_dir)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if device == "cpu":
        # the cores are shared: n processes with all threads each would oversubscribe them
        env |= {"ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": str(max(1, cpu_cores() // n))}
        launcher = ["torch.distributed.run", "--nnodes=1", f"--nproc-per-node={n}"]
        launcher += ["--master-addr=127.0.0.1", f"--master-port={port}", "--max-restarts=0"]
    else:
        launcher = [
            "accelerate.commands.launch",
            "--config_file",
            str(CONFIGS / f"{config.distributed}.yaml"),
        ]
        launcher += ["--num_processes", str(n), "--num_machines", "1"]
        launcher += ["--main_process_ip", "127.0.0.1", "--main_process_port", str(port)]
    return [sys.executable, "-m", *launcher, *entry], env


def launch(
    config: FinetuneConfig, progress: ProgressCallback | None = None, cancel: threading.Event | None = None
) -> FinetuneResult:
    """Train with `config.num_processes` processes; see the module docstring."""
    from llmtutor.hf_models import resolve_hf_model
    from llmtutor.training.finetune.checkpoints import prepare_checkpoints
    from llmtutor.training.finetune.data import load_dataset_rows
    from llmtutor.training.finetune.runner import check_method, check_output_dir

    check_output_dir(config)
    device = launch_device(config)
    emit(progress, "data", f"reading {config.dataset_path.name}")
    # bad data fails here, before n processes load the model
    check_method(config, load_dataset_rows(config.dataset_path, config.dataset_format))
    check_cancelled(cancel)
    emit(progress, "load", "resolving the base model")
    base_path = resolve_hf_model(
        config.base_model,
        config.models_dir,
        lambda stage, step=None, total=None, message="": emit(
            progress, "load", message, step=step, total=total
        ),
    )
    notes: list[str] = []
    resume_from = prepare_checkpoints(config, notes)  # once, before any rank can save
    run_dir = Path(tempfile.mkdtemp(prefix="llmtutor-ranks-"))
    try:
        spec = {
            "config": config.model_dump(mode="json"),
            "device": device,
            "base_path": str(base_path),
            "resume_from": resume_from,
            "notes": notes,
            "job_pid": os.getpid(),
            "launched_at": time.time(),
        }
        (run_dir / LAUNCH).write_text(json.dumps(spec), encoding="utf-8")
        cmd, env = command(config, device, run_dir, free_port())
        n, how = config.num_processes, config.distributed.upper()
        emit(
            progress,
            "load",
            f"starting {n} training processes ({how}, {'NCCL' if device == 'cuda' else 'gloo'})",
        )
        process = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL)  # noqa: S603 - our interpreter
        try:
            code = _follow(process, run_dir, progress, cancel)
        finally:
            stop_group(process)  # nothing of the group outlives the run (an exception included)
        return _outcome(run_dir, code, n, cancel)
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


def _forward(path: Path, offset: int, progress: ProgressCallback | None) -> int:
    """Pass rank 0's new events on; returns the offset after the last whole line."""
    if not path.is_file():
        return offset
    with path.open("rb") as handle:
        handle.seek(offset)
        data = handle.read()
    end = data.rfind(b"\n") + 1
    for line in data[:end].splitlines():
        if line.strip() and progress is not None:
            progress(TrainingEvent.model_validate_json(line))
    return offset + end


def _errors(run_dir: Path) -> list[dict[str, Any]]:
    found = []
    for path in run_dir.glob("error-*.json"):
        with contextlib.suppress(OSError, ValueError):
            found.append(json.loads(path.read_text(encoding="utf-8")))
    return found


def _follow(
    process: subprocess.Popen[bytes],
    run_dir: Path,
    progress: ProgressCallback | None,
    cancel: threading.Event | None,
) -> int:
    offset, failed_at = 0, None
    while True:
        code = process.poll()  # before forwarding, so the events written before the exit get through
        offset = _forward(run_dir / EVENTS, offset, progress)
        if code is not None:
            return code
        if cancel is not None and cancel.is_set() and not (run_dir / CANCEL).exists():
            (run_dir / CANCEL).touch()
        if failed_at is None and any(not e["cancelled"] for e in _errors(run_dir)):
            failed_at = time.monotonic()
        elif failed_at is not None and time.monotonic() - failed_at > FAILED_RANK_GRACE_S:
            stop_group(process)
        time.sleep(POLL_S)


def stop_group(process: subprocess.Popen[bytes]) -> None:
    """Kill the launcher and every process under it (torchrun starts each rank in its own
    session, so they are found through the process tree, not a process group)."""
    if process.poll() is not None:
        return
    import psutil

    try:
        ranks = psutil.Process(process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        ranks = []
    for child in ranks:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()
    process.kill()
    process.wait()
    psutil.wait_procs(ranks, timeout=10)


def _error_class(module: str, name: str) -> type[LLMTutorError] | None:
    if not module.startswith("llmtutor."):
        return None
    try:
        cls = getattr(importlib.import_module(module), name, None)
    except ImportError:
        return None
    return cls if isinstance(cls, type) and issubclass(cls, LLMTutorError) else None


def _failure(error: dict[str, Any], n: int) -> LLMTutorError:
    """The rank's own error when it is one of ours (DatasetError, ToolInputError, ...)."""
    cls = _error_class(error["module"], error["type"])
    if cls is not None:
        with contextlib.suppress(TypeError):
            return cls(error["message"], error["hint"])
    return ToolExecutionError(
        f"training process {error['rank']} of {n} failed: {error['type']}: {error['message']}",
        "its traceback is in the job log",
    )


def _outcome(run_dir: Path, code: int, n: int, cancel: threading.Event | None) -> FinetuneResult:
    if (run_dir / RESULT).is_file():  # rank 0 wrote it after moving the artifacts into place
        return FinetuneResult.model_validate_json((run_dir / RESULT).read_text(encoding="utf-8"))
    errors = sorted(_errors(run_dir), key=lambda e: e["time"])
    failures = [e for e in errors if not e["cancelled"]]
    if failures:  # the first one: the others often only lost their peer
        raise _failure(failures[0], n)
    if errors or (cancel is not None and cancel.is_set()):
        raise CancelledError(
            "cancelled by the user", "resume it with `llmtutor jobs resume ID` or start again"
        )
    raise ToolExecutionError(
        f"the {n} training processes ended with exit code {code} and no result",
        "a process killed from outside (out of memory?) leaves no error of its own: see the job log, "
        "then lower batch_size or max_seq_len",
    )
