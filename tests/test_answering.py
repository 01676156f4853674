"""Cited answers: inline [n] citations renumbered 1..n, Sources lists naming course modules,
extractive answers (the only kind on the small model), and "not in the course" without a
model call."""

from __future__ import annotations

from fakes import FakeBackend, ScriptedRouter
from langgraph.checkpoint.memory import InMemorySaver
from pydantic import BaseModel, ConfigDict

from llmtutor.agents.answering import NOT_FOUND, compose, extractive_answer
from llmtutor.agents.routing.router import RouteDecision
from llmtutor.agents.tutor import Tutor
from llmtutor.settings import Settings
from llmtutor.tools.registry import ToolRegistry, ToolSpec

PASSAGES = [
    {
        "n": 1,
        "source": "scientist-4-sft.md",
        "heading": "Supervised Fine-Tuning › LoRA",
        "text": "LoRA freezes the base weights. It trains two low-rank matrices A and B of rank r, often 8 or 16. "
        "Only about 0.1% of the parameters are trained.",
    },
    {
        "n": 2,
        "source": "scientist-7-quantization.md",
        "heading": "Quantization › GGUF",
        "text": "GGUF is the file format of llama.cpp. It stores quantized weights such as Q4_K_M.",
    },
    {
        "n": 3,
        "source": "scientist-4-sft.md",
        "heading": "监督微调 › LoRA",
        "text": "LoRA 冻结原始权重，只训练两个低秩矩阵。秩 r 通常取 8 或 16。",
    },
]


def test_model_answer_with_citations_is_kept_and_sources_listed():
    answer = compose(
        {"tool": "search", "citations": PASSAGES},
        "LoRA trains two low-rank matrices [1].",
        "What is LoRA?",
        "en",
    )
    assert answer.text.startswith("LoRA trains two low-rank matrices [1].")
    # Sources name the course module (linked to the course) and the section, not the file.
    assert (
        "**Sources**\n[1] [Supervised Fine-Tuning](https://github.com/mlabonne/llm-course) › LoRA"
        in answer.text
    )
    assert [c["n"] for c in answer.citations] == [1]
    assert answer.citations[0]["module_id"] == "scientist.sft" and answer.citations[0]["text"]


def test_uncited_or_invented_model_text_falls_back_to_extractive():
    for model_text in ["LoRA is a radio protocol.", "LoRA uses rank 512 [1].", "See [7]."]:
        answer = compose(
            {"tool": "search", "citations": PASSAGES},
            model_text,
            "What is LoRA and what rank does it use?",
            "en",
        )
        assert "low-rank matrices" in answer.text and "[1]" in answer.text
        assert "512" not in answer.text and "[7]" not in answer.text


def test_extractive_prefers_the_learner_language():
    text = extractive_answer("LoRA 的秩通常取多少？", PASSAGES, "zh", max_sentences=1)
    assert text == "秩 r 通常取 8 或 16[3]。"  # the passage's number; compose renumbers it


def test_extractive_keeps_to_passages_about_the_whole_question():
    flash = {
        "n": 4,
        "source": "engineer-5-inference-optimization.md",
        "heading": "Inference optimization › Flash Attention",
        "text": "Flash Attention reduces memory reads and writes, so memory grows linearly with length.",
    }
    lora = {
        "n": 5,
        "source": "scientist-4-sft.md",
        "heading": "Supervised Fine-Tuning › LoRA",
        "text": "LoRA trains only the adapters, so memory drops sharply during fine-tuning.",
    }
    text = extractive_answer("Why does LoRA reduce memory?", [lora, flash], "en")
    assert "adapters" in text and "Flash" not in text  # memory alone does not answer a LoRA question


