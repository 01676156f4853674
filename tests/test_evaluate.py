"""Model evaluation (training/evaluate): perplexity, BLEU/ROUGE, lm-eval, judge, eval card.

Real components offline: tiny random Llama (tests/conftest.py) for the mechanics, the
bundled SmolLM2 GGUF for the llama.cpp cross-check, scripted fake chat models as judges."""

from __future__ import annotations

import json
import math
import threading
from pathlib import Path

import pytest
from pydantic import BaseModel, ValidationError

from llmtutor.errors import CancelledError, ToolInputError
from llmtutor.training.evaluate import EvalConfig, EvalResult, ModelSpec, run
from llmtutor.training.evaluate.config import DEFAULT_REFERENCES, TASKS_DIR

TEXT = (
    "Quantization stores the weights of a model in fewer bits, for example four bits instead of sixteen, "
    "which cuts the memory needed to run it. Perplexity is the exponential of the average negative "
    "log-likelihood per token: lower perplexity means the text surprises the model less. LoRA freezes the "
    "pre-trained weights and trains small low-rank matrices instead, so fine-tuning fits on one GPU. "
    "量化用更少的比特存储权重，从而减少显存。"
)


@pytest.fixture()
def text_file(tmp_path: Path) -> Path:
    path = tmp_path / "text.md"
    path.write_text(TEXT, encoding="utf-8")
    return path


def _tiny(tiny_llama_dir: Path):
    from llmtutor.hf_models import load_causal_lm

    return load_causal_lm(str(tiny_llama_dir), tiny_llama_dir.parent, device="cpu")


# ----- perplexity ----------------------------------------------------------------
def test_windows_score_every_token_once() -> None:
    from llmtutor.training.evaluate.perplexity import windows

    for n, length, stride in [(100, 32, 8), (33, 32, 16), (5, 64, 16), (64, 16, 5), (100, 32, 31)]:
        scored = [p for w in windows(n, length, stride) for p in range(w.first_scored, w.end)]
        assert scored == list(range(1, n)), (n, length, stride)
        assert all(w.end - w.begin <= length for w in windows(n, length, stride))
    # Disjoint chunks (stride == max_length): each chunk's first token has no context, as in
    # the transformers recipe, so it is not scored.
    scored = [p for w in windows(100, 32, 32) for p in range(w.first_scored, w.end)]
    assert scored == [p for p in range(1, 100) if p % 32]


def test_sliding_window_equals_full_sequence(tiny_llama_dir: Path) -> None:
    import torch

    from llmtutor.training.evaluate.perplexity import sliding_window_nll, tokenize

    model, tokenizer = _tiny(tiny_llama_dir)
    ids = tokenize(tokenizer, TEXT, None)
    with torch.no_grad():  # the naive computation: one forward pass, transformers' own loss
        loss = model(input_ids=torch.tensor([ids]), labels=torch.tensor([ids])).loss.item()
    nll, n = sliding_window_nll(model, ids, max_length=len(ids) + 10, stride=16)
    assert n == len(ids) - 1
    assert nll / n == pytest.approx(loss, rel=1e-5)
    # Shorter windows lose context: finite, positive, and (batched or not) the same number.
    nll_a, n_a = sliding_window_nll(model, ids, max_length=24, stride=8, batch_size=1)
    nll_b, n_b = sliding_window_nll(model, ids, max_length=24, stride=8, batch_size=5)
    assert n_a == n_b == len(ids) - 1
    assert math.isfinite(nll_a) and nll_a > 0 and nll_a == pytest.approx(nll_b, rel=1e-5)


