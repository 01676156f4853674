"""Fine-tuning recipes (training/finetune): data validation, chat-template rendering with prompt
masking, packed batches, LoRA/full SFT, DPO, ORPO, cancel, resume, artifacts.

Default tests train the 2-layer tiny Llama (`tiny_llama_dir`) for a few steps; the real
SmolLM2 run is `slow`, QLoRA is `gpu`."""

from __future__ import annotations

import csv
import json
import math
import threading
from pathlib import Path
from typing import Any

import pytest

from llmtutor.errors import CancelledError, ToolInputError
from llmtutor.training.finetune import (
    BUNDLED_PREFERENCE,
    BUNDLED_SFT,
    DatasetError,
    FinetuneConfig,
    FinetuneResult,
    load_dataset_rows,
    render_example,
    run,
    tokenize_example,
)
from llmtutor.training.progress import TrainingEvent

QA = [
    ("What is LoRA?", "LoRA trains small low-rank matrices next to frozen weights."),
    ("What does QLoRA add?", "It quantizes the frozen base model to 4-bit NF4."),
    ("什么是量化？", "量化是用更少的比特表示模型权重。"),
    ("Who wrote the LLM Course?", "Maxime Labonne wrote the LLM Course."),
]
PAIRS = [
    {
        "prompt": "What is LoRA?",
        "chosen": "Low-rank adapters on frozen weights.",
        "rejected": "A radio protocol.",
    },
    {"prompt": "Who wrote the LLM Course?", "chosen": "Maxime Labonne.", "rejected": "I don't know."},
    {
        "prompt": [{"role": "user", "content": "什么是量化？"}],
        "chosen": [{"role": "assistant", "content": "用更少的比特表示权重。"}],
        "rejected": "不知道。",
    },
    {"prompt": "What is DPO?", "chosen": "Direct Preference Optimization.", "rejected": "A database."},
]


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def tiny_tokenizer(tiny_llama_dir: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tiny_llama_dir))


@pytest.fixture(scope="module")
def sft_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rows = [{"instruction": q, "input": "", "output": a} for q, a in QA] * 3  # repeated: loss must fall
    return write_jsonl(tmp_path_factory.mktemp("data") / "sft.jsonl", rows)


@pytest.fixture(scope="module")
def pref_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_jsonl(tmp_path_factory.mktemp("data") / "pref.jsonl", PAIRS)


def tiny_config(base: Path, dataset: Path, out: Path, **overrides: Any) -> FinetuneConfig:
    values: dict[str, Any] = dict(
        base_model=str(base),
        dataset=dataset,
        output_dir=out,
        max_steps=2,
        batch_size=2,
        learning_rate=1e-2,
        eval_fraction=0,
        max_seq_len=128,
        merge=False,
        save_steps=50,
    )
    return FinetuneConfig(**(values | overrides))


# ----- data: formats and row-level errors ----------------------------------------------------
def test_formats_are_detected_and_converted(tmp_path: Path) -> None:
    alpaca = load_dataset_rows(
        write_jsonl(tmp_path / "a.jsonl", [{"instruction": "Q", "input": "ctx", "output": "A"}])
    )
    assert alpaca.format == "alpaca"
    assert alpaca.rows[0]["messages"] == [
        {"role": "user", "content": "Q\n\nctx"},
        {"role": "assistant", "content": "A"},
    ]
    share = load_dataset_rows(
        write_jsonl(
            tmp_path / "s.jsonl",
            [
                {
                    "conversations": [
                        {"from": "system", "value": "Be brief."},
                        {"from": "human", "value": "Hi"},
                        {"from": "gpt", "value": "Hello"},
                    ]
                }
            ],
        )
    )
    assert (share.format, share.source_format) == ("chat", "sharegpt")
    assert [m["role"] for m in share.rows[0]["messages"]] == ["system", "user", "assistant"]
    text = load_dataset_rows(write_jsonl(tmp_path / "t.jsonl", [{"text": "Attention is all you need."}]))
    assert text.format == "text" and text.rows == [{"text": "Attention is all you need."}]
    pref = load_dataset_rows(write_jsonl(tmp_path / "p.jsonl", PAIRS))
    assert pref.format == "preference"
    assert pref.rows[0]["chosen"] == [
        {"role": "assistant", "content": "Low-rank adapters on frozen weights."}
    ]
    assert pref.rows[2]["prompt"] == [{"role": "user", "content": "什么是量化？"}]
    with (tmp_path / "c.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["instruction", "output"])
        writer.writeheader()
        writer.writerow({"instruction": "Q", "output": "A"})
    assert load_dataset_rows(tmp_path / "c.csv").format == "alpaca"
    (tmp_path / "j.json").write_text(
        json.dumps(
            {
                "data": [
                    {"messages": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}]}
                ]
            }
        )
    )
    assert load_dataset_rows(tmp_path / "j.json").format == "chat"
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist([{"text": "x"}, {"text": "y"}]), tmp_path / "t.parquet")
    assert len(load_dataset_rows(tmp_path / "t.parquet").rows) == 2


