"""Quantization: the by-hand lab, llama.cpp's type mix, GGUF export checked by llama.cpp itself,
the Ollama Modelfile, and the whole recipe on a tiny model and on SmolLM2."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import pytest


def test_lab_round_trip_errors_are_bounded():
    import torch

    from llmtutor.training.quantize.weights import absmax_int8, fake_quantize, int4_groups, zeropoint_int8

    torch.manual_seed(0)
    w = torch.randn(64, 256) * 0.05
    w[3, 7] = 1.0  # one outlier: a per-row scale suffers in its row only, a group scale in its group only

    def rel(method: str) -> float:
        return float((fake_quantize(w, method) - w).norm() / w.norm())

    q, _ = absmax_int8(w)
    assert q.dtype == torch.int8 and int(q.abs().max()) == 127
    qz, _, _ = zeropoint_int8(w)
    assert int(qz.min()) >= -128 and int(qz.max()) <= 127
    q4, scale = int4_groups(w, 32)
    assert int(q4.abs().max()) <= 7 and scale.dtype == torch.float16 and scale.shape == (64, 8, 1)
    assert rel("absmax") < 0.02 and rel("zeropoint") < 0.02
    assert 0.03 < rel("int4") < 0.2  # 4 bits cost an order of magnitude more than 8
    err = (fake_quantize(w, "absmax") - w).abs()
    assert err[3, 8:].mean() > 4 * err[4, 8:].mean()  # the outlier stretched its whole row's scale
    err4 = (fake_quantize(w, "int4") - w).abs()
    assert err4[3, 32:].mean() < 1.5 * err4[4, 32:].mean()  # with groups, only its own group suffers


def test_type_mix_matches_llama_cpp_for_smollm2():
    """Measured against llama.cpp's llama_model_quantize (SmolLM2 f16 → Q4_K_M): identical mix."""
    from llmtutor.training.quantize.ggml_types import TypePlan

    plan = TypePlan("Q4_K_M", n_layers=30, tied_output=True)
    shapes = {
        "attn_q": (576, 576),
        "attn_k": (192, 576),
        "attn_v": (192, 576),
        "attn_output": (576, 576),
        "ffn_gate": (1536, 576),
        "ffn_up": (1536, 576),
        "ffn_down": (576, 1536),
    }
    types = Counter(plan.tensor_type(f"blk.{i}.{k}.weight", s) for i in range(30) for k, s in shapes.items())
    types[plan.tensor_type("token_embd.weight", (49152, 576))] += 1
    types.update(
        plan.tensor_type(f"blk.{i}.{k}.weight", (576,)) for i in range(30) for k in ("attn_norm", "ffn_norm")
    )
    types[plan.tensor_type("output_norm.weight", (576,))] += 1
    assert types == Counter({"Q5_0": 166, "F32": 61, "Q4_K": 16, "Q8_0": 15, "Q6_K": 14})


def test_unknown_type_and_unsupported_architecture_are_refused(tmp_path):
    from llmtutor.errors import ToolInputError
    from llmtutor.training.quantize import QuantizeConfig
    from llmtutor.training.quantize.gguf_export import read_config

    with pytest.raises(ValueError, match="unknown GGUF type"):
        QuantizeConfig(gguf_types=["Q4_K_X"])
    assert QuantizeConfig(gguf_types=["q4_k_m", "Q4_K_M", "q8_0"]).gguf_types == ["Q4_K_M", "Q8_0"]
    (tmp_path / "config.json").write_text('{"model_type": "gpt2"}')
    with pytest.raises(ToolInputError, match="Llama-architecture"):
        read_config(tmp_path)


def test_gptq_needs_cuda_and_says_so():
    from llmtutor.errors import ToolInputError
    from llmtutor.training.quantize import QuantizeConfig, check_methods

    with pytest.raises(ToolInputError, match="CUDA") as err:
        check_methods(QuantizeConfig(methods=["gptq"]), "cpu")
    assert "gguf" in err.value.hint