def test_extractive_answers_a_question_of_everyday_words_and_skips_cut_sentences():
    passage = {
        "n": 1,
        "source": "scientist-6-evaluation.md",
        "heading": "评估 › 概述",
        "text": "评估模型的能力，才能知道它在下游任务上是否可靠。排行榜并不能代替评估模型在你的任务上的表现，例如",
    }
    text = extractive_answer("为什么要做模型评估？", [passage], "zh")
    assert text == "评估模型的能力，才能知道它在下游任务上是否可靠[1]。"  # not the sentence cut off at "例如"
    english = {
        "n": 1,
        "source": "scientist-2-instruction-dataset.md",
        "heading": "Prompt templates",
        "text": "ChatML wraps each chat template turn in special tokens, e.g. im_start and im_end. "
        "The chat template used at inference must match the one used in training.",
    }
    both = extractive_answer("What is a chat template for?", [english], "en")
    assert "e.g. im_start and im_end [1]." in both  # "e.g." ends no sentence


def test_citations_are_renumbered_in_order_of_use():
    answer = compose(
        {"tool": "search", "citations": PASSAGES},
        "GGUF stores Q4_K_M weights [2]. LoRA freezes the base weights [1][3].",
        "What are GGUF and LoRA?",
        "en",
    )
    assert answer.text.startswith("GGUF stores Q4_K_M weights [1]. LoRA freezes the base weights [2][3].")
    assert [c["n"] for c in answer.citations] == [1, 2, 3]
    assert [c["passages"] for c in answer.citations] == [[2], [1], [3]]
    assert answer.text.endswith(
        "\n[3] [Supervised Fine-Tuning](https://github.com/mlabonne/llm-course) › LoRA"
    )


def test_not_found_answers_in_the_learner_language():
    assert (
        compose({"tool": "search", "found": False, "citations": []}, "", "最好的披萨？", "zh").text
        == NOT_FOUND["zh"]
    )


class SearchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    query: str


class SearchOut(BaseModel):
    model_config = ConfigDict(extra="forbid")
    found: bool
    passages: list[dict]

    def to_markdown(self) -> str:
        return "\n".join(f"[{p['n']}] {p['text']}" for p in self.passages)

    def citations(self) -> list[dict]:
        return self.passages


def search(cfg: SearchIn, ctx) -> SearchOut:
    hits = [p for p in PASSAGES if "lora" in cfg.query.lower()]
    return SearchOut(found=bool(hits), passages=hits)


class SearchRouter(ScriptedRouter):
    def route(self, text: str) -> RouteDecision:
        return RouteDecision(tool="search", args={"query": text}, confidence=1.0, method="classifier")


def make(tmp_path, replies, capable: bool = False) -> Tutor:
    registry = ToolRegistry([ToolSpec("search", "Search the course.", SearchIn, SearchOut, search)])
    settings = (  # a capable backend writes cited answers; the default small model never does
        Settings(workspace=tmp_path, backend="openai", chat_model="big-model", router="classifier")
        if capable
        else Settings(workspace=tmp_path)
    )
    return Tutor(
        settings,
        backend=FakeBackend(replies, native_tools=capable),
        registry=registry,
        router=SearchRouter(),
        checkpointer=InMemorySaver(),
    )


def test_cited_answer_through_the_graph(tmp_path):
    tutor = make(tmp_path, ["LoRA trains low-rank matrices [1] and keeps the base frozen [3]."], capable=True)
    reply = tutor.ask("What is LoRA?")
    assert reply.answer.startswith("LoRA trains low-rank matrices [1] and keeps the base frozen [2].")
    assert [c["n"] for c in reply.citations] == [1, 2]
    assert {"source", "heading", "text", "module_title", "section"} <= set(reply.citations[0])


def test_small_model_cited_answer_is_extractive_without_a_model_call(tmp_path):
    tutor = make(tmp_path, [])  # an empty script: any model call would fail
    reply = tutor.ask("What is LoRA?")
    assert reply.answer.startswith("LoRA freezes the base weights [1].")
    assert [c["n"] for c in reply.citations] == [1] and "**Sources**" in reply.answer


def test_nothing_found_makes_no_model_call(tmp_path):
    tutor = make(tmp_path, [])  # an empty script: any model call would fail
    reply = tutor.ask("Where is the best pizza in Naples?")
    assert reply.answer == NOT_FOUND["en"] and reply.citations == []