def test_bad_rows_are_listed_with_their_line(tmp_path: Path) -> None:
    lines = [
        json.dumps({"instruction": "Q1", "output": "A1"}),
        json.dumps({"instruction": "Q2"}),  # line 2: missing output
        json.dumps({"instruction": "Q3", "output": "  "}),  # line 3: empty output
        "{not json",  # line 4: not JSON
        json.dumps({"instruction": "Q5", "output": 5}),  # line 5: wrong type
        json.dumps({"instruction": ["Q6"], "output": "A6"}),
    ]  # line 6: wrong type
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(DatasetError) as err:
        load_dataset_rows(path)
    message = str(err.value)
    assert isinstance(err.value, ToolInputError)
    for expected in (
        "line 2: missing 'output'",
        "line 3: 'output' is empty",
        "line 4: not valid JSON",
        "line 5: 'output' must be a string, got int",
        "line 6: 'instruction' must be a string",
    ):
        assert expected in message, message
    assert "fix or remove those rows" in message


def test_dataset_level_errors(tmp_path: Path) -> None:
    (tmp_path / "empty.jsonl").write_text("\n\n", encoding="utf-8")
    with pytest.raises(DatasetError, match="empty"):
        load_dataset_rows(tmp_path / "empty.jsonl")
    with pytest.raises(DatasetError, match="not found"):
        load_dataset_rows(tmp_path / "missing.jsonl")
    with pytest.raises(DatasetError, match="unsupported dataset file type"):
        load_dataset_rows(write_jsonl(tmp_path / "data.txt", [{"text": "x"}]))
    with pytest.raises(DatasetError, match="unknown dataset format: fields seen: answer, question"):
        load_dataset_rows(write_jsonl(tmp_path / "u.jsonl", [{"question": "Q", "answer": "A"}]))
    mixed = [
        {"instruction": "Q", "output": "A"},
        {"messages": [{"role": "user", "content": "Q"}]},
        {"text": "x"},
    ]
    with pytest.raises(DatasetError, match="mixed formats") as err:
        load_dataset_rows(write_jsonl(tmp_path / "m.jsonl", mixed))
    assert "line 2" in str(err.value) and "line 3" in str(err.value)
    chat = [
        {"messages": [{"role": "user", "content": "Q"}]},
        {"messages": [{"role": "robot", "content": "Q"}, {"role": "assistant", "content": "A"}]},
    ]
    with pytest.raises(DatasetError) as err:
        load_dataset_rows(write_jsonl(tmp_path / "c.jsonl", chat))
    assert "line 1: no assistant message" in str(err.value) and "unknown role 'robot'" in str(err.value)
    same = [{"prompt": "Q", "chosen": "A", "rejected": "A"}]
    with pytest.raises(DatasetError, match="identical"):
        load_dataset_rows(write_jsonl(tmp_path / "p.jsonl", same))
    with pytest.raises(DatasetError, match="looks like alpaca"):
        load_dataset_rows(write_jsonl(tmp_path / "a.jsonl", [{"instruction": "Q", "output": "A"}]), "chat")
    many = [{"instruction": f"Q{i}"} for i in range(15)]
    with pytest.raises(DatasetError, match="and 5 more"):
        load_dataset_rows(write_jsonl(tmp_path / "many.jsonl", many))