def _train_on(tiny_llama_dir: Path, text: str, out: Path, steps: int = 25) -> Path:
    """A few plain AdamW steps on the text itself (no fine-tuning package needed)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_llama_dir))
    model = AutoModelForCausalLM.from_pretrained(str(tiny_llama_dir))
    ids = torch.tensor([tokenizer(text)["input_ids"]])
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(steps):
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    return out


def test_training_on_the_text_lowers_its_perplexity_and_writes_the_card(
    tiny_llama_dir: Path, text_file: Path, tmp_path: Path
) -> None:
    trained = _train_on(tiny_llama_dir, TEXT, tmp_path / "trained")
    events: list = []
    config = EvalConfig(
        models=[
            ModelSpec(model=str(tiny_llama_dir), label="base"),
            ModelSpec(model=str(trained), label="trained"),
        ],
        models_dir=tmp_path / "models",
        metrics=["perplexity"],
        perplexity_text=str(text_file),
        max_length=32,
        stride=16,
        batch_size=2,
        device="cpu",
        output_dir=tmp_path / "eval",
    )
    result = run(config, progress=events.append)
    base, tuned = (m.metrics["perplexity"] for m in result.models)
    assert math.isfinite(base) and tuned < base / 10  # 25 steps on the text itself: a large drop
    assert result.deltas["base"]["perplexity"] == 0
    assert result.deltas["trained"]["perplexity"] == pytest.approx(tuned - base)
    for name in ("eval_card.md", "eval_card.json", "eval_plot.png"):
        assert (tmp_path / "eval" / name).stat().st_size > 0
    card = (tmp_path / "eval" / "eval_card.md").read_text()
    assert "| base | " in card and "(baseline)" in card and "↓ better" in card
    assert "window 32, stride 16" in card and "transformers" in card
    saved = EvalResult.model_validate_json((tmp_path / "eval" / "eval_card.json").read_text())
    assert saved.models[1].chat_template_sha256 == saved.models[0].chat_template_sha256 is not None
    assert saved.settings["perplexity"]["scored_tokens"] == saved.settings["perplexity"]["tokens"] - 1
    assert {e.stage for e in events} >= {"load", "eval", "save"}
    assert "| trained |" in result.to_markdown()


def test_gguf_perplexity_through_llamacpp_matches_dequantized(smollm2_dir: Path, models_dir: Path) -> None:
    """llama.cpp forced decoding and the float32 dequantized HF model agree on the same windows."""
    from llmtutor.assets import default_gguf_path
    from llmtutor.hf_models import load_causal_lm
    from llmtutor.training.evaluate.llamacpp_ppl import llamacpp_window_nll
    from llmtutor.training.evaluate.perplexity import sliding_window_nll, tokenize

    model, tokenizer = load_causal_lm(None, models_dir, device="cpu")
    # Chinese first: byte-level BPE splits these characters, the case llama.cpp needs a detour for.
    ids = tokenize(tokenizer, "量化用更少的比特存储权重，从而减少显存。" + TEXT, 48)
    hf_nll, hf_n = sliding_window_nll(model, ids, max_length=32, stride=16)
    cpp_nll, cpp_n = llamacpp_window_nll(default_gguf_path(), ids, max_length=32, stride=16)
    assert cpp_n == hf_n == 47
    # Same weights, different arithmetic (llama.cpp quantizes activations to 8 bits): per-token
    # log-probs differ by noise of a few tenths of a nat at most (measured), the means by < 0.1.
    assert abs(cpp_nll / cpp_n - hf_nll / hf_n) < 0.1


# ----- BLEU / ROUGE -----------------------------------------------------------------
def test_bleu_and_rouge_on_known_strings() -> None:
    from llmtutor.training.evaluate.text_metrics import bleu, generation_scores, rouge_l

    en = "LoRA trains small low-rank matrices while the base weights stay frozen."
    zh = "量化可以降低显存"
    assert bleu([en], [en]) == pytest.approx(100.0)
    assert bleu(["completely unrelated words here"], [en]) < 5
    assert rouge_l([en], [en]) == [pytest.approx(1.0)]
    # rouge_score's default tokenizer drops Chinese: a perfect Chinese answer would score 0.
    from rouge_score import rouge_scorer

    assert rouge_scorer.RougeScorer(["rougeL"]).score(zh, zh)["rougeL"].fmeasure == 0
    assert rouge_l([zh], [zh], "zh") == [pytest.approx(1.0)]
    # character LCS "量化降低显存" = 6: precision 6/6, recall 6/8 -> F1 = 6/7
    assert rouge_l(["量化降低显存"], [zh], "zh") == [pytest.approx(6 / 7)]
    assert bleu([zh], [zh], tokenize="zh") == pytest.approx(100.0)
    assert bleu([zh], [zh], tokenize="13a") == pytest.approx(0.0)  # one "word" vs. four 4-gram matches
    scores = generation_scores([en, "量化降低显存"], [en, zh], ["en", "zh"])
    assert scores["bleu_en"] == pytest.approx(100.0) and scores["rougeL_en"] == pytest.approx(1.0)
    assert scores["rougeL_zh"] == pytest.approx(6 / 7)
    assert scores["rougeL"] == pytest.approx((1 + 6 / 7) / 2)
    assert 0 < scores["bleu_zh"] < 100 and 0 < scores["bleu"] < 100


def test_bundled_data_is_well_formed() -> None:
    refs = [json.loads(line) for line in DEFAULT_REFERENCES.read_text(encoding="utf-8").splitlines()]
    assert 30 <= len(refs) <= 50 and {r["language"] for r in refs} == {"en", "zh"}
    assert all(r["prompt"].strip() and r["reference"].strip() for r in refs)
    quiz = [
        json.loads(line)
        for line in (TASKS_DIR / "course_quiz.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    assert 40 <= len(quiz) <= 80 and {q["language"] for q in quiz} == {"en", "zh"}
    for q in quiz:
        assert len(q["choices"]) == len(set(q["choices"])) == 4 and 0 <= q["answer"] < 4
    assert len({q["answer"] for q in quiz}) == 4  # the right option is not always in one place


# ----- lm-evaluation-harness ----------------------------------------------------------
def test_local_lm_eval_task_runs_offline(tiny_llama_dir: Path) -> None:
    from llmtutor.training.evaluate.harness import run_task

    model, tokenizer = _tiny(tiny_llama_dir)
    events: list = []
    res = run_task(model, tokenizer, "course_quiz", limit=6, batch_size=8, progress=events.append)
    assert res["n"] == 6 and 0 <= res["acc"] <= 1 and 0 <= res["acc_norm"] <= 1
    assert res["acc_stderr"] is not None and events
    with pytest.raises(ToolInputError, match="no local lm-eval task"):
        run_task(model, tokenizer, "hellaswag", limit=1)


# ----- judge ------------------------------------------------------------------------
class ScriptedJudge:
    """A chat model stand-in: `with_structured_output(schema).invoke(messages)` parses the
    raw text `respond(messages)` returns, so malformed replies fail like real parse errors."""

    model_name = "scripted-judge"

    def __init__(self, respond):
        self.respond = respond
        self.calls: list[str] = []

    def with_structured_output(self, schema: type[BaseModel], method: str | None = None, **_):
        judge = self

        class Structured:
            def invoke(self, messages):
                user = messages[-1][1]
                judge.calls.append(user)
                return schema.model_validate_json(judge.respond(user))

        return Structured()


def test_judge_single_retries_a_malformed_verdict_and_records_failures() -> None:
    from llmtutor.training.evaluate.judge import grade_single

    replies = iter(
        [
            '{"reason": "ok", "score": "seven"}',  # item 1: schema error, then valid
            '{"reason": "correct", "score": 7}',
            "no json at all",
            "{",
            '{"score": 11, "reason": "x"}',
        ]
    )  # item 2: three bad replies
    judge = ScriptedJudge(lambda _user: next(replies))
    items = [
        {"id": f"q{i}", "prompt": "What is LoRA?", "reference": "Low-rank adapters.", "answer": "Adapters."}
        for i in (1, 2)
    ]
    res = grade_single(judge, items, retries=2)
    assert res["judge_score"] == 7 and res["judge_graded"] == 1 and res["judge_failures"] == 1
    first, second = res["records"]
    assert first == {"id": "q1", "attempts": 2, "score": 7, "reason": "correct"}
    assert second["attempts"] == 3 and "ValidationError" in second["error"]
    assert len(judge.calls) == 5 and "Reference answer: Low-rank adapters." in judge.calls[0]


def test_judge_pairwise_swaps_positions() -> None:
    from llmtutor.training.evaluate.judge import compare_pairwise

    items = [
        {"id": "q1", "prompt": "p", "reference": "r", "answer": "GOOD answer", "baseline_answer": "weak"},
        {"id": "q2", "prompt": "p", "reference": "r", "answer": "weak", "baseline_answer": "GOOD answer"},
    ]

    def by_content(user: str) -> str:  # an unbiased judge: picks whichever position holds GOOD
        a = user.split("Answer A:")[1].split("Answer B:")[0]
        return json.dumps({"reason": "content", "winner": "A" if "GOOD" in a else "B"})

    fair = compare_pairwise(ScriptedJudge(by_content), items)
    assert [r["outcome"] for r in fair["records"]] == ["win", "loss"]
    assert fair["judge_win_rate"] == 0.5 and fair["judge_position_consistency"] == 1.0
    # A judge that always prefers the first position is cancelled out by the swap.
    biased = compare_pairwise(ScriptedJudge(lambda _u: '{"reason": "first", "winner": "A"}'), items)
    assert [r["outcome"] for r in biased["records"]] == ["tie", "tie"]
    assert biased["judge_position_consistency"] == 0.0 and biased["judge_win_rate"] == 0.5


def test_judge_sanity_check_catches_a_judge_that_does_not_read_the_answers() -> None:
    from llmtutor.training.evaluate.judge import sanity_check

    qa = [
        ("What is LoRA?", "Low-rank adapters."),
        ("What is GGUF?", "llama.cpp's file format."),
        ("What is DPO?", "Preference optimisation without a reward model."),
    ]
    generous = sanity_check(ScriptedJudge(lambda _u: '{"reason": "great", "score": 10}'), qa, "single")
    assert generous == {
        "passed": False,
        "reference_scores": [10, 10, 10],
        "wrong_answer_scores": [10, 10, 10],
    }

    def reads(user: str) -> str:
        right = user.split("Reference answer: ")[1].split("\n\n")[0] == user.split("Assistant's answer: ")[1]
        return json.dumps({"reason": "compared", "score": 8 if right else 3})

    assert sanity_check(ScriptedJudge(reads), qa, "single")["passed"] is True
    assert sanity_check(ScriptedJudge(reads), qa[:1], "single")["wrong_answer_scores"] == [
        3
    ]  # off-topic control


def test_run_with_judge_and_generation_metrics(tiny_llama_dir: Path, tmp_path: Path) -> None:
    refs = tmp_path / "refs.jsonl"
    refs.write_text(
        '{"prompt": "What is LoRA?", "reference": "Low-rank adapters on frozen weights."}\n'
        '{"prompt": "什么是量化？", "reference": "用更少的比特存储权重。"}\n',
        encoding="utf-8",
    )
    replies = iter(["garbage", '{"reason": "meh", "score": 3}', '{"reason": "meh", "score": 5}'])

    def respond(
        user: str,
    ) -> str:  # control answers first: each reference, and the other question's reference
        reference = user.split("Reference answer: ")[1].split("\n\n")[0]
        answer = user.split("Assistant's answer: ")[1]
        if answer == reference:
            return '{"reason": "matches", "score": 9}'
        return (
            '{"reason": "wrong question", "score": 2}'
            if answer.endswith(("weights.", "。"))
            else next(replies)
        )

    judge = ScriptedJudge(respond)
    config = EvalConfig(
        models=[ModelSpec(model=str(tiny_llama_dir), label="tiny")],
        models_dir=tmp_path,
        metrics=["bleu_rouge", "judge"],
        references=refs,
        max_new_tokens=4,
        device="cpu",
        output_dir=tmp_path / "eval",
    )
    result = run(config, judge=judge)
    metrics = result.models[0].metrics
    assert metrics["judge_score"] == 4 and result.models[0].details["judge_failures"] == 0
    assert {"bleu", "rougeL", "bleu_en", "bleu_zh", "rougeL_zh"} <= set(metrics)
    rows = [json.loads(x) for x in (tmp_path / "eval" / "generations.jsonl").read_text().splitlines()]
    assert [r["language"] for r in rows] == ["en", "zh"] and isinstance(rows[0]["answers"]["tiny"], str)
    judged = [json.loads(x) for x in (tmp_path / "eval" / "judge.jsonl").read_text().splitlines()]
    assert judged[0]["attempts"] == 2 and judged[0]["model"] == "tiny"
    assert result.settings["judge"]["model"] == "scripted-judge"
    assert result.settings["judge"]["sanity_check"] == {
        "passed": True,
        "reference_scores": [9, 9],
        "wrong_answer_scores": [2, 2],
    }
    assert "sanity check on control answers: passed" in (tmp_path / "eval" / "eval_card.md").read_text()


def test_run_pairwise_compares_each_model_with_the_baseline(tiny_llama_dir: Path, tmp_path: Path) -> None:
    refs = tmp_path / "refs.jsonl"
    refs.write_text('{"prompt": "What is LoRA?", "reference": "Low-rank adapters."}\n', encoding="utf-8")
    judge = ScriptedJudge(lambda _u: '{"reason": "same", "winner": "tie"}')
    config = EvalConfig(
        models=[
            ModelSpec(model=str(tiny_llama_dir), label="a"),
            ModelSpec(model=str(tiny_llama_dir), label="b"),
        ],
        models_dir=tmp_path,
        metrics=["judge"],
        judge_mode="pairwise",
        references=refs,
        max_new_tokens=2,
        device="cpu",
        output_dir=tmp_path / "eval",
    )
    result = run(config, judge=judge)
    assert [m.metrics["judge_win_rate"] for m in result.models] == [0.5, 0.5]
    assert result.deltas["b"]["judge_win_rate"] == 0 and result.models[1].details["judge_ties"] == 1
    assert len(judge.calls) == 4  # the control pair and one item, both orders each
    card = (tmp_path / "eval" / "eval_card.md").read_text()
    assert "judge win rate" in card
    # A judge that calls everything a tie cannot tell the reference from an off-topic answer.
    assert result.settings["judge"]["sanity_check"]["passed"] is False
    assert "sanity check on control answers: FAILED" in card and "grades are noise" in card


# ----- config and cancellation -------------------------------------------------------
@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"stride": 64, "max_length": 32}, "stride"),
        ({"metrics": ["accuracy"]}, "metrics"),
        ({"metrics": []}, "metrics"),
        ({"models": [{"model": "a", "label": "x"}, {"model": "b", "label": "x"}]}, "labels must differ"),
        ({"metrics": ["judge"], "judge_mode": "pairwise"}, "at least two models"),
        ({"perplexity_text": "/no/such/file.md"}, "not a file"),
        ({"references": "/no/such/refs.jsonl"}, "does not exist"),
        ({"temperature": 0.7}, "Extra inputs"),
    ],
)
def test_config_validation(fields: dict, message: str, tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match=message):
        EvalConfig(output_dir=tmp_path, **fields)


def test_config_round_trips_as_json(tmp_path: Path) -> None:
    config = EvalConfig(models=[ModelSpec(), ModelSpec(model="my-finetune")], output_dir=tmp_path)
    assert EvalConfig.model_validate_json(config.model_dump_json()) == config
    assert config.labels() == ["smollm2", "my-finetune"]


def test_judge_metric_needs_a_judge(tmp_path: Path) -> None:
    with pytest.raises(ToolInputError, match="judge model"):
        run(EvalConfig(metrics=["judge"], output_dir=tmp_path))


def test_cancel_raises(tiny_llama_dir: Path, text_file: Path, tmp_path: Path) -> None:
    config = EvalConfig(
        models=[ModelSpec(model=str(tiny_llama_dir))],
        models_dir=tmp_path,
        metrics=["perplexity"],
        perplexity_text=str(text_file),
        max_length=16,
        stride=4,
        batch_size=1,
        device="cpu",
        output_dir=tmp_path / "eval",
    )
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(CancelledError):
        run(config, cancel=cancel)
    # Cancelled while running: the first window reports progress, the next one stops.
    cancel = threading.Event()
    windows_done: list[int] = []

    def on_event(event) -> None:
        if event.stage == "eval":
            windows_done.append(event.step)
            cancel.set()

    with pytest.raises(CancelledError):
        run(config, progress=on_event, cancel=cancel)
    assert windows_done == [1]


# ----- real SmolLM2 --------------------------------------------------------------------
@pytest.mark.slow
def test_smollm2_on_the_course(smollm2_dir: Path, models_dir: Path, tmp_path: Path) -> None:
    """SmolLM2-135M-Instruct: perplexity on the course notes (HF and llama.cpp) and the full quiz."""
    config = EvalConfig(
        models=[ModelSpec()],
        models_dir=models_dir,
        metrics=["perplexity", "lm_eval"],
        max_eval_tokens=4096,
        max_length=1024,
        stride=512,
        device="cpu",
        output_dir=tmp_path / "eval",
    )
    result = run(config)
    m = result.models[0].metrics
    print("\n" + result.to_markdown())
    assert 1 < m["perplexity"] < 100 and m["perplexity_llamacpp"] == pytest.approx(m["perplexity"], rel=0.03)
    assert result.settings["lm_eval"]["items"] == 60 and 0.25 < m["lm_eval_acc"] <= 1


def test_a_registered_metric_is_valid_in_the_config_listed_by_the_tool_and_on_the_card(
    tiny_llama_dir: Path, tmp_path: Path
) -> None:
    """Adding a metric is one `register_metric`: the config accepts it, the tool's JSON schema lists
    it, `run` computes it (on the shared generated answers) and the card shows its column."""
    from llmtutor.tools.evaluate_model import TOOL
    from llmtutor.training.evaluate.metrics import Column, EvalMetric, register_metric, unregister_metric

    def answer_words(ev, lm, m) -> None:
        answers = ev.answers[m.label]
        m.metrics["answer_words"] = sum(len(a.split()) for a in answers) / len(answers)

    refs = tmp_path / "refs.jsonl"
    refs.write_text('{"prompt": "What is LoRA?", "reference": "Low-rank adapters."}\n', encoding="utf-8")
    fields = dict(
        models=[ModelSpec(model=str(tiny_llama_dir), label="tiny")],
        models_dir=tmp_path,
        metrics=["answer_length"],
        references=refs,
        max_new_tokens=3,
        device="cpu",
        output_dir=tmp_path / "eval",
    )
    with pytest.raises(ValidationError, match="unknown metric 'answer_length': choose from perplexity"):
        EvalConfig(**fields)
    register_metric(
        EvalMetric(
            "answer_length",
            "a test metric: words per generated answer",
            (Column("answer_words", "answer words", False, "{:.1f}"),),
            answer_words,
            needs_answers=True,
        )
    )
    try:
        schema = TOOL.input_schema()["properties"]["metrics"]
        assert schema["items"]["enum"][-1] == "answer_length" and "words per" in schema["description"]
        result = run(EvalConfig(**fields))
        answer = json.loads((tmp_path / "eval" / "generations.jsonl").read_text())["answers"]["tiny"]
        assert result.models[0].metrics["answer_words"] == len(answer.split())
        card = (tmp_path / "eval" / "eval_card.md").read_text()
        assert "| answer words |" in card and "answer words lower" in card and "reference prompts" in card
    finally:
        unregister_metric("answer_length")
    assert "answer_length" not in TOOL.input_schema()["properties"]["metrics"]["items"]["enum"]
