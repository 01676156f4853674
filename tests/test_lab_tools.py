"""The lab tools as jobs, end to end on tiny local models: preview (plan, checks, refusals),
the job in its own process, registration with lineage, and the chat's approval flow."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from llmtutor.errors import ToolInputError
from llmtutor.model_registry import RegisteredModel, find_model, register_model
from llmtutor.tools.registry import ToolContext


@pytest.fixture
def lab(tmp_path, tiny_llama_dir) -> ToolContext:
    """A workspace whose registry holds two 'fine-tunes' of the tiny model."""
    import torch
    from safetensors.torch import load_file, save_file

    models = tmp_path / "models"
    for name, seed in (("tiny-a", 1), ("tiny-b", 2)):
        folder = models / name
        shutil.copytree(tiny_llama_dir, folder)
        generator = torch.Generator().manual_seed(seed)
        for file in folder.glob("*.safetensors"):
            tensors = {
                k: (v + 0.02 * torch.randn(v.shape, generator=generator)).contiguous()
                for k, v in load_file(str(file)).items()
            }
            save_file(tensors, str(file), metadata={"format": "pt"})
        register_model(
            models,
            RegisteredModel(
                name=name,
                path=str(folder),
                kind="merged",
                meta={"lineage": {"parents": ["tiny"], "method": "sft-lora"}},
            ),
        )
    return ToolContext(workspace=tmp_path)


def test_merge_tool_previews_then_runs_as_a_job_and_registers_lineage(lab):
    from llmtutor.tools.merge_models import TOOL

    args = {
        **TOOL.extract_args("SLERP merge them at t=0.3"),
        "models": ["tiny-a", "tiny-b"],
        "name": "tiny-slerp",
    }  # type: ignore[misc]
    plan = TOOL.preview(TOOL.validate(args), lab)  # type: ignore[misc]
    assert "slerp merge" in plan and "same vocabulary" in plan and "GiB free" in plan
    out = TOOL.run(args, lab)
    assert out.status == "succeeded", out.error
    assert out.model_name == "tiny-slerp" and "cosine similarity" in out.summary
    registered = find_model(lab.models_dir, "tiny-slerp")
    assert registered and Path(registered.path, "config.json").is_file()
    assert (
        registered.meta["lineage"]["parents"] == ["tiny-a", "tiny-b"]
        and registered.meta["lineage"]["method"] == "slerp"
    )
    assert "llmtutor chat" in out.to_markdown()


def test_moe_tool_asks_for_prompts_it_cannot_infer_then_assembles_and_registers(lab):
    from llmtutor.tools.merge_models import TOOL

    args = {
        **TOOL.extract_args("Build a mixture of experts from my two fine-tunes"),
        "models": ["tiny-a", "tiny-b"],
    }  # type: ignore[misc]
    assert args["method"] == "moe"
    with pytest.raises(ToolInputError, match="positive prompts for tiny-b"):
        TOOL.preview(TOOL.validate(args), lab)  # type: ignore[misc]
    args = {**args, "expert_prompts": [["Tell me a story"], ["What is LoRA?"]], "name": "tiny-moe"}
    assert "router prompts" in TOOL.preview(TOOL.validate(args), lab)  # type: ignore[misc]
    out = TOOL.run(args, lab)
    assert out.status == "succeeded", out.error
    registered = find_model(lab.models_dir, "tiny-moe")
    assert registered and registered.meta["lineage"]["parents"] == ["tiny-a", "tiny-b"]
    assert "router sends" in out.summary


def test_merge_of_incompatible_models_is_refused_in_the_preview(lab, tmp_path):
    from llmtutor.tools.merge_models import TOOL

    with pytest.raises(ToolInputError, match="density"):
        TOOL.preview(
            TOOL.validate(
                {
                    "method": "ties",
                    "models": ["tiny-a"],
                    "base_model": "tiny-b",  # type: ignore[misc]
                    "density": None,
                }
            ),
            lab,
        )
    with pytest.raises(ToolInputError, match="not a registered model"):
        TOOL.preview(TOOL.validate({"models": ["tiny-a", "no-such-model"]}), lab)  # type: ignore[misc]


def test_evaluate_tool_compares_two_models_in_a_job(lab):
    from llmtutor.tools.evaluate_model import TOOL

    text = lab.workspace / "notes.txt"
    text.write_text(
        "Quantization maps weights to fewer bits. LoRA trains small adapters. " * 20, encoding="utf-8"
    )
    args = {"models": ["tiny-a", "tiny-b"], "metrics": ["perplexity"], "text": "notes.txt"}
    assert "evaluate 2 model(s)" in TOOL.preview(TOOL.validate(args), lab)  # type: ignore[misc]
    out = TOOL.run(args, lab)
    assert out.status == "succeeded", out.error
    assert "perplexity" in out.summary and out.images()  # the eval card's plot
    with pytest.raises(ToolInputError, match="outside the workspace"):
        TOOL.preview(TOOL.validate({**args, "text": "/etc/passwd"}), lab)  # type: ignore[misc]


def test_judge_needs_a_capable_backend_or_an_explicit_judge_model(lab):
    from llmtutor.tools.evaluate_model import TOOL

    args = {"models": ["tiny-a"], "metrics": ["judge"]}
    with pytest.raises(ToolInputError, match="capable chat model"):
        TOOL.preview(TOOL.validate(args), lab)  # type: ignore[misc]
    assert "judge" in TOOL.preview(TOOL.validate({**args, "judge_model": "smollm2"}), lab)  # type: ignore[misc]
    with pytest.raises(ToolInputError, match="outside the workspace"):
        TOOL.preview(TOOL.validate({**args, "judge_model": "/tmp/elsewhere.gguf"}), lab)  # type: ignore[misc]


def test_the_bundled_model_as_judge_grades_through_llamacpp_and_is_sanity_checked(lab, tmp_path):
    """The real judge path: the job builds a llama.cpp judge from judge_model, grades with
    JSON-schema-constrained output, and checks the judge on control answers first."""
    import json

    from llmtutor.tools.evaluate_model import EvaluateRequest, build_config, run_job

    req = EvaluateRequest(models=["tiny-a"], metrics=["judge"], judge_model="smollm2")
    config = build_config(req, lab, tmp_path / "eval").model_copy(
        update={"max_references": 2, "max_new_tokens": 8}
    )
    result = run_job(config)
    judge = result.settings["judge"]
    assert judge["model"] != "scripted-judge" and set(judge["sanity_check"]) >= {"passed"}
    details = result.models[0].details
    assert details["judge_graded"] + details["judge_failures"] == 2 and details["judge_graded"] >= 1
    records = [json.loads(x) for x in (tmp_path / "eval" / "judge.jsonl").read_text().splitlines()]
    assert all(1 <= r["score"] <= 10 for r in records if "score" in r)
    card = (tmp_path / "eval" / "eval_card.md").read_text()
    assert "sanity check on control answers" in card
    if not judge["sanity_check"]["passed"]:  # the 135M model cannot tell right from off-topic (measured)
        assert "grades are noise" in card


def test_finetune_tool_plans_runs_and_registers_a_chat_ready_model(lab):
    from llmtutor.tools.finetune_model import TOOL

    args = {
        **TOOL.extract_args("Fine-tune the model with LoRA rank 4 for 3 steps"),  # type: ignore[misc]
        "base_model": "tiny-a",
        "batch_size": 2,
        "max_seq_len": 64,
        "name": "tiny-course",
        "evaluate": False,
    }  # the chat test in test_e2e covers the eval card
    assert args["lora_r"] == 4 and args["max_steps"] == 3
    plan = TOOL.preview(TOOL.validate(args), lab)  # type: ignore[misc]
    assert "course_sft.jsonl" in plan and "GiB needed" in plan and "r=4" in plan
    events = []
    lab.progress = events.append
    out = TOOL.run(args, lab)
    assert out.status == "succeeded", out.error
    assert out.model_name == "tiny-course" and out.images() and any(e.stage == "train" for e in events)
    registered = find_model(lab.models_dir, "tiny-course")
    assert registered and registered.meta["lineage"]["parents"]
    from llmtutor.hf_models import resolve_hf_model

    assert (resolve_hf_model("tiny-course", lab.models_dir) / "config.json").is_file()  # type: ignore[operator]


def test_finetune_tool_refuses_bad_data_and_escapes_before_asking(lab):
    from llmtutor.tools.finetune_model import TOOL

    bad = lab.workspace / "bad.jsonl"
    bad.write_text('{"instruction": "hi", "output": ""}\n{"instruction": "x"}\nnot json\n', encoding="utf-8")
    with pytest.raises(ToolInputError, match="line 3|row 3|line 1|row 1"):
        TOOL.preview(TOOL.validate({"dataset": "bad.jsonl", "base_model": "tiny-a"}), lab)  # type: ignore[misc]
    with pytest.raises(ToolInputError, match="outside the workspace"):
        TOOL.preview(TOOL.validate({"dataset": "../../etc/passwd", "base_model": "tiny-a"}), lab)  # type: ignore[misc]
    with pytest.raises(ToolInputError, match="preference"):
        TOOL.preview(
            TOOL.validate(
                {
                    "method": "dpo",
                    "dataset": str(__import__("llmtutor.training.finetune", fromlist=["x"]).BUNDLED_SFT),  # type: ignore[misc]
                    "base_model": "tiny-a",
                }
            ),
            lab,
        )


def test_a_run_that_cannot_fit_is_refused_with_the_numbers(lab):
    from llmtutor.jobs import list_jobs
    from llmtutor.tools.finetune_model import TOOL

    with pytest.raises(ToolInputError, match=r"needs about [\d.]+ GiB but only [\d.]+ GiB is free"):
        TOOL.run(
            {"adapter": "full", "batch_size": 512, "max_seq_len": 32768}, lab
        )  # SmolLM2, full, huge batch
    assert list_jobs(lab.workspace) == []  # nothing started