def test_config_validation_and_json_round_trip(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="needs preference data"):
        FinetuneConfig(method="dpo", dataset_format="alpaca")
    with pytest.raises(ValueError, match="dpo"):
        FinetuneConfig(method="sft", dataset_format="preference")
    with pytest.raises(ValueError):
        FinetuneConfig(name="bad name!")
    with pytest.raises(ValueError):
        FinetuneConfig(lora_rank=8)  # extra fields are refused
    config = FinetuneConfig(
        dataset=tmp_path / "d.jsonl", output_dir=tmp_path / "out", method="orpo", max_steps=3
    )
    again = FinetuneConfig.model_validate_json(config.model_dump_json())
    assert again == config and again.lr == 5e-5 and again.checkpoints == tmp_path / "out" / "checkpoints"
    assert (
        FinetuneConfig().dataset_path == BUNDLED_SFT
        and FinetuneConfig(method="dpo").dataset_path == BUNDLED_PREFERENCE
    )


def test_qlora_falls_back_to_lora_on_cpu() -> None:
    from llmtutor.training.finetune.model_setup import resolve_adapter

    adapter, notes = resolve_adapter(FinetuneConfig(adapter="qlora"), "cpu")
    assert adapter == "lora" and "CUDA" in notes[0]
    assert resolve_adapter(FinetuneConfig(adapter="qlora"), "cuda")[0] == "qlora"


def test_progress_bridge_stops_on_cancel_and_divergence() -> None:
    from types import SimpleNamespace

    from transformers import TrainerControl

    from llmtutor.training.finetune.callbacks import ProgressBridge

    events: list[TrainingEvent] = []
    cancel = threading.Event()
    bridge = ProgressBridge(events.append, cancel, tokens_per_step=100)
    state = SimpleNamespace(global_step=0, max_steps=4)
    control = TrainerControl()
    bridge.on_train_begin(None, state, control)
    state.global_step = 1
    bridge.on_log(None, state, control, logs={"loss": 2.5, "learning_rate": 1e-4})
    assert events[-1].step == 1 and events[-1].loss == 2.5 and events[-1].eta_s is not None
    assert not control.should_training_stop
    state.global_step = 2
    bridge.on_log(None, state, control, logs={"loss": float("nan")})
    assert bridge.diverged and control.should_training_stop
    control = TrainerControl()
    cancel.set()
    bridge.on_step_end(None, state, control)
    assert bridge.cancelled and control.should_save and control.should_training_stop
    assert bridge.trained_tokens(state) == 200


# ----- rendering: chat template, masking, packing -----------------------------------------------
def test_rows_use_the_chat_template_and_mask_the_prompt(tiny_tokenizer: Any) -> None:
    row = {
        "messages": [
            {"role": "user", "content": "What is LoRA?"},
            {"role": "assistant", "content": "Adapters."},
            {"role": "user", "content": "And QLoRA?"},
            {"role": "assistant", "content": "4-bit base."},
        ]
    }
    text = render_example(tiny_tokenizer, row)
    assert text == tiny_tokenizer.apply_chat_template(row["messages"], tokenize=False)
    assert "<|im_start|>user\nWhat is LoRA?<|im_end|>" in text and "<|im_start|>assistant\n" in text
    item = tokenize_example(tiny_tokenizer, row, max_len=512)
    assert item is not None
    trained = [t for t, label in zip(item["input_ids"], item["labels"], strict=True) if label != -100]
    assert (
        tiny_tokenizer.decode(trained) == "Adapters.<|im_end|>\n4-bit base.<|im_end|>\n"
    )  # answers + their stop
    prompt = tiny_tokenizer.apply_chat_template(
        row["messages"][:1], tokenize=False, add_generation_prompt=True
    )
    n_prompt = len(tiny_tokenizer(prompt, add_special_tokens=False)["input_ids"])
    assert item["labels"][:n_prompt] == [-100] * n_prompt
    assert tokenize_example(tiny_tokenizer, row, max_len=10) is None  # the answer does not fit: dropped


