"""Model merging with mergekit on tiny local Llamas (fine-tunes simulated by perturbing a base)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from llmtutor.errors import ToolInputError
from llmtutor.training.merge import IncompatibleModelsError, MergeConfig, MergeModel, run


def _perturbed(src: Path, dst: Path, seed: int, scale: float = 0.02) -> Path:
    """A 'fine-tune' of src: same tokenizer and shapes, weights moved by small noise."""
    import torch
    from safetensors.torch import load_file, save_file

    shutil.copytree(src, dst)
    generator = torch.Generator().manual_seed(seed)
    for file in dst.glob("*.safetensors"):
        tensors = load_file(str(file))
        moved = {
            k: (v + scale * torch.randn(v.shape, generator=generator)).contiguous()
            for k, v in tensors.items()
        }
        save_file(moved, str(file), metadata={"format": "pt"})
    return dst


@pytest.fixture(scope="module")
def family(tmp_path_factory, tiny_llama_dir: Path) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("family")
    return {
        "base": tiny_llama_dir,
        "ft1": _perturbed(tiny_llama_dir, root / "ft1", 1),
        "ft2": _perturbed(tiny_llama_dir, root / "ft2", 2),
    }


def _tensors(folder: Path) -> dict:
    from safetensors.torch import load_file

    out = {}
    for file in folder.glob("*.safetensors"):
        out.update(load_file(str(file)))
    return out


def test_slerp_lies_between_its_parents_and_loads(family, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    cfg = MergeConfig(
        method="slerp",
        models=[MergeModel(model=str(family["base"])), MergeModel(model=str(family["ft1"]))],
        t=0.5,
        output_dir=tmp_path / "out",
        models_dir=tmp_path,
        name="slerp-test",
    )
    result = run(cfg)
    merged, a, b = _tensors(tmp_path / "out" / "model"), _tensors(family["base"]), _tensors(family["ft1"])
    for key in ("model.layers.0.self_attn.q_proj.weight", "model.layers.1.mlp.down_proj.weight"):
        w, x, y = merged[key].float().flatten(), a[key].float().flatten(), b[key].float().flatten()
        assert torch.isfinite(w).all()
        cos = torch.nn.functional.cosine_similarity
        between = cos(x, y, dim=0)
        assert cos(w, x, dim=0) >= between - 1e-6 and cos(w, y, dim=0) >= between - 1e-6  # on the arc
        assert not torch.equal(w, x) and not torch.equal(w, y)
    model = AutoModelForCausalLM.from_pretrained(str(tmp_path / "out" / "model"))
    tokenizer = AutoTokenizer.from_pretrained(str(tmp_path / "out" / "model"))
    assert tokenizer.chat_template  # the base's tokenizer (and template) travel with the merge
    assert torch.isfinite(model(**tokenizer("hello", return_tensors="pt")).logits).all()
    assert result.registration["kind"] == "merged" and result.registration["lineage"]["method"] == "slerp"
    assert (
        len(result.registration["lineage"]["parents"]) == 2
        and (tmp_path / "out" / "mergekit_config.yml").is_file()
    )


def test_linear_merge_is_the_weighted_average(family, tmp_path):
    import torch

    cfg = MergeConfig(
        method="linear",
        models=[
            MergeModel(model=str(family["ft1"]), weight=0.5),
            MergeModel(model=str(family["ft2"]), weight=0.5),
        ],
        output_dir=tmp_path / "lin",
        models_dir=tmp_path,
    )
    run(cfg)
    merged, a, b = _tensors(tmp_path / "lin" / "model"), _tensors(family["ft1"]), _tensors(family["ft2"])
    key = "model.layers.0.mlp.up_proj.weight"
    assert torch.allclose(merged[key].float(), (a[key].float() + b[key].float()) / 2, atol=1e-5)


@pytest.mark.parametrize("method", ["ties", "dare_ties", "task_arithmetic"])
def test_task_vector_merges_have_no_nan(family, tmp_path, method):
    import torch

    models = [
        MergeModel(model=str(family[n]), weight=0.5, density=0.6 if method != "task_arithmetic" else None)
        for n in ("ft1", "ft2")
    ]
    cfg = MergeConfig(
        method=method,
        models=models,
        base_model=str(family["base"]),
        output_dir=tmp_path / method,
        models_dir=tmp_path,
    )
    run(cfg)
    merged, base = _tensors(tmp_path / method / "model"), _tensors(family["base"])
    key = "model.layers.1.self_attn.v_proj.weight"
    assert all(torch.isfinite(t.float()).all() for t in merged.values())
    assert not torch.equal(merged[key], base[key])


def test_ties_without_weights_merges_with_default_weights(family, tmp_path):
    """What the chat sends ("TIES-merge my fine-tunes, density 0.5"): no per-model weights.
    mergekit itself would fail mid-merge; the recipe fills LazyMergekit's default of 1.0."""
    models = [MergeModel(model=str(family[n]), density=0.5) for n in ("ft1", "ft2")]
    result = run(
        MergeConfig(
            method="ties",
            models=models,
            base_model=str(family["base"]),
            output_dir=tmp_path / "t",
            models_dir=tmp_path,
        )
    )
    sim = {Path(k).name: v for k, v in result.similarity.items()}
    assert all(0.5 < v <= 1.0 + 1e-9 for v in sim.values()), sim
    assert abs(sim["ft1"] - sim["ft2"]) < 0.01  # equal default weights: neither fine-tune dominates


