"""`llmtutor lab run`: a recipe of jobs (fine-tune → merge → quantize → evaluate) on a tiny model;
failures stop the run with earlier results intact, re-runs skip what is done."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from llmtutor.agents.lab_pipeline import load_recipe, run_pipeline
from llmtutor.errors import ToolInputError
from llmtutor.model_registry import RegisteredModel, find_model, register_model
from llmtutor.tools.registry import ToolContext, default_registry

STEPS = [
    {
        "id": "finetune",
        "tool": "finetune_model",
        "args": {
            "dataset": "course",
            "base_model": "tiny-base",
            "max_steps": 2,
            "batch_size": 2,
            "max_seq_len": 64,
            "evaluate": False,
            "name": "tiny-lab-sft",
        },
    },
    {
        "id": "merge",
        "tool": "merge_models",
        "args": {
            "method": "slerp",
            "models": ["tiny-base", "{finetune}"],
            "base_model": "tiny-base",
            "t": 0.5,
            "name": "tiny-lab-slerp",
        },
    },
    {
        "id": "quantize",
        "tool": "quantize_model",
        "args": {
            "model": "{merge}",
            "methods": ["gguf"],
            "gguf_types": ["Q8_0"],
            "perplexity_tokens": 128,
            "name": "tiny-lab-q8",
        },
    },
    {
        "id": "evaluate",
        "tool": "evaluate_model",
        "args": {
            "models": ["tiny-base", "{merge}", "{quantize}"],
            "metrics": ["perplexity"],
            "quick": True,
            "text": "notes.md",
        },
    },  # a short text: llama.cpp scores the GGUF one forced token at a time
]


@pytest.fixture
def lab(tmp_path, tiny_llama_dir) -> ToolContext:
    models = tmp_path / "models"
    shutil.copytree(tiny_llama_dir, models / "tiny-base")
    register_model(models, RegisteredModel(name="tiny-base", path=str(models / "tiny-base"), kind="merged"))
    from llmtutor.training.evaluate.perplexity import course_text

    (tmp_path / "notes.md").write_text(course_text()[:1500], encoding="utf-8")
    return ToolContext(workspace=tmp_path)


def _recipe(tmp_path: Path, steps: list[dict], name: str = "tiny-lab") -> Path:
    path = tmp_path / f"{name}.yaml"
    recipe = {"name": name, "steps": steps}
    if any(step["id"] == "quantize" for step in steps):
        recipe["chat_model"] = "{quantize}"
    path.write_text(yaml.safe_dump(recipe), encoding="utf-8")
    return path


def test_recipe_runs_every_step_as_a_job_and_ends_chat_ready(lab, tmp_path):
    result = run_pipeline(load_recipe(_recipe(tmp_path, STEPS)), default_registry(), lab)
    assert result.status == "succeeded", [(s.id, s.error) for s in result.steps]
    assert [s.status for s in result.steps] == ["succeeded"] * 4 and all(s.job_id for s in result.steps)
    assert result.chat_model == "tiny-lab-q8" and find_model(lab.models_dir, "tiny-lab-q8").kind == "gguf"
    assert "tiny-lab-sft" in result.family_tree and "tiny-lab-slerp" in result.family_tree
    markdown = result.to_markdown()
    assert "LLMTUTOR_CHAT_MODEL=tiny-lab-q8" in markdown and "perplexity" in markdown.lower()
    assert find_model(lab.models_dir, "tiny-lab-q8").meta["lineage"]["parents"] == ["tiny-lab-slerp"]

    again = run_pipeline(load_recipe(_recipe(tmp_path, STEPS)), default_registry(), lab)
    assert [s.status for s in again.steps] == ["skipped"] * 4 and again.chat_model == "tiny-lab-q8"


def test_a_failed_step_stops_the_run_and_a_rerun_resumes_after_the_done_steps(lab, tmp_path):
    broken = json.loads(json.dumps(STEPS[:2]))
    broken[1]["args"]["method"] = "ties"  # TIES needs a density: refused by the merge tool's plan
    broken[1]["args"]["density"] = None
    result = run_pipeline(load_recipe(_recipe(tmp_path, broken)), default_registry(), lab)
    assert result.status == "failed" and [s.status for s in result.steps] == ["succeeded", "failed"]
    assert "density" in result.steps[1].error
    sft = find_model(lab.models_dir, "tiny-lab-sft")
    assert sft is not None and Path(sft.path).is_dir()  # the earlier step's model is intact

    fixed = run_pipeline(load_recipe(_recipe(tmp_path, STEPS[:2])), default_registry(), lab)
    assert [s.status for s in fixed.steps] == ["skipped", "succeeded"] and fixed.status == "succeeded"


def test_invalid_recipes_are_refused_before_anything_runs(tmp_path):
    with pytest.raises(ToolInputError, match="before a step"):
        load_recipe(_recipe(tmp_path, [STEPS[1]]))
    bad_chat = tmp_path / "bad-chat.yaml"
    bad_chat.write_text(
        yaml.safe_dump({"name": "x", "steps": STEPS[:1], "chat_model": "{nope}"}), encoding="utf-8"
    )
    with pytest.raises(ToolInputError, match="no step has that id"):
        load_recipe(bad_chat)
    with pytest.raises(ToolInputError, match="cannot read recipe"):
        load_recipe(tmp_path / "missing.yaml")


def test_bundled_recipe_is_valid_and_chains_the_four_labs():
    recipe = load_recipe(None)
    assert [s.tool for s in recipe.steps] == [
        "finetune_model",
        "merge_models",
        "quantize_model",
        "evaluate_model",
    ]
    registry = default_registry()
    for step in recipe.steps:  # the arguments validate against each tool's own input model
        registry.get(step.tool).validate({k: v for k, v in step.args.items()})


@pytest.mark.slow
def test_bundled_recipe_on_smollm2_ends_with_an_eval_card_and_a_chat_model(tmp_path, smollm2_dir):
    """The whole course lab on the real model (~12 min on 2 CPU cores)."""
    shutil.copytree(smollm2_dir, tmp_path / "models" / smollm2_dir.name)  # skip the GGUF conversion
    result = run_pipeline(load_recipe(None), default_registry(), ToolContext(workspace=tmp_path))
    assert result.status == "succeeded", [(s.id, s.error) for s in result.steps]
    card = result.steps[-1].summary
    assert "course-lab-q4km" in card and "BLEU" in card and "quiz" in card.lower()
    assert result.chat_model == "course-lab-q4km"
    from llmtutor.backends.llamacpp import resolve_gguf

    assert resolve_gguf("course-lab-q4km", tmp_path / "models").stat().st_size > 50e6