def test_plain_format_without_chat_template(tiny_tokenizer: Any) -> None:
    import copy

    plain = copy.deepcopy(tiny_tokenizer)
    plain.chat_template = None
    row = {"messages": [{"role": "user", "content": "Q?"}, {"role": "assistant", "content": "A."}]}
    assert render_example(plain, row).startswith("### Instruction:\nQ?\n\n### Response:\nA.")
    item = tokenize_example(plain, row, 128)
    assert item is not None
    assert plain.decode(
        [t for t, x in zip(item["input_ids"], item["labels"], strict=True) if x != -100]
    ).startswith("A.")


def test_packed_rows_do_not_attend_to_each_other(tiny_llama_dir: Path) -> None:
    """Packed bins carry no attention mask; transformers must build a block-diagonal causal mask
    from the restarting position_ids (SDPA on CPU), or rows would leak into each other."""
    import torch
    from transformers import AutoModelForCausalLM

    from llmtutor.training.finetune.sft import PackedCollator

    model = AutoModelForCausalLM.from_pretrained(str(tiny_llama_dir)).eval()
    a, b, c = list(range(10, 17)), list(range(40, 45)), list(range(70, 79))
    bins = [
        {"input_ids": a + b, "labels": a + b, "seq_lengths": [7, 5]},
        {"input_ids": c, "labels": c, "seq_lengths": [9]},
    ]
    collator = PackedCollator(pad_token_id=0, packed=True)
    batch = collator(bins)
    assert "attention_mask" not in batch and collator.tokens == 21
    assert batch["position_ids"].tolist() == [
        list(range(7)) + list(range(5)),
        list(range(9)) + list(range(3)),
    ]
    assert (
        batch["labels"][0, 7].item() == -100 and batch["labels"][0, 8].item() == b[1]
    )  # no label across rows
    assert batch["labels"][1, 9:].tolist() == [-100] * 3  # padding is never trained
    with torch.no_grad():
        packed = model(
            input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False
        ).logits
        for row, start, ids in ((0, 0, a), (0, 7, b), (1, 0, c)):
            alone = model(input_ids=torch.tensor([ids])).logits[0]
            assert torch.allclose(packed[row, start : start + len(ids)], alone, atol=1e-4)


# ----- training runs -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def lora_run(
    tiny_llama_dir: Path, sft_file: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[FinetuneResult, list[TrainingEvent]]:
    events: list[TrainingEvent] = []
    # batch 8 holds every packed bin of the 9 train rows, so each step sees the same data and the
    # loss falls steadily (~10.8 -> ~10.2) instead of jumping between different rows.
    config = tiny_config(
        tiny_llama_dir,
        sft_file,
        tmp_path_factory.mktemp("lora") / "out",
        max_steps=12,
        learning_rate=1e-2,
        batch_size=8,
        eval_fraction=0.25,
        merge=True,
        name="tiny-course",
    )
    return run(config, progress=events.append), events