def test_passthrough_stacks_layers(family, tmp_path):
    cfg = MergeConfig(
        method="passthrough",
        models=[
            MergeModel(model=str(family["base"]), layer_range=(0, 2)),
            MergeModel(model=str(family["ft1"]), layer_range=(1, 2)),
        ],
        output_dir=tmp_path / "pt",
        models_dir=tmp_path,
    )
    run(cfg)
    assert json.loads((tmp_path / "pt" / "model" / "config.json").read_text())["num_hidden_layers"] == 3


def test_incompatible_models_are_refused_before_writing(family, tmp_path, smollm2_dir):
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    wide = tmp_path / "wide"
    config = json.loads((family["base"] / "config.json").read_text())
    LlamaForCausalLM(LlamaConfig(**{**config, "hidden_size": 32, "head_dim": 8})).save_pretrained(wide)
    AutoTokenizer.from_pretrained(str(family["base"])).save_pretrained(wide)
    with pytest.raises(IncompatibleModelsError, match="hidden_size"):
        run(
            MergeConfig(
                models=[MergeModel(model=str(family["base"])), MergeModel(model=str(wide))],
                output_dir=tmp_path / "no",
                models_dir=tmp_path,
            )
        )
    assert not (tmp_path / "no" / "model").exists()
    # Same shapes, different vocabulary: embedding rows would mean different tokens.
    other_vocab = tmp_path / "vocab"
    shutil.copytree(family["ft1"], other_vocab)
    tokenizer = AutoTokenizer.from_pretrained(str(other_vocab))
    tokenizer.add_tokens(["<extra_token_a>", "<extra_token_b>"])
    tokenizer.save_pretrained(other_vocab)
    with pytest.raises(IncompatibleModelsError, match="tokenizers"):
        run(
            MergeConfig(
                models=[MergeModel(model=str(family["base"])), MergeModel(model=str(other_vocab))],
                output_dir=tmp_path / "no2",
                models_dir=tmp_path,
            )
        )
    del torch


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"method": "slerp", "models": [{"model": "a"}, {"model": "b"}, {"model": "c"}]}, "exactly two"),
        ({"method": "slerp", "models": [{"model": "a"}, {"model": "b"}], "t": 1.5}, "between 0 and 1"),
        ({"method": "ties", "models": [{"model": "a", "density": 0.5}]}, "set base_model"),
        ({"method": "ties", "base_model": "b", "models": [{"model": "a"}]}, "needs a density"),
        ({"method": "passthrough", "models": [{"model": "a"}]}, "layer_range"),
        ({"method": "linear", "models": [{"model": "a"}]}, "at least two"),
        ({"method": "moe", "models": [{"model": "a", "positive_prompts": ["x"]}]}, "at least two experts"),
        (
            {"method": "moe", "models": [{"model": "a", "positive_prompts": ["x"]}, {"model": "b"}]},
            "positive prompts for b",
        ),
        (
            {
                "method": "moe",
                "models": [
                    {"model": "a", "positive_prompts": ["x"]},
                    {"model": "a", "positive_prompts": ["y"]},
                ],
            },
            "appears twice",
        ),
        (
            {
                "method": "moe",
                "models": [
                    {"model": "a", "positive_prompts": ["x"]},
                    {"model": "b", "positive_prompts": ["x"]},
                ],
            },
            "same prompts",
        ),
        (
            {
                "method": "moe",
                "gate_mode": "random",
                "experts_per_token": 3,
                "models": [{"model": "a"}, {"model": "b"}],
            },
            "more than the 2 experts",
        ),
        (
            {"method": "slerp", "models": [{"model": "a", "positive_prompts": ["x"]}, {"model": "b"}]},
            "for MoE experts",
        ),
    ],
)
def test_parameters_are_validated_before_the_job(fields, message):
    with pytest.raises(ValueError, match=message):
        MergeConfig.model_validate(fields)


