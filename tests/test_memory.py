"""`estimate_memory`: the arithmetic against published figures, name matching,
config.json reading, bilingual argument extraction and typed input errors."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from llmtutor.errors import ToolInputError
from llmtutor.tools.estimate_memory import EXAMPLES, TOOL, extract_memory_args
from llmtutor.tools.registry import ToolContext
from llmtutor.training.memory import run
from llmtutor.training.memory_config import MemoryEstimateConfig
from llmtutor.training.memory_formulas import GIB
from llmtutor.training.memory_report import MemoryEstimate
from llmtutor.training.model_shapes import known_models, lookup, parse_param_count


def estimate(**kwargs) -> MemoryEstimate:
    return run(MemoryEstimateConfig(**kwargs))


def part(result: MemoryEstimate, name: str) -> int:
    return next(p.bytes for p in result.breakdown if p.name == name)


# ----- published figures ---------------------------------------------------------
def test_fp32_weights_are_four_bytes_per_param():
    result = estimate(model="Llama-2-7B", precision="fp32")
    assert part(result, "weights") == 4 * result.architecture.params


def test_7b_fp16_weights_are_13_to_14_gib():
    result = estimate(params="7B", precision="fp16")
    assert 13 <= part(result, "weights") / GIB <= 14
    # Llama-2-7B has 6.74e9 params: the "13.5 GB" everyone quotes.
    llama = estimate(model="Llama-2-7B", precision="fp16")
    assert 13e9 <= part(llama, "weights") <= 14e9


def test_full_finetune_adam_is_16_bytes_per_param_plus_activations():
    result = estimate(params="7B", mode="full", context_length=512, batch_size=1, gradient_checkpointing=True)
    states = sum(part(result, n) for n in ("weights", "gradients", "optimizer states"))
    assert states == 16 * result.architecture.params  # ZeRO paper: 2 + 2 + 12
    assert 16 <= result.bytes_per_param <= 24
    assert result.trainable_params == result.architecture.params


def test_eight_bit_adam_and_checkpointing_shrink_training():
    base = estimate(model="Llama-2-7B", mode="full", context_length=2048)
    adam8 = estimate(model="Llama-2-7B", mode="full", context_length=2048, optimizer="adamw_8bit")
    ckpt = estimate(model="Llama-2-7B", mode="full", context_length=2048, gradient_checkpointing=True)
    assert part(adam8, "optimizer states") == 6 * adam8.architecture.params  # fp32 master + 2 × 1 byte
    assert part(ckpt, "activations") < part(base, "activations") / 4


@pytest.mark.parametrize("model", ["Llama-2-7B", "7B"])
def test_qlora_7b_fits_in_about_5_gb(model):
    kwargs = {"model": model} if model[0] == "L" else {"params": model}
    result = estimate(**kwargs, mode="qlora", context_length=512)
    assert 4.5e9 <= result.total_bytes <= 7e9
    assert result.precision == "nf4"
    assert any("LoRA r=16" in a for a in result.assumptions)


def test_nf4_weights_include_double_quant_overhead():
    arch = lookup("Llama-2-7B")
    assert arch is not None
    result = estimate(model="Llama-2-7B", precision="nf4")
    linear = arch.layers * arch.linear_params_per_layer()
    expected = linear * 4.127 / 8 + (arch.params - linear) * 2  # embeddings/lm_head stay 16-bit
    assert part(result, "weights") == pytest.approx(expected, rel=1e-6)


def test_lora_trainable_params_match_the_lora_paper():
    result = estimate(model="Llama-2-7B", mode="lora", lora_rank=8, lora_targets=["q_proj", "v_proj"])
    assert result.trainable_params == 4_194_304  # PEFT prints this for r=8 on q,v
    short = estimate(model="Llama-2-7B", mode="lora", lora_rank=8, lora_targets=["q", "v"])
    assert short.trainable_params == 4_194_304


def test_kv_cache_llama2_7b_4096_fp16_is_exactly_2_gib():
    result = estimate(model="Llama-2-7B", precision="fp16", context_length=4096, batch_size=1)
    assert part(result, "KV cache") == 2 * 32 * 4096 * 4096 * 2 == 2 * GIB


def test_gqa_kv_cache_is_a_quarter_of_mha():
    mha = estimate(model="Llama-2-7B", context_length=8192)  # 32 KV heads
    gqa = estimate(model="Llama-3-8B", context_length=8192)  # 8 KV heads, same layers and head dim
    assert part(gqa, "KV cache") * 4 == part(mha, "KV cache")


def test_mixtral_loads_all_experts_and_gguf_is_smaller():
    result = estimate(model="Mixtral-8x7B", precision="bf16")
    assert result.architecture.experts == 8 and result.architecture.params > 46e9
    assert part(result, "weights") == 2 * result.architecture.params
    q4 = estimate(model="Mixtral-8x7B", precision="Q4_K_M")
    assert 0.55 <= part(q4, "weights") / q4.architecture.params <= 0.65  # ~4.85 bits/weight


def test_table_params_agree_with_the_shapes():
    for name in known_models():
        arch = lookup(name)
        assert arch is not None
        assert arch.count_params() == pytest.approx(arch.params, rel=0.01), name


# ----- inputs --------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("llama3 8b", "Llama-3-8B"),
        ("Llama-3-8B", "Llama-3-8B"),
        ("meta-llama/Meta-Llama-3-8B", "Llama-3-8B"),
        ("meta-llama/Llama-3.1-8B-Instruct", "Llama-3.1-8B"),
        ("LLAMA_2_7B_CHAT_HF", "Llama-2-7B"),
        ("mistralai/Mistral-7B-Instruct-v0.2", "Mistral-7B"),
        ("mixtral 8x7b", "Mixtral-8x7B"),
        ("Qwen/Qwen2.5-0.5B-Instruct", "Qwen2.5-0.5B"),
        ("qwen2.5 72b", "Qwen2.5-72B"),
        ("microsoft/Phi-3-mini-4k-instruct", "Phi-3-mini"),
        ("google/gemma-2-9b-it", "Gemma-2-9B"),
        ("HuggingFaceTB/SmolLM2-1.7B-Instruct", "SmolLM2-1.7B"),
        ("llama 3.2 1b", "Llama-3.2-1B"),
    ],
)
def test_name_matching(name, expected):
    result = estimate(model=name)
    assert result.model == expected and not result.approximate


def test_params_only_is_flagged_approximate():
    result = estimate(params="3B")
    assert result.approximate and result.architecture.params == 3_000_000_000
    assert any("approximated" in a for a in result.assumptions)
    assert estimate(params_billion=3).architecture.params == 3_000_000_000
    unknown = estimate(model="01-ai/Yi-34B")  # not in the table: sized from its name
    assert unknown.approximate and unknown.architecture.params == 34_000_000_000


@pytest.mark.parametrize(
    ("value", "count"),
    [
        ("3B", 3e9),
        ("135M", 135e6),
        (7e9, 7e9),
        ("1.5 billion", 1.5e9),
        ("70亿", 7e9),
        (7, 7e9),
        ("7,000,000,000", 7e9),
    ],
)
def test_parse_param_count(value, count):
    assert parse_param_count(value) == pytest.approx(count)


def test_reads_a_local_config_json(tmp_path):
    config = {
        "model_type": "llama",
        "hidden_size": 4096,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "intermediate_size": 14336,
        "vocab_size": 128256,
        "tie_word_embeddings": False,
    }
    (tmp_path / "config.json").write_text(json.dumps(config), encoding="utf-8")
    for path in (tmp_path, tmp_path / "config.json"):
        result = estimate(config_path=str(path), context_length=4096)
        arch = result.architecture
        assert (arch.layers, arch.kv_heads, arch.head_dim) == (32, 8, 128)
        assert arch.params == pytest.approx(8.03e9, rel=0.01)
        assert result.source == "config.json" and not result.approximate
        assert part(result, "KV cache") == GIB // 2


def test_default_model_and_markdown():
    result = estimate()
    assert result.model == "SmolLM2-135M" and result.mode == "inference" and result.precision == "bf16"
    md = estimate(model="Llama-3-8B", mode="lora", gpu_memory_gb=24).to_markdown()
    assert "| weights |" in md and "**total**" in md and "Verdict" in md and "24 GB" in md
    assert "8.03e9 params × 2 bytes (bf16)" in md
    fits = estimate(model="Llama-3-8B", precision="Q4_K_M")
    assert fits.fits_gpus_gb[0] == 8 and "8 GB" in fits.verdict


def _ctx(tmp_path) -> ToolContext:
    return ToolContext(workspace=tmp_path)


@pytest.mark.parametrize(
    ("args", "field"),
    [
        ({"params": -7e9}, "params"),
        ({"params": "-3B"}, "params"),
        ({"params": "lots"}, "params"),
        ({"precision": "fp3"}, "precision"),
        ({"model": "llama-2-7b", "mode": "full", "precision": "nf4"}, "qlora"),
        ({"model": "llama-2-7b", "mode": "lora", "precision": "Q4_K_M"}, "GGUF"),
        ({"lora_targets": ["attention_sink"]}, "lora_targets"),
        ({"context_length": 0}, "context_length"),
        ({"no_such_field": 1}, "no_such_field"),
    ],
)
def test_bad_input_is_a_tool_input_error(tmp_path, args, field):
    with pytest.raises(ToolInputError) as info:
        TOOL.run(args, _ctx(tmp_path))
    assert field in str(info.value)


def test_unknown_model_and_missing_config_name_the_fix(tmp_path):
    with pytest.raises(ToolInputError, match="params="):
        TOOL.run({"model": "my-secret-model"}, _ctx(tmp_path))
    with pytest.raises(ToolInputError, match="config.json"):
        TOOL.run({"config_path": str(tmp_path / "nowhere")}, _ctx(tmp_path))


# ----- extraction ----------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("How much memory does a 3B model need for full fine-tuning?", {"params": "3B", "mode": "full"}),
        ("8B 模型在 fp16 下推理需要多少显存？", {"params": "8B", "precision": "fp16", "mode": "inference"}),
        (
            "Run Llama-3-8B in half precision",
            {"model": "Llama-3-8B", "precision": "fp16", "mode": "inference"},
        ),
        ("meta-llama/Meta-Llama-3-8B with 4k context", {"model": "Llama-3-8B", "context_length": 4096}),
        ("135M 的模型全量微调", {"params": "135M", "mode": "full"}),
        ("Qwen2.5 7B 用 4 位加载推理", {"model": "Qwen2.5-7B", "precision": "nf4", "mode": "inference"}),
        (
            "serve mistral 7b as Q4_K_M, 8192 tokens",
            {"model": "Mistral-7B", "precision": "Q4_K_M", "context_length": 8192},
        ),
        ("QLoRA on a 13B model, batch size 4", {"params": "13B", "mode": "qlora", "batch_size": 4}),
        ("LoRA fine-tune Gemma 2 9B in int8", {"model": "Gemma-2-9B", "precision": "int8", "mode": "lora"}),
        ("7B 模型微调", {"params": "7B", "mode": "full"}),
        ("上下文 4096，批大小 8，1.5B 模型推理", {"params": "1.5B", "context_length": 4096, "batch_size": 8}),
        ("Mixtral 8x7B in 4-bit", {"model": "Mixtral-8x7B", "precision": "nf4"}),
        ("fine-tune a 7B model in 4-bit", {"params": "7B", "mode": "qlora"}),
        ("Will Mistral 7B fit on a 24 GB GPU for LoRA training?", {"mode": "lora", "gpu_memory_gb": 24.0}),
        ("train a 1B model with 8-bit Adam", {"params": "1B", "mode": "full", "optimizer": "adamw_8bit"}),
        ("70亿参数的模型用 bf16 训练", {"params": "7B", "precision": "bf16", "mode": "full"}),
        ("Qwen2.5-Coder-32B inference", {"params": "32B", "mode": "inference"}),
    ],
)
def test_extract_args(text, expected):
    args = extract_memory_args(text)
    assert expected.items() <= args.items(), args
    run(TOOL.validate(args))  # type: ignore[arg-type]


def test_extraction_never_breaks_run_on_the_examples():
    for text in (*EXAMPLES, "hello", "你好", "GPT-4?", "train it in GGUF Q4_K_M"):
        result = run(TOOL.validate(extract_memory_args(text)))  # type: ignore[arg-type]
        assert result.total_bytes > 0, text


def test_examples_are_many_and_bilingual():
    chinese = [e for e in EXAMPLES if re.search(r"[\u4e00-\u9fff]", e)]
    assert len(EXAMPLES) >= 30 and 0.4 <= len(chinese) / len(EXAMPLES) <= 0.6
    assert len(set(EXAMPLES)) == len(EXAMPLES)


def test_tool_spec_and_light_import():
    assert TOOL.name == "estimate_memory" and not TOOL.expensive and not TOOL.writes
    assert TOOL.openai_schema()["function"]["parameters"]["properties"]["precision"]
    probe = "import sys, llmtutor.tools.estimate_memory; print('torch' in sys.modules or 'transformers' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == "False"
