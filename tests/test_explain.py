"""Grounded voice: template explanations of tool results (English and Chinese), fixed texts
for declined approvals, errors, small talk and off-course questions, cited answers numbered
1..n with course-module sources, and a stream that carries only the final text.

The cheap tools run for real (estimate_memory, query_course_db, search_course, quiz); the
expensive ones' outputs (JobOutput, DecodingComparison) are built by hand.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import pytest
from fakes import FakeBackend, ScriptedRouter, make_registry
from langgraph.checkpoint.memory import InMemorySaver

from llmtutor.agents.answering import compose, extractive_answer
from llmtutor.agents.explain import explain
from llmtutor.agents.explain.decoding import repeated_phrase
from llmtutor.agents.explain.notices import off_course, small_talk
from llmtutor.agents.explain.topics import course_module, nearest_modules
from llmtutor.agents.routing.router import RouteDecision
from llmtutor.agents.tutor import Tutor
from llmtutor.knowledge.catalog import load_catalog
from llmtutor.settings import Settings
from llmtutor.tools.lab_jobs import JobOutput
from llmtutor.tools.registry import ToolContext, default_registry, output_citations, render_markdown
from llmtutor.training.decoding import DecodingComparison, StrategyResult

_NUMBER = re.compile(r"(?<![\w.])[-+]?\d[\d,]*(?:\.\d+)?")


def numbers(text: str) -> list[str]:
    return _NUMBER.findall(text)


def known_numbers(*values: Any) -> set[float]:
    """Every number in the values: numeric leaves, and the numbers written inside strings."""
    found: set[float] = set()
    for value in values:
        if isinstance(value, dict):
            found |= known_numbers(*value.values())
        elif isinstance(value, list | tuple):
            found |= known_numbers(*value)
        elif isinstance(value, bool) or value is None:
            continue
        elif isinstance(value, int | float):
            found.add(float(value))
        else:
            found |= {float(n.replace(",", "")) for n in numbers(str(value))}
    return found


def ungrounded(text: str, *sources: Any) -> list[str]:
    """Numbers of `text` that are no value of the sources at the precision shown (14.6 for 14.62)."""
    known = known_numbers(*sources)
    bad = []
    for raw in numbers(text):
        value = float(raw.replace(",", ""))
        decimals = len(raw.split(".")[1]) if "." in raw else 0
        if not any(abs(value - k) <= 0.5 * 10**-decimals + 1e-9 for k in known):
            bad.append(raw)
    return bad


def test_the_number_check_catches_an_invented_figure():
    output = {"total_gib": 14.62, "verdict": "≈14.6 GiB: fits 16 GB GPUs (not 8/12 GB)."}
    assert ungrounded("It needs 14.6 GiB and fits a 16 GB GPU, not a 12 GB one.", output) == []
    assert ungrounded("It needs 14.6 GiB, about 99.5 GB with overhead.", output) == ["99.5"]
    assert ungrounded("It needs 14.7 GiB.", output) == ["14.7"]  # a wrong rounding is a wrong number


@pytest.fixture(scope="module")
def ctx(tmp_path_factory) -> ToolContext:
    return ToolContext(workspace=tmp_path_factory.mktemp("explain-ws"))


@pytest.fixture(scope="module")
def registry():
    return default_registry()


# ----- estimate_memory (run for real) --------------------------------------------------------
MEMORY_CASES = [
    ({"model": "Llama-3-8B", "mode": "qlora"}, "It fits a 16 GB GPU", "not a 12 GB one", "16 GB 的显卡"),
    ({"params": "7B", "mode": "inference", "precision": "fp16"}, "weights", "16 GB", "权重"),
    ({"params": "70B", "mode": "full"}, "does not fit on one 80 GB GPU", "FSDP", "放不下"),
    (
        {"params": "7B", "mode": "lora", "gpu_memory_gb": 12},
        "does not fit your 12 GB GPU",
        "LoRA adapters",
        "12 GB",
    ),
    ({"params": "135M", "mode": "inference"}, "fits an 8 GB GPU", "overhead", "额外开销"),
]


@pytest.mark.parametrize(("args", "en_1", "en_2", "zh_1"), MEMORY_CASES)
def test_memory_template_reads_the_estimate(registry, ctx, args, en_1, en_2, zh_1):
    output = registry.get("estimate_memory").run(args, ctx).model_dump(mode="json")
    en, zh = explain("estimate_memory", output, args, "en"), explain("estimate_memory", output, args, "zh")
    assert en_1 in en and en_2 in en and zh_1 in zh
    assert f"{output['total_gib']:.1f} GiB" in en and f"{output['total_gib']:.1f} GiB" in zh
    assert re.search(r"[\u4e00-\u9fff]", zh) and not re.search(r"[\u4e00-\u9fff]", en)
    for text in (en, zh):
        assert ungrounded(text, output, args) == [], text


def test_memory_template_follows_the_output_not_a_script(registry, ctx):
    args = {"model": "Llama-3-8B", "mode": "qlora"}
    output = registry.get("estimate_memory").run(args, ctx).model_dump(mode="json")
    changed = {
        **output,
        "total_gib": 21.37,
        "fits_gpus_gb": [24, 40, 80],
        "verdict": "≈21.4 GiB: fits 24 GB GPUs (RTX 3090/4090, L4) and larger (not 8/12/16 GB).",
    }
    text = explain("estimate_memory", changed, args, "en")
    assert "21.4 GiB" in text and "fits a 24 GB GPU (RTX 3090/4090, L4), not a 16 GB one" in text
    assert explain("estimate_memory", {"model": "x"}, {}, "en") == ""  # nothing to read: nothing said


# ----- compare_decoding (built by hand: the real run takes a model) ---------------------------
def _row(strategy: str, settings: str, text: str, ll: float, n: int) -> StrategyResult:
    mean = ll / n
    return StrategyResult(
        strategy=strategy,
        settings=settings,
        text=text,
        tokens=text.split()[:n],
        token_probs=[0.5] * n,
        log_likelihood=ll,
        mean_logprob=mean,
        perplexity=math.exp(-mean),
        num_tokens=n,
        finished=True,
        seconds=0.4,
    )


DECODING = DecodingComparison(
    model="/models/SmolLM2-135M-Instruct",
    device="cpu",
    prompt="The capital of France is",
    max_new_tokens=32,
    seed=0,
    results=[
        _row(
            "greedy", "", "Paris. Paris is the capital of France. Paris is the capital of France.", -6.12, 16
        ),
        _row("beam", "num_beams=4", "Paris, the city of light.", -4.3, 8),
        _row("top_k", "k=20, T=0.7", "Paris, a beautiful city with many museums.", -14.8, 11),
        _row("temperature", "T=1.3, no truncation", "Paris; lovely weather banana river.", -30.5, 9),
    ],
).model_dump(mode="json")


def test_decoding_template_names_the_best_the_worst_and_the_repetition():
    en = explain("compare_decoding", DECODING, {}, "en")
    assert "Beam search had the highest log-likelihood (-4.30)" in en
    assert "greedy decoding had the lowest perplexity" in en
    assert "Temperature sampling scored lowest" in en
    assert "“Paris is the capital of France” comes back" in en
    assert "T=1.3" in en and "above one flattens" in en
    zh = explain("compare_decoding", DECODING, {}, "zh")
    assert "束搜索的对数似然最高（-4.30）" in zh and "温度高于一" in zh and "反复出现" in zh
    for text in (en, zh):
        assert ungrounded(text, DECODING) == [], text


def test_decoding_with_one_strategy_and_chinese_repetition():
    single = {**DECODING, "results": [DECODING["results"][1]]}
    assert explain("compare_decoding", single, {}, "en").startswith("Beam search generated 8 tokens")
    assert repeated_phrase("从前有座山，山里有座庙，从前有座山") == "从前有座山"
    assert repeated_phrase("No repetition in this short text at all.") == ""


# ----- lab jobs and job_status ------------------------------------------------------------------
FINETUNED = JobOutput(
    job_id="a1b2c3d4e5",
    kind="finetune",
    status="succeeded",
    output_dir="/ws/outputs/finetune-a1b2c3d4e5",
    model_name="smollm2-course-lora",
    model_kind="merged",
    summary="**Fine-tuned smollm2-course-lora** …",
    metrics={"train_loss_first": 2.4512, "train_loss_last": 1.2034, "eval_loss": 1.3101, "steps": 20},
).model_dump(mode="json")
QUANTIZED = JobOutput(
    job_id="0f9e8d7c6b", kind="quantize", status="succeeded", model_name="merged-q4_k_m", model_kind="gguf"
).model_dump(mode="json")
FAILED = JobOutput(
    job_id="ff00aa1122",
    kind="merge",
    status="failed",
    error="the models' vocabularies differ (49152 vs 32000)",
).model_dump(mode="json")


def test_job_templates_give_id_status_metrics_and_the_next_command():
    en = explain("finetune_model", FINETUNED, {}, "en")
    assert "Job `a1b2c3d4e5` (fine-tuning) succeeded." in en
    assert "from 2.4512 to 1.2034 over 20 steps" in en and "eval loss is 1.3101" in en
    assert "LLMTUTOR_BACKEND=hf LLMTUTOR_CHAT_MODEL=smollm2-course-lora llmtutor chat" in en
    zh = explain("finetune_model", FINETUNED, {}, "zh")
    assert "任务 `a1b2c3d4e5`（微调）已完成" in zh and "训练损失从 2.4512 变为 1.2034" in zh
    gguf = explain("quantize_model", QUANTIZED, {}, "en")
    assert "`LLMTUTOR_CHAT_MODEL=merged-q4_k_m llmtutor chat`" in gguf and "BACKEND=hf" not in gguf
    failed = explain("merge_models", FAILED, {}, "zh")
    assert "失败了" in failed and "49152 vs 32000" in failed and "llmtutor jobs show ff00aa1122" in failed
    for output in (FINETUNED, QUANTIZED, FAILED):
        for language in ("en", "zh"):
            text = explain(f"{output['kind']}_model", output, {}, language)
            assert ungrounded(text, output) == [], text


def test_job_status_reads_the_job_store(registry, ctx):
    empty = registry.get("job_status").run({}, ctx).model_dump(mode="json")
    assert explain("job_status", empty, {}, "en") == ""  # the table already says "No jobs yet"
    listed = {
        "action": "list",
        "jobs": [
            {
                "id": "a1b2c3d4e5",
                "kind": "finetune",
                "status": "running",
                "progress": {"stage": "train", "step": 5, "total": 20, "loss": 2.1345},
            },
            {"id": "99aa88bb77", "kind": "merge", "status": "succeeded", "model_name": "merged-1"},
        ],
        "log_tail": [],
    }
    en = explain("job_status", listed, {}, "en")
    assert en == "Job `a1b2c3d4e5` (fine-tuning) is running (train, 5/20, loss 2.13)."
    assert (
        explain("job_status", listed, {}, "zh")
        == "任务 `a1b2c3d4e5`（微调）正在运行（train，5/20，loss 2.13）。"
    )
    done = {**listed, "action": "status", "jobs": listed["jobs"][1:]}
    assert "(merge) succeeded (model merged-1)" in explain("job_status", done, {}, "en")


# ----- final results and cited answers ------------------------------------------------------------
def test_query_course_db_and_quiz_are_final(registry, ctx):
    run = registry.get("query_course_db").run({"question": "How many modules does the course have?"}, ctx)
    output = run.model_dump(mode="json")
    assert explain("query_course_db", output, {}, "en") == ""
    composed = compose(
        {"tool": "query_course_db", "markdown": render_markdown(run), "final": True, "output": output},
        "",
        "x",
        "en",
    )
    assert composed.text == render_markdown(run) and "19" in composed.text
    quiz = (
        registry.get("quiz").run({"topic": "quantization", "n": 1, "kind": "mc"}, ctx).model_dump(mode="json")
    )
    assert explain("quiz", quiz, {}, "en") == ""


def test_course_module_of_a_notes_file():
    assert course_module("notes/scientist-4-sft.md").title == "Supervised Fine-Tuning"
    assert course_module("/x/knowledge/course/notes/engineer-3-rag.md").id == "engineer.rag"
    assert course_module("my-notes.md") is None


@pytest.mark.parametrize(
    ("question", "language", "module_title"),
    [
        ("LoRA 为什么能减少显存", "zh", "监督式微调"),
        ("How does speculative decoding speed up generation?", "en", "Inference Optimization"),
    ],
)
def test_cited_answer_from_real_passages(registry, ctx, question, language, module_title):
    out = registry.get("search_course").run({"query": question}, ctx)
    run = {"tool": "search_course", "citations": output_citations(out), "markdown": render_markdown(out)}
    composed = compose(run, "", question, language)
    body, _, sources = composed.text.partition("**来源**" if language == "zh" else "**Sources**")
    used = [int(n) for n in re.findall(r"\[(\d+)\]", body)]
    assert used and sorted(set(used)) == list(range(1, max(used) + 1))  # 1..n, no gaps
    assert used == sorted(used)  # numbered in order of first use
    assert [c["n"] for c in composed.citations] == list(range(1, max(used) + 1))
    assert all(c["module_title"] == module_title and c["text"] for c in composed.citations)
    assert module_title in sources and ".md" not in sources  # module titles, not file paths
    if language == "zh":
        assert "显存" in body and "ZeRO" not in body
        assert all(re.search(r"[\u4e00-\u9fff]", s) for s in re.split(r"(?<=。)", body) if s.strip())
    else:
        assert "draft model" in body


def test_extractive_without_an_embedder_and_with_nothing_relevant():
    passages = [
        {
            "n": 4,
            "source": "notes/scientist-7-quantization.md",
            "heading": "Quantization > GGUF",
            "text": "GGUF is the file format of llama.cpp. It stores quantized weights such as Q4_K_M.",
        },
        {
            "n": 2,
            "source": "notes/scientist-4-sft.md",
            "heading": "SFT > LoRA",
            "text": "LoRA freezes the base weights and trains two low-rank matrices.",
        },
    ]
    text = extractive_answer("What does LoRA freeze?", passages, "en", embed=None)
    assert text == "LoRA freezes the base weights and trains two low-rank matrices [2]."
    assert extractive_answer("Who won the 2018 World Cup?", passages, "en", embed=None) == ""
    composed = compose({"tool": "search", "citations": passages}, "", "What does LoRA freeze?", "en")
    assert composed.text.startswith("LoRA freezes the base weights and trains two low-rank matrices [1].")
    assert "[1] [Supervised Fine-Tuning](https://github.com/mlabonne/llm-course) › LoRA" in composed.text


# ----- the graph: who writes, fixed texts, the stream -------------------------------------------
class MemoryRouter(ScriptedRouter):
    def route(self, text: str) -> RouteDecision:
        if "memory" in text or "显存" in text:
            args = {"model": "Llama-3-8B", "mode": "qlora"}
            return RouteDecision(tool="estimate_memory", args=args, confidence=1.0, method="classifier")
        return super().route(text)


def make_tutor(tmp_path: Path, replies: list, capable: bool = False, registry=None) -> Tutor:
    settings = (
        Settings(workspace=tmp_path, backend="openai", chat_model="big-model", router="classifier")
        if capable
        else Settings(workspace=tmp_path)
    )
    return Tutor(
        settings,
        backend=FakeBackend(replies, native_tools=capable),
        registry=registry or make_registry([]),
        router=MemoryRouter(),
        checkpointer=InMemorySaver(),
    )


def streamed(tutor: Tutor, text: str, **kwargs) -> tuple[str, dict]:
    events = list(tutor.stream(text, thread_id=kwargs.pop("thread_id", "s"), **kwargs))
    tokens = "".join(e.data["text"] for e in events if e.type == "token")
    answer = next(e for e in events if e.type == "answer").data
    assert tokens == answer["text"]  # the stream carries exactly the final text
    return tokens, answer


def test_lab_tool_on_the_small_model_uses_the_template_and_no_model(tmp_path, registry):
    tutor = make_tutor(tmp_path, [], registry=registry)  # an empty script: any model call fails
    _, answer = streamed(tutor, "How much memory for QLoRA on Llama 3 8B?")
    assert answer["text"].startswith("**Memory estimate — Llama-3-8B")
    assert answer["explanation"].startswith("Llama-3-8B needs about 14.6 GiB in total for QLoRA fine-tuning")
    _, answer = streamed(tutor, "Llama 3 8B 做 QLoRA 需要多少显存？", thread_id="zh")
    assert "总共约需 14.6 GiB" in answer["explanation"]


def test_capable_model_explanation_is_checked_and_falls_back_to_the_template(tmp_path, registry):
    invented = (
        "QQLMX (Quantum Lazy Lazy Quantum MX) is the format used here. "
        "Activations take 7.51 GiB, the largest part of the QLoRA memory. It needs 99 GB in job 4242."
    )
    tutor = make_tutor(
        tmp_path, [invented, "QQLMX is great. Totally 123 GB."], capable=True, registry=registry
    )
    _, answer = streamed(tutor, "How much memory for QLoRA on Llama 3 8B?", thread_id="c1")
    assert answer["explanation"] == "Activations take 7.51 GiB, the largest part of the QLoRA memory."
    _, answer = streamed(tutor, "How much memory for QLoRA on Llama 3 8B?", thread_id="c2")
    assert answer["explanation"].startswith("Llama-3-8B needs about 14.6 GiB")  # nothing survived


@pytest.mark.parametrize(
    ("question", "language"),
    [("2018 年世界杯冠军是哪个国家？", "zh"), ("Who won the 2018 football World Cup?", "en")],
)
def test_off_course_question_on_the_small_model(tmp_path, question, language):
    tutor = make_tutor(tmp_path, [])
    reply = tutor.ask(question)
    assert reply.citations == [] and "[1]" not in reply.answer and "Sources" not in reply.answer
    titles = {m.title_zh if language == "zh" else m.title for m in load_catalog().modules()}
    named = re.findall(r"\*\*(.+?)\*\*", reply.answer)
    assert len(named) == 2 and set(named) <= titles
    assert ("课程笔记里没有" in reply.answer) == (language == "zh")
    assert ("The course notes do not answer this" in reply.answer) == (language == "en")


def test_nearest_modules_follow_the_question():
    assert (
        nearest_modules("What is DPO and how is it different from PPO?")[0].id
        == "scientist.preference-alignment"
    )
    assert nearest_modules("向量数据库有哪些？")[0].id == "engineer.vector-storage"
    assert [m.id for m in nearest_modules("How do transformers handle long documents?")] == [
        "fundamentals.nlp",
        "scientist.architecture",
    ]
    # Nothing in the catalog relates: no "nearest" topics (the answer names where the tracks start).
    assert nearest_modules("2018 年世界杯冠军是哪个国家？") == []
    assert "**LLM 架构**和**运行 LLMs**" in off_course("2018 年世界杯冠军是哪个国家？", "zh")


@pytest.mark.parametrize(
    ("message", "kind"),
    [
        ("hi", "greeting"),
        ("Hello there!", "greeting"),
        ("你好", "greeting"),
        ("thanks, bye", "goodbye"),
        ("谢谢！", "thanks"),
        ("OK", "ack"),
        ("hi, what is LoRA?", None),
        ("Hello! Who are you?", "greeting"),
    ],
)
def test_small_talk_is_the_whole_message(message, kind):
    assert small_talk(message) == kind


def test_greetings_come_from_the_persona(tmp_path):
    tutor = make_tutor(tmp_path, [])
    assert tutor.ask("hi").answer == tutor.persona().greeting
    assert tutor.ask("你好").answer.startswith("你好！我是 LLM 课程的助教")
    assert tutor.ask("hi", persona="quiz_master").answer == tutor.persona("quiz_master").greeting


def test_capable_model_answers_off_course_marked_and_without_citations(tmp_path):
    tutor = make_tutor(
        tmp_path,
        ["France won it [1]. The course covers this in module 3.\n\nSources:\n[1] notes.md"],
        capable=True,
    )
    _, answer = streamed(tutor, "Who won the 2018 football World Cup?")
    assert answer["text"] == "_Not from the course notes: a general answer from the model._\n\nFrance won it."


def test_declined_approval_is_a_fixed_text_without_sources(tmp_path):
    calls: list[str] = []
    tutor = make_tutor(tmp_path, [], registry=make_registry(calls))
    _, answer = streamed(tutor, "big job", approve=False)
    assert calls == []
    assert answer["text"].startswith("OK, I did not run `big_count`: you declined the approval")
    assert "Sources" not in answer["text"] and "[1]" not in answer["text"]
    _, answer = streamed(tutor, "big 任务，帮我跑一下", approve=False, thread_id="zh")
    assert answer["text"].startswith("好的，没有运行 `big_count`")


def test_tool_errors_are_fixed_texts_naming_the_tool(tmp_path, registry):
    tutor = make_tutor(tmp_path, [], registry=registry)
    tutor.router.route = lambda text: RouteDecision(
        tool="query_course_db", args={"question": text}, confidence=1.0, method="classifier"
    )
    reply = tutor.ask("DROP TABLE quiz_attempts")
    assert reply.answer.startswith("⚠️ `query_course_db` stopped: ") and "refused" in reply.answer.lower()


def test_the_stream_carries_only_the_final_text(tmp_path):
    tutor = make_tutor(tmp_path, ["It counted to three for you.", "A general answer."], capable=True)
    tokens, answer = streamed(tutor, "cheap please", thread_id="a")
    assert answer["text"].startswith("counter total = 3") and len(tokens) > 0
    tokens, answer = streamed(tutor, "What is the meaning of life?", thread_id="b")
    assert answer["text"].endswith("A general answer.")
    small = make_tutor(tmp_path, [])
    for i, message in enumerate(
        ["hi", "cheap please", "What is the meaning of life?", "2018 年世界杯冠军是哪个国家？"]
    ):
        streamed(small, message, thread_id=f"small-{i}")
    assert json.dumps(answer)  # events stay JSON-serialisable for the SSE server


def test_sentence_vectors_are_computed_once_per_embedder():
    import numpy as np

    from llmtutor.agents.explain.similarity import embed_rows

    calls: list[list[str]] = []

    def embed(texts):
        calls.append(list(texts))
        return np.array([[float(len(t)), 1.0] for t in texts])

    first = embed_rows(embed, ["alpha", "be", "alpha"])
    assert first.tolist() == [[5.0, 1.0], [2.0, 1.0], [5.0, 1.0]] and calls == [["alpha", "be"]]
    again = embed_rows(embed, ["be", "gamma"])
    assert again.tolist() == [[2.0, 1.0], [5.0, 1.0]] and calls[-1] == ["gamma"]

    def other(texts):  # another embedder never reads the first one's vectors
        return np.zeros((len(texts), 2))

    assert embed_rows(other, ["alpha"]).tolist() == [[0.0, 0.0]]