def test_lora_sft_learns_and_writes_every_artifact(
    lora_run: tuple[FinetuneResult, list[TrainingEvent]],
) -> None:
    result, events = lora_run
    out = Path(result.output_dir)
    m = result.metrics
    assert m["steps"] == 12 and m["device"] == "cpu" and m["adapter"] == "lora"
    train = [e for e in events if e.stage == "train" and e.loss is not None]
    assert [e.step for e in train] == list(range(1, 13)) and all(e.total == 12 for e in train)
    assert all(math.isfinite(e.loss) for e in train) and train[-1].eta_s == 0 and train[-1].tokens_per_s > 0
    assert train[0].learning_rate is not None
    assert any(e.stage == "eval" and e.eval_loss is not None for e in events)
    losses = [e.loss for e in train]
    assert losses[-1] < losses[0] - 0.3 and sum(losses[-3:]) < sum(losses[3:6]) < sum(losses[:3]), losses
    assert m["trained_tokens"] > 0 and m["tokens_per_s"] > 0 and m["peak_rss_mb"] > 100 and m["eval_loss"] > 0
    assert set(m["target_modules"]) == {
        "q_proj",
        "k_proj",
        "v_proj",
        "o_proj",
        "gate_proj",
        "up_proj",
        "down_proj",
    }
    for name in (
        "adapter/adapter_config.json",
        "adapter/adapter_model.safetensors",
        "adapter/tokenizer_config.json",
        "merged/config.json",
        "merged/model.safetensors",
        "merged/chat_template.jinja",
        "training_config.json",
        "metrics.json",
        "loss_curve.png",
        "README.md",
    ):
        assert (out / name).is_file(), name
    assert not (out / "checkpoints").exists() and not (out / ".staging").exists()
    assert json.loads((out / "metrics.json").read_text())["steps"] == 12
    saved = json.loads((out / "training_config.json").read_text())
    saved.pop("resolved")
    assert FinetuneConfig.model_validate(saved).name == "tiny-course"
    card = (out / "README.md").read_text()
    assert "tiny-course" in card and "AutoModelForCausalLM" in card and "Limitations" in card
    assert (out / "loss_curve.png").read_bytes()[:4] == b"\x89PNG"
    assert result.registration == {
        "name": "tiny-course",
        "kind": "merged",
        "path": "merged",
        "base": result.base_model,
        "lineage": result.registration["lineage"],
    }
    assert "| train loss |" in result.to_markdown()


