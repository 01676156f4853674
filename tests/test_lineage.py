"""Lineage records and the family tree (Mermaid + PNG)."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmtutor.errors import ModelNotFoundError
from llmtutor.model_registry import RegisteredModel, register_model, require_model
from llmtutor.training.lineage import family_tree, render_png


def _register(models_dir: Path, name: str, kind: str, parents: list[str], method: str, **params) -> None:
    folder = models_dir / name
    folder.mkdir(parents=True, exist_ok=True)
    register_model(
        models_dir,
        RegisteredModel(
            name=name,
            path=str(folder),
            kind=kind,  # type: ignore[arg-type]
            meta={"lineage": {"parents": parents, "method": method, "parameters": params}},
        ),
    )


def test_family_tree_walks_ancestors_and_descendants(tmp_path):
    _register(tmp_path, "course-sft", "merged", ["SmolLM2-135M-Instruct"], "sft-lora", r=8)
    _register(tmp_path, "course-slerp", "merged", ["SmolLM2-135M-Instruct", "course-sft"], "slerp", t=0.5)
    _register(tmp_path, "course-q4", "gguf", ["course-slerp"], "gguf", type="Q4_K_M")
    _register(tmp_path, "unrelated", "merged", ["other-base"], "sft-lora")
    tree = family_tree(tmp_path, "course-slerp")
    assert set(tree.nodes) == {"course-slerp", "SmolLM2-135M-Instruct", "course-sft", "course-q4"}
    assert {(e.parent, e.child) for e in tree.edges} == {
        ("SmolLM2-135M-Instruct", "course-sft"),
        ("SmolLM2-135M-Instruct", "course-slerp"),
        ("course-sft", "course-slerp"),
        ("course-slerp", "course-q4"),
    }
    mermaid = tree.to_mermaid()
    assert mermaid.startswith("graph TD") and "slerp t=0.5" in mermaid and mermaid.count("-->") == 4
    png = render_png(tree, tmp_path / "tree.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ModelNotFoundError, match="known: "):
        family_tree(tmp_path, "nope")


def test_registry_names_are_checked_and_missing_folders_reported(tmp_path):
    from llmtutor.errors import ToolInputError

    with pytest.raises(ToolInputError):
        register_model(tmp_path, RegisteredModel(name="../evil", path=str(tmp_path), kind="merged"))
    register_model(tmp_path, RegisteredModel(name="gone", path=str(tmp_path / "gone"), kind="merged"))
    with pytest.raises(ModelNotFoundError):
        require_model(tmp_path, "gone")


def test_models_cli_lists_and_draws(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from llmtutor.ui.cli import app

    monkeypatch.setenv("LLMTUTOR_WORKSPACE", str(tmp_path))
    _register(tmp_path / "models", "course-sft", "merged", ["SmolLM2-135M-Instruct"], "sft-lora", r=8)
    runner = CliRunner()
    listed = runner.invoke(app, ["models", "list", "--json"])
    assert listed.exit_code == 0 and [m["name"] for m in __import__("json").loads(listed.stdout)] == [
        "course-sft"
    ]
    tree = runner.invoke(app, ["models", "tree", "course-sft", "--png", str(tmp_path / "t.png")])
    assert tree.exit_code == 0 and "sft-lora r=8" in tree.stdout and (tmp_path / "t.png").is_file()
    assert runner.invoke(app, ["models", "tree", "missing"]).exit_code == 2