def test_lazymergekit_yaml_is_accepted(tmp_path):
    text = """
slices:
  - sources:
      - model: base-model
        layer_range: [0, 30]
      - model: my-finetune
        layer_range: [0, 30]
merge_method: slerp
base_model: base-model
parameters:
  t:
    - filter: self_attn
      value: [0, 0.5, 0.3, 0.7, 1]
    - value: 0.5
dtype: bfloat16
"""
    cfg = MergeConfig.from_yaml(text, output_dir=tmp_path)
    assert (
        cfg.method == "slerp"
        and [m.model for m in cfg.models] == ["base-model", "my-finetune"]
        and cfg.t == 0.5
    )
    with pytest.raises(ToolInputError, match="exactly two"):
        MergeConfig.from_yaml("merge_method: slerp\nmodels:\n  - model: a\n")


def test_moe_keeps_each_experts_mlp_and_routes_their_prompts(family, tmp_path):
    """mergekit-moe: attention from the base, each expert's MLP verbatim, a router per layer
    initialised from the experts' prompts; the result loads as Mixtral and generates."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    experts = [
        MergeModel(model=str(family["base"]), positive_prompts=["Tell me a story about a dragon."]),
        MergeModel(model=str(family["ft1"]), positive_prompts=["What is LoRA in fine-tuning?"]),
    ]
    result = run(
        MergeConfig(
            method="moe",
            models=experts,
            gate_mode="hidden",
            experts_per_token=1,
            output_dir=tmp_path / "moe",
            models_dir=tmp_path,
            name="tiny-moe",
        )
    )
    folder = tmp_path / "moe" / "model"
    config = json.loads((folder / "config.json").read_text())
    assert (
        config["model_type"] == "mixtral"
        and config["num_local_experts"] == 2
        and config["num_experts_per_tok"] == 1
    )
    moe, parents = _tensors(folder), [_tensors(family["base"]), _tensors(family["ft1"])]
    for i, parent in enumerate(parents):
        assert torch.equal(
            moe["model.layers.1.mlp.experts.down_proj"][i], parent["model.layers.1.mlp.down_proj.weight"]
        )
    assert torch.equal(
        moe["model.layers.0.self_attn.q_proj.weight"], parents[0]["model.layers.0.self_attn.q_proj.weight"]
    )
    routing = result.parameters["routing"]
    assert set(routing) == {str(family["base"]), str(family["ft1"])}
    assert all(abs(sum(row.values()) - 1) < 1e-3 for row in routing.values())
    assert "router sends" in result.to_markdown() and (tmp_path / "moe" / "mergekit_moe_config.yml").is_file()
    assert result.registration["lineage"]["method"] == "moe"
    model = AutoModelForCausalLM.from_pretrained(str(folder))
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    with torch.no_grad():
        logits = model(**tokenizer("What is LoRA?", return_tensors="pt")).logits
    assert torch.isfinite(logits).all()


def test_mergekit_moe_yaml_is_accepted(tmp_path):
    text = """