def test_lora_weights_moved_and_merged_model_chats(
    lora_run: tuple[FinetuneResult, list[TrainingEvent]],
) -> None:
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = Path(lora_run[0].output_dir)
    weights = load_file(str(out / "adapter" / "adapter_model.safetensors"))
    lora_b = [t for k, t in weights.items() if "lora_B" in k]
    assert lora_b and all(torch.isfinite(t).all() for t in weights.values())
    assert max(t.abs().max().item() for t in lora_b) > 0  # lora_B starts at zero: it trained
    merged = AutoModelForCausalLM.from_pretrained(str(out / "merged"))  # plain transformers, no peft
    assert merged.config.use_cache is True
    assert not any("lora" in name for name, _ in merged.named_parameters())
    tok = AutoTokenizer.from_pretrained(str(out / "merged"))
    inputs = tok.apply_chat_template(
        [{"role": "user", "content": "What is LoRA?"}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    generated = merged.generate(**inputs, max_new_tokens=5, do_sample=False)
    assert generated.shape[1] > inputs["input_ids"].shape[1]


@pytest.mark.parametrize("method", ["dpo", "orpo"])
def test_preference_methods_train(method: str, tiny_llama_dir: Path, pref_file: Path, tmp_path: Path) -> None:
    events: list[TrainingEvent] = []
    result = run(
        tiny_config(tiny_llama_dir, pref_file, tmp_path / "out", method=method), progress=events.append
    )
    assert result.metrics["steps"] == 2 and result.method == method
    losses = [e.loss for e in events if e.stage == "train" and e.loss is not None]
    assert len(losses) == 2 and all(math.isfinite(x) for x in losses)
    assert (
        result.registration["kind"] == "adapter"
        and (tmp_path / "out" / "adapter" / "adapter_config.json").is_file()
    )
    assert result.metrics["trained_tokens"] > 0


def test_full_finetune_without_packing(tiny_llama_dir: Path, sft_file: Path, tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM

    result = run(
        tiny_config(
            tiny_llama_dir,
            sft_file,
            tmp_path / "out",
            adapter="full",
            packing=False,
            learning_rate=1e-3,
            merge=True,
        )
    )
    assert (
        result.registration["kind"] == "full" and result.model_dir == "model" and result.adapter_dir is None
    )
    assert AutoModelForCausalLM.from_pretrained(str(tmp_path / "out" / "model")).config.num_hidden_layers == 2


def test_cancel_leaves_nothing_that_looks_finished(
    tiny_llama_dir: Path, sft_file: Path, tmp_path: Path
) -> None:
    cancel = threading.Event()

    def progress(event: TrainingEvent) -> None:
        if event.stage == "train" and event.step == 2:
            cancel.set()

    out = tmp_path / "out"
    with pytest.raises(CancelledError):
        run(
            tiny_config(tiny_llama_dir, sft_file, out, max_steps=6, merge=True),
            progress=progress,
            cancel=cancel,
        )
    for name in ("merged", "adapter", "metrics.json", "README.md", "training_config.json", "loss_curve.png"):
        assert not (out / name).exists(), name
    assert (out / "checkpoints" / "checkpoint-2").is_dir()  # saved on cancel, for resume


def test_resume_continues_the_step_count(tiny_llama_dir: Path, sft_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    cancel = threading.Event()
    first: list[TrainingEvent] = []

    def stop_at_4(event: TrainingEvent) -> None:
        first.append(event)
        if event.stage == "train" and event.step == 4:
            cancel.set()

    config = tiny_config(tiny_llama_dir, sft_file, out, max_steps=8, save_steps=2, batch_size=1)
    with pytest.raises(CancelledError):
        run(config, progress=stop_at_4, cancel=cancel)
    assert (out / "checkpoints" / "checkpoint-4").is_dir()
    second: list[TrainingEvent] = []
    result = run(config.model_copy(update={"resume": True}), progress=second.append)
    steps = [e.step for e in second if e.stage == "train" and e.loss is not None]
    assert steps == [5, 6, 7, 8]
    assert result.metrics["steps"] == 8 and "resumed from checkpoint-4" in result.notes


def test_finished_output_dir_is_not_overwritten(
    lora_run: tuple[FinetuneResult, list[TrainingEvent]], sft_file: Path
) -> None:
    with pytest.raises(ToolInputError, match="already holds a finished fine-tune"):
        run(FinetuneConfig(dataset=sft_file, output_dir=Path(lora_run[0].output_dir)))


def test_method_and_data_must_match(
    tiny_llama_dir: Path, sft_file: Path, pref_file: Path, tmp_path: Path
) -> None:
    with pytest.raises(DatasetError, match="needs preference rows"):
        run(tiny_config(tiny_llama_dir, sft_file, tmp_path / "a", method="dpo"))
    with pytest.raises(DatasetError, match="preference pairs"):
        run(tiny_config(tiny_llama_dir, pref_file, tmp_path / "b"))


# ----- bundled data --------------------------------------------------------------------------
def test_bundled_datasets_validate_with_smollm2(smollm2_dir: Path) -> None:
    from transformers import AutoTokenizer

    from llmtutor.training.finetune.preference import pair_tokens

    tok = AutoTokenizer.from_pretrained(str(smollm2_dir))
    sft = load_dataset_rows(BUNDLED_SFT)
    assert sft.format == "chat" or sft.format == "alpaca"
    assert 300 <= len(sft.rows) <= 600
    chinese = sum(any("\u4e00" <= ch <= "\u9fff" for ch in r["messages"][0]["content"]) for r in sft.rows)
    assert 0.2 < chinese / len(sft.rows) < 0.6
    items = [tokenize_example(tok, row, 512) for row in sft.rows]
    assert all(item is not None and len(item["input_ids"]) < 512 for item in items)
    pref = load_dataset_rows(BUNDLED_PREFERENCE)
    assert pref.format == "preference" and 60 <= len(pref.rows) <= 150
    assert max(pair_tokens(tok, row) for row in pref.rows) < 2 * 512


def test_bundled_datasets_are_up_to_date() -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("build_datasets", BUNDLED_SFT.parent / "build_datasets.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--check"]) == 0


# ----- real model / GPU ----------------------------------------------------------------------
@pytest.mark.slow
def test_smollm2_lora_on_bundled_data(smollm2_dir: Path, models_dir: Path, tmp_path: Path) -> None:
    events: list[TrainingEvent] = []
    config = FinetuneConfig(
        models_dir=models_dir,
        output_dir=tmp_path / "out",
        max_steps=30,
        batch_size=4,
        max_seq_len=256,
        eval_fraction=0.05,
        learning_rate=3e-4,
        merge=True,
    )
    result = run(config, progress=events.append)
    losses = [e.loss for e in events if e.stage == "train" and e.loss is not None]
    assert result.registration["kind"] == "merged" and result.metrics["padding_fraction"] < 0.2
    assert len(losses) == 30 and sum(losses[-5:]) / 5 < sum(losses[:5]) / 5
    assert (tmp_path / "out" / "merged" / "model.safetensors").is_file()


@pytest.mark.gpu
def test_qlora_on_cuda(smollm2_dir: Path, models_dir: Path, tmp_path: Path) -> None:
    import torch

    if not torch.cuda.is_available():
        pytest.skip("QLoRA needs CUDA")
    config = FinetuneConfig(
        models_dir=models_dir,
        adapter="qlora",
        output_dir=tmp_path / "out",
        max_steps=5,
        max_seq_len=256,
        eval_fraction=0,
    )
    result = run(config)
    assert result.adapter == "qlora" and result.metrics["device"] == "cuda"
    assert (tmp_path / "out" / "merged" / "model.safetensors").is_file()


def test_resume_skips_a_checkpoint_cut_off_while_saving(tmp_path: Path) -> None:
    from llmtutor.training.finetune.checkpoints import prepare_checkpoints

    ckpt = tmp_path / "ckpt"
    for step, complete in ((2, True), (4, False)):  # the worker was killed while writing checkpoint-4
        (ckpt / f"checkpoint-{step}").mkdir(parents=True)
        if complete:
            (ckpt / f"checkpoint-{step}" / "trainer_state.json").write_text("{}")
    config = FinetuneConfig(output_dir=tmp_path / "out", checkpoint_dir=ckpt, resume=True)
    notes: list[str] = []
    assert prepare_checkpoints(config, notes) == str(ckpt / "checkpoint-2") and "checkpoint-2" in notes[0]


def test_a_registered_method_is_valid_in_the_config_listed_by_the_tool_and_trains(
    tiny_llama_dir: Path, sft_file: Path, tmp_path: Path
) -> None:
    """Adding a method is one `register_method`: the config validates it (data format, default
    learning rate), the tool's JSON schema lists it, and `run` trains with its trainer."""
    from llmtutor.tools.finetune_model import TOOL
    from llmtutor.training.finetune.methods import FinetuneMethod, register_method, unregister_method
    from llmtutor.training.finetune.sft import build_sft_trainer, prepare_sft_rows

    built: list[str] = []

    def trainer(*args: Any) -> Any:
        built.append("sft_slow")
        return build_sft_trainer(*args)

    with pytest.raises(
        ValueError, match="unknown fine-tuning method 'sft_slow': choose one of sft, dpo, orpo"
    ):
        FinetuneConfig(method="sft_slow")
    register_method(
        FinetuneMethod(
            "sft_slow",
            "a test method: SFT with a lower default learning rate",
            data="sft",
            lr_adapter=1e-5,
            lr_full=1e-6,
            build_trainer=trainer,
            prepare_rows=prepare_sft_rows,
        )
    )
    try:
        config = FinetuneConfig(method="sft_slow")
        assert config.lr == 1e-5 and config.dataset_path == BUNDLED_SFT
        with pytest.raises(ValueError, match="trains with method='dpo' or 'orpo', not sft_slow"):
            FinetuneConfig(method="sft_slow", dataset_format="preference")
        with pytest.raises(ValueError, match="use method='sft' or 'sft_slow' for that data"):
            FinetuneConfig(method="dpo", dataset_format="alpaca")
        schema = TOOL.input_schema()["properties"]
        assert (
            schema["method"]["enum"][-1] == "sft_slow" and "lower default" in schema["method"]["description"]
        )
        assert "sft_slow 1e-5 / 1e-6" in schema["learning_rate"]["description"]
        result = run(tiny_config(tiny_llama_dir, sft_file, tmp_path / "out", method="sft_slow", max_steps=1))
        assert built == ["sft_slow"] and result.method == "sft_slow" and result.metrics["steps"] == 1
        assert result.metrics["supervised_tokens"] > 0  # its prepare_rows ran (SFT tokenization)
    finally:
        unregister_method("sft_slow")
    assert "sft_slow" not in TOOL.input_schema()["properties"]["method"]["enum"]