def test_smollm2_gguf_export_chats_in_llama_cpp_with_matching_tokenizer(smollm2_dir, tmp_path):
    """The real model: Q8_0 export through our writer, read back by llama.cpp (tokenizer,
    template, EOS), answers a factual question, and scores like the HF model."""
    from transformers import AutoTokenizer

    from llmtutor.assets import default_gguf_path
    from llmtutor.hf_models import load_causal_lm
    from llmtutor.training.evaluate.llamacpp_ppl import llamacpp_window_nll
    from llmtutor.training.evaluate.perplexity import course_text, perplexity, sliding_window_nll, tokenize
    from llmtutor.training.quantize.gguf_check import check_gguf
    from llmtutor.training.quantize.gguf_export import export_gguf

    out = tmp_path / "smol-Q8_0.gguf"
    types = export_gguf(smollm2_dir, out, "Q8_0", name="smol", tokenizer_gguf=default_gguf_path())
    assert Counter(types.values()) == Counter({"Q8_0": 211, "F32": 61})
    tokenizer = AutoTokenizer.from_pretrained(str(smollm2_dir))
    check = check_gguf(out, tokenizer, "Name the capital of Germany.")
    assert check.ok and check.tokenizer_matches and check.eos_ok, check.problems
    assert "Berlin" in check.answer and check.finish_reason == "stop"  # stops by itself: EOS survived
    ids = tokenize(tokenizer, course_text(), 256)
    model, _ = load_causal_lm(str(smollm2_dir), smollm2_dir.parent, device="cpu")
    hf = perplexity(*sliding_window_nll(model, ids, 256, 256))
    cpp = perplexity(*llamacpp_window_nll(out, ids, 256, 256))
    assert abs(cpp / hf - 1) < 0.03, (hf, cpp)


def test_tokenizer_built_from_tokenizer_json_matches_transformers(tiny_llama_dir, tmp_path):
    """No GGUF ancestor: the tokenizer block comes from tokenizer.json and llama.cpp must
    tokenize mixed text exactly as transformers does."""
    from transformers import AutoTokenizer

    from llmtutor.training.quantize.gguf_check import check_gguf
    from llmtutor.training.quantize.gguf_export import export_gguf

    out = tmp_path / "tiny-F16.gguf"
    export_gguf(tiny_llama_dir, out, "F16", name="tiny", tokenizer_gguf=None)
    check = check_gguf(out, AutoTokenizer.from_pretrained(str(tiny_llama_dir)), "Hi", max_tokens=4)
    assert check.tokenizer_matches and check.chat_template_matches and check.eos_ok, check.problems


def test_modelfile_carries_template_stop_tokens_and_system_prompt(smollm2_dir):
    from transformers import AutoTokenizer

    from llmtutor.training.quantize.modelfile import modelfile

    text = modelfile("m-Q4_K_M.gguf", AutoTokenizer.from_pretrained(str(smollm2_dir)))
    assert "FROM ./m-Q4_K_M.gguf" in text and "<|im_start|>{{ .Role }}" in text
    assert (
        'PARAMETER stop "<|im_end|>"' in text
        and 'SYSTEM """You are a helpful AI assistant named SmolLM' in text
    )