base_model: base-model
gate_mode: cheap_embed
experts_per_token: 1
experts:
  - source_model: coder
    positive_prompts: ["Write a Python function"]
  - source_model: writer
    positive_prompts: ["Write a poem"]
"""
    cfg = MergeConfig.from_yaml(text, output_dir=tmp_path)
    assert cfg.method == "moe" and cfg.gate_mode == "cheap_embed" and cfg.base_model == "base-model"
    assert [m.positive_prompts for m in cfg.models] == [["Write a Python function"], ["Write a poem"]]


def test_moe_experts_default_to_their_training_prompts(tmp_path):
    from llmtutor.training.merge.moe import GENERAL_PROMPTS, expert_prompts

    data = tmp_path / "data.jsonl"
    data.write_text(
        '{"instruction": "What is GGUF?", "output": "A file format."}\n'
        '{"messages": [{"role": "user", "content": "What is DPO?"}, {"role": "assistant", "content": "x"}]}\n',
        encoding="utf-8",
    )
    (tmp_path / "sft" / "merged").mkdir(parents=True)
    (tmp_path / "sft" / "training_config.json").write_text(
        json.dumps({"dataset": str(data)}), encoding="utf-8"
    )
    assert expert_prompts("sft", tmp_path / "sft" / "merged", is_base=False) == [
        "What is GGUF?",
        "What is DPO?",
    ]
    assert expert_prompts("base", tmp_path / "elsewhere", is_base=True) == GENERAL_PROMPTS
    assert expert_prompts("unknown", tmp_path / "elsewhere", is_base=False) is None


def test_a_registered_merge_method_is_valid_in_the_config_and_listed_by_the_tool(family, tmp_path):
    """Adding a method is one `register_method`: the config accepts it (its own check included),
    the tool's JSON schema lists and describes it, and the recipe runs it; unregistered, it is gone."""
    import yaml

    from llmtutor.tools.merge_models import TOOL
    from llmtutor.training.merge.methods import (
        MergeMethod,
        register_method,
        render_models,
        unregister_method,
    )

    def as_linear(cfg: MergeConfig, paths: dict) -> str:  # mergekit's linear merge under another name
        return render_models(cfg.model_copy(update={"method": "linear"}), paths)

    method = MergeMethod(
        "halfway",
        "a test method: the plain average of two models",
        check=lambda cfg: [] if len(cfg.models) == 2 else ["halfway averages exactly two models"],
        render=as_linear,
    )
    with pytest.raises(ValueError, match="unknown merge method 'halfway': choose one of linear, slerp"):
        MergeConfig(method="halfway", models=[MergeModel(model="a")])
    register_method(method)
    try:
        with pytest.raises(ValueError, match="registered twice"):
            register_method(method)
        with pytest.raises(ValueError, match="exactly two"):
            MergeConfig(method="halfway", models=[MergeModel(model="a")])
        schema = TOOL.input_schema()["properties"]
        assert (
            schema["method"]["enum"][-1] == "halfway" and "plain average" in schema["method"]["description"]
        )
        assert "halfway" in schema["weights"]["description"]  # takes weights: named where they apply
        assert TOOL.validate({"method": "halfway", "models": ["a", "b"]}).method == "halfway"  # type: ignore[attr-defined]
        cfg = MergeConfig(
            method="halfway",
            models=[MergeModel(model=str(family["ft1"])), MergeModel(model=str(family["ft2"]))],
            output_dir=tmp_path / "half",
            models_dir=tmp_path,
        )
        result = run(cfg)
        assert result.method == "halfway" and result.registration["lineage"]["base"] is None
        assert (
            yaml.safe_load((tmp_path / "half" / "mergekit_config.yml").read_text())["merge_method"]
            == "linear"
        )
        assert set(result.similarity) == {str(family["ft1"]), str(family["ft2"])}
    finally:
        unregister_method("halfway")
    assert "halfway" not in TOOL.input_schema()["properties"]["method"]["enum"]
    with pytest.raises(ToolInputError, match="unknown merge method"):
        TOOL.validate({"method": "halfway"})
