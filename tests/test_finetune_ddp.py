"""Fine-tuning with several processes (training/finetune/launch.py, rank.py): two gloo processes
on the CPU train the tiny Llama through the job runner, as one process per GPU does with NCCL.

In the default suite so CI covers it (~1 min on 2 cores); the 2-GPU run is `gpu`."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import pytest

from llmtutor import jobs as runner
from llmtutor.errors import ToolInputError
from llmtutor.training.finetune import FinetuneConfig, FinetuneResult, run

QA = [
    ("What is LoRA?", "LoRA trains small low-rank matrices next to frozen weights."),
    ("What does QLoRA add?", "It quantizes the frozen base model to 4-bit NF4."),
    ("什么是量化？", "量化是用更少的比特表示模型权重。"),
    ("Who wrote the LLM Course?", "Maxime Labonne wrote the LLM Course."),
]


def _cores() -> int:
    from llmtutor.training.finetune.launch import cpu_cores

    return cpu_cores()


two_cores = pytest.mark.skipif(_cores() < 2, reason="two CPU processes need two cores")


@pytest.fixture(scope="module")
def sft_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "sft.jsonl"
    rows = [{"instruction": q, "input": "", "output": a} for q, a in QA] * 3
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def config(base: Path, dataset: Path, workspace: Path, **overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = dict(
        base_model=str(base),
        dataset=str(dataset),
        models_dir=str(workspace / "models"),
        max_steps=4,
        batch_size=2,
        learning_rate=1e-2,
        eval_fraction=0.25,
        max_seq_len=128,
        merge=True,
        num_processes=2,
        name="tiny-ddp",
    )
    return values | overrides


def _wait_for(predicate: Any, timeout: float = 120.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.1)
    return False


@two_cores
def test_two_processes_train_as_one_job(tiny_llama_dir: Path, sft_file: Path, tmp_path: Path) -> None:
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from llmtutor.model_registry import find_model

    events: list[dict[str, Any]] = []
    job_id = runner.submit(tmp_path, "finetune", config(tiny_llama_dir, sft_file, tmp_path))
    job = runner.wait(tmp_path, job_id, timeout=300, on_event=events.append, poll_s=0.2)
    assert job.status == "succeeded", runner.tail_log(tmp_path, job_id, 60)
    result = FinetuneResult.model_validate(job.result)
    m = result.metrics
    assert m["world_size"] == 2 and m["global_batch_size"] == 4 and m["steps"] == 4 and m["device"] == "cpu"
    assert math.isfinite(m["train_loss_last"]) and math.isfinite(m["eval_loss"]) and m["trained_tokens"] > 0

    # the same result, field for field, as one process gives
    single = run(
        FinetuneConfig.model_validate(
            config(tiny_llama_dir, sft_file, tmp_path, num_processes=1, max_steps=1, eval_fraction=0)
            | {"output_dir": tmp_path / "single"}
        )
    )
    assert set(result.model_dump()) == set(single.model_dump())
    assert set(m) == set(single.metrics) and single.metrics["world_size"] == 1
    assert result.registration["kind"] == "merged" and find_model(tmp_path / "models", "tiny-ddp")

    # rank 0 alone reports: each step once in the log (the store keeps a throttled subset)
    log = "\n".join(runner.tail_log(tmp_path, job_id, 10_000))
    assert [log.count(f"[train] step {k}/4 step {k}/4") for k in (1, 2, 3, 4)] == [1, 1, 1, 1], log
    steps = [e["step"] for e in events if e.get("stage") == "train" and "loss" in e]
    assert steps == sorted(set(steps)) and steps[-1] == 4
    assert all(math.isfinite(e["loss"]) for e in events if "loss" in e)

    out = Path(job.output_dir or "")
    weights = load_file(str(out / "adapter" / "adapter_model.safetensors"))
    assert all(torch.isfinite(t).all() for t in weights.values())
    assert max(t.abs().max().item() for k, t in weights.items() if "lora_B" in k) > 0  # lora_B starts at 0
    merged = AutoModelForCausalLM.from_pretrained(str(out / "merged"))
    tok = AutoTokenizer.from_pretrained(str(out / "merged"))
    inputs = tok("What is LoRA?", return_tensors="pt")
    assert (
        merged.generate(**inputs, max_new_tokens=3, do_sample=False).shape[1] > inputs["input_ids"].shape[1]
    )
    assert "× 2 processes" in (job.summary or "") and "2 (DDP)" in (out / "README.md").read_text()


@two_cores
def test_cancel_stops_every_process_and_resume_continues(
    tiny_llama_dir: Path, sft_file: Path, tmp_path: Path
) -> None:
    import psutil

    settings = config(tiny_llama_dir, sft_file, tmp_path, max_steps=40, eval_fraction=0, merge=False)
    job_id = runner.submit(tmp_path, "finetune", settings)
    assert _wait_for(lambda: (runner.get(tmp_path, job_id).progress or {}).get("step", 0) >= 2)
    group = psutil.Process(runner.get(tmp_path, job_id).pid or 0).children(recursive=True)
    assert len(group) >= 3  # the launcher and the two ranks under it
    job = runner.cancel(tmp_path, job_id)
    assert job.status == "cancelled", runner.tail_log(tmp_path, job_id, 60)
    _, alive = psutil.wait_procs(group, timeout=30)
    assert not [p for p in alive if p.status() != psutil.STATUS_ZOMBIE], alive
    saved = list((tmp_path / "jobs" / job_id / "checkpoints").glob("checkpoint-*"))
    assert saved and not (tmp_path / "outputs").exists()

    runner.resume(tmp_path, job_id)
    job = runner.wait(tmp_path, job_id, timeout=300, poll_s=0.2)
    assert job.status == "succeeded" and job.attempts == 2, runner.tail_log(tmp_path, job_id, 60)
    result = FinetuneResult.model_validate(job.result)
    assert result.metrics["steps"] == 40 and any(
        n.startswith("resumed from checkpoint-") for n in result.notes
    )


@two_cores
def test_a_failing_rank_fails_the_job_with_its_error(
    tiny_llama_dir: Path, sft_file: Path, tmp_path: Path
) -> None:
    settings = config(tiny_llama_dir, sft_file, tmp_path, target_modules=["no_such_proj"])
    job = runner.wait(tmp_path, runner.submit(tmp_path, "finetune", settings), timeout=300, poll_s=0.2)
    assert job.status == "failed" and "ToolInputError: target_modules not in this model: no_such_proj" in (
        job.error or ""
    )
    assert not (tmp_path / "outputs").exists()


def test_devices_are_checked_and_the_launch_command_is_accelerate_or_torchrun(tmp_path: Path) -> None:
    from llmtutor.training.finetune.launch import CONFIGS, command, launch_device

    with pytest.raises(ToolInputError, match="on the CPU only DDP runs"):
        launch_device(FinetuneConfig(num_processes=2, distributed="fsdp", device="cpu"))
    with pytest.raises(ToolInputError, match="names one GPU"):
        launch_device(FinetuneConfig(num_processes=2, device="cuda:1"))
    with pytest.raises(ToolInputError, match="64 CPU processes, but this machine gives"):
        launch_device(FinetuneConfig(num_processes=64, device="cpu"))
    with pytest.raises(ValueError, match="QLoRA trains with distributed='ddp'"):
        FinetuneConfig(num_processes=2, distributed="fsdp", adapter="qlora")
    cpu, env = command(FinetuneConfig(num_processes=2), "cpu", tmp_path, 29999)
    assert cpu[1:3] == ["-m", "torch.distributed.run"] and "--nproc-per-node=2" in cpu
    assert "--master-port=29999" in cpu and env["ACCELERATE_USE_CPU"] == "true"
    for strategy in ("ddp", "fsdp"):
        gpu, _ = command(FinetuneConfig(num_processes=4, distributed=strategy), "cuda", tmp_path, 29999)
        yaml = gpu[gpu.index("--config_file") + 1]
        assert gpu[1:3] == ["-m", "accelerate.commands.launch"] and yaml == str(CONFIGS / f"{strategy}.yaml")
        assert Path(yaml).is_file() and gpu[gpu.index("--num_processes") + 1] == "4"
        assert gpu[-3:] == ["-m", "llmtutor.training.finetune.rank", str(tmp_path)]


def test_the_plan_shows_processes_and_batch_sizes(tmp_path: Path) -> None:
    from llmtutor.tools.finetune_model import TOOL
    from llmtutor.tools.registry import ToolContext

    ctx = ToolContext(workspace=tmp_path, device="cpu")
    plan = TOOL.preview(TOOL.validate({"num_processes": 2, "batch_size": 4, "max_steps": 5}), ctx)  # type: ignore[misc]
    assert (
        "| processes | 2 × DDP (2 CPU processes, gloo, torchrun), batch 4×1 per device, global batch 8"
        in plan
    )
    assert "per process" in plan
    single = TOOL.preview(TOOL.validate({"max_steps": 5}), ctx)  # type: ignore[misc]
    assert TOOL.extract_args("Fine-tune with LoRA on 4 GPUs with FSDP") == {  # type: ignore[misc]
        "num_processes": 4,
        "distributed": "fsdp",
    }
    assert TOOL.extract_args("用 2 张 GPU 微调模型")["num_processes"] == 2  # type: ignore[misc]
    with pytest.raises(ToolInputError, match="QLoRA trains with distributed='ddp'"):
        TOOL.validate({"num_processes": 2, "distributed": "fsdp", "adapter": "qlora"})
    assert "| processes | 1 (cpu), batch 4×1 per device, global batch 4 rows per step |" in single


@pytest.mark.gpu
@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_two_gpus(strategy: str, tiny_llama_dir: Path, sft_file: Path, tmp_path: Path) -> None:
    """NCCL, one process per GPU, through accelerate launch and the shipped DDP / FSDP configs."""
    import torch

    if torch.cuda.device_count() < 2:
        pytest.skip("needs 2 CUDA GPUs")
    for adapter in ("lora", "full"):
        settings = config(
            tiny_llama_dir, sft_file, tmp_path, distributed=strategy, adapter=adapter, name=None
        )
        result = run(FinetuneConfig.model_validate(settings | {"output_dir": tmp_path / adapter}))
        m = result.metrics
        assert m["world_size"] == 2 and m["device"] == "cuda" and math.isfinite(m["train_loss_last"])
        from transformers import AutoModelForCausalLM

        model_dir = result.path(result.model_dir)
        assert model_dir is not None and AutoModelForCausalLM.from_pretrained(str(model_dir)).config.use_cache