def test_quantize_run_on_tiny_model_reports_every_row(tiny_llama_dir, tmp_path):
    from llmtutor.training.quantize import QuantizeConfig, run

    events = []
    result = run(
        QuantizeConfig(
            model=str(tiny_llama_dir),
            methods=["absmax", "zeropoint", "int4", "gguf"],
            gguf_types=["Q8_0", "Q4_0"],
            imatrix=True,
            perplexity_tokens=128,
            perplexity_window=64,
            models_dir=tmp_path / "models",
            output_dir=tmp_path / "out",
            name="tiny",
        ),
        progress=events.append,
    )
    labels = [r.label for r in result.rows]
    assert labels[0].startswith("source") and len(labels) == 6
    assert all(r.perplexity and math.isfinite(r.perplexity) for r in result.rows)
    errors = {m: s["mean_pct"] for m, s in result.layer_errors.items()}
    assert errors["zeropoint"] < errors["int4"] and errors["absmax"] < errors["int4"]
    for key in ("histogram_absmax", "gguf_Q8_0", "gguf_Q4_0", "modelfile"):
        assert result.path(key).is_file(), key
    assert [r["name"] for r in result.registrations] == ["tiny-q8_0", "tiny-q4_0"]
    assert result.registration["lineage"]["parameters"] == {"type": "Q8_0", "imatrix": True}
    assert not (tmp_path / "out" / ".work").exists()
    assert {"quantize", "export", "check", "imatrix"} <= {e.stage for e in events}
    assert "| GGUF Q4_0 + imatrix | llama.cpp" in result.to_markdown()


@pytest.mark.slow
def test_bitsandbytes_int8_and_nf4_on_cpu(smollm2_dir, tmp_path):
    from llmtutor.training.quantize import QuantizeConfig, run

    result = run(
        QuantizeConfig(
            methods=["bnb_int8", "bnb_nf4"],
            perplexity_tokens=256,
            models_dir=smollm2_dir.parent,
            output_dir=tmp_path / "out",
        )
    )
    source, int8, nf4 = result.rows
    assert nf4.memory_mb < int8.memory_mb < source.memory_mb
    assert abs(int8.perplexity_delta_pct) < 10 and nf4.perplexity > source.perplexity


@pytest.mark.gpu
def test_bitsandbytes_nf4_on_cuda(smollm2_dir, tmp_path):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    from llmtutor.training.quantize import QuantizeConfig, run

    result = run(
        QuantizeConfig(
            methods=["bnb_nf4", "bnb_int8"],
            device="cuda",
            perplexity_tokens=512,
            models_dir=smollm2_dir.parent,
            output_dir=tmp_path / "out",
        )
    )
    source, nf4, int8 = result.rows
    assert result.device == "cuda" and nf4.memory_mb < int8.memory_mb < source.memory_mb
    assert nf4.perplexity < source.perplexity * 1.5


def test_exported_gguf_is_a_chat_model_by_name(tmp_path):
    from llmtutor.backends.llamacpp import resolve_gguf
    from llmtutor.errors import ModelNotFoundError
    from llmtutor.model_registry import RegisteredModel, register_model

    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    register_model(tmp_path, RegisteredModel(name="m-q4", path=str(gguf), kind="gguf"))
    register_model(tmp_path, RegisteredModel(name="m-merged", path=str(tmp_path), kind="merged"))
    assert resolve_gguf("m-q4", tmp_path) == gguf
    with pytest.raises(ModelNotFoundError, match="not a GGUF") as err:
        resolve_gguf("m-merged", tmp_path)
    assert "quantize" in err.value.hint


def test_source_gguf_follows_lineage_to_the_bundled_file(tmp_path):
    from llmtutor.assets import default_gguf_path
    from llmtutor.model_registry import RegisteredModel, register_model
    from llmtutor.training.quantize import source_gguf

    register_model(
        tmp_path,
        RegisteredModel(
            name="ft",
            path=str(tmp_path),
            kind="merged",
            meta={"lineage": {"parents": ["SmolLM2-135M-Instruct"]}},
        ),
    )
    register_model(
        tmp_path,
        RegisteredModel(
            name="mix", path=str(tmp_path), kind="merged", meta={"lineage": {"parents": ["ft", "other"]}}
        ),
    )
    assert source_gguf("mix", tmp_path) == default_gguf_path()
    assert source_gguf("unknown-model", tmp_path) is None
    assert source_gguf(str(Path(tmp_path)), tmp_path) is None  # a plain folder without a GGUF source
