"""The `search_course` tool: passages from the course notes that answer a question, with sources.

Retrieval lives in `llmtutor.knowledge.rag.retrieval` (hybrid BM25 + vectors,
bilingual glossary expansion); this module adds the tool spec, the numbered
citation rendering and the course index that is built on first use from the
bundled notes (`knowledge/course/notes/*.md`) under `<workspace>/index`.
Files added with `llmtutor index build PATH` into the same index are
searched too.

`found` is False when no passage passes the relevance check: the tutor then
says the notes do not cover the question instead of inventing an answer.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from llmtutor.knowledge import NOTES_DIR
from llmtutor.text import clean_display_text, passage_as_data
from llmtutor.tools.registry import ToolContext, ToolSpec

COURSE_NOTES = NOTES_DIR

EXAMPLES: tuple[str, ...] = (
    "What does self-attention compute in a Transformer?",
    "Explain LoRA in simple terms",
    "How does QLoRA save memory compared with LoRA?",
    "What is catastrophic forgetting?",
    "Why do we need positional encodings like RoPE?",
    "What is the difference between GPTQ and AWQ?",
    "How does retrieval-augmented generation reduce hallucinations?",
    "What is DPO and how is it different from PPO?",
    "What does the course say about evaluating LLMs with benchmarks?",
    "Explain grouped-query attention and the KV cache",
    "What are the steps to build a vector store for RAG?",
    "How do text splitters chunk documents?",
    "What is model merging with SLERP or TIES?",
    "What are mixture-of-experts models?",
    "What is perplexity and why can it be misleading?",
    "What techniques are used to filter an instruction dataset?",
    "How does speculative decoding speed up generation?",
    "What are the risks of prompt injection and jailbreaks?",
    "What does the course recommend for deploying LLMs on a phone?",
    "Tell me about scaling laws in pre-training",
    "什么是注意力机制？",
    "LoRA 的原理是什么？",
    "讲讲 QLoRA 和 LoRA 的区别",
    "什么是灾难性遗忘？",
    "GGUF 格式是做什么用的？",
    "检索增强生成是怎么工作的？",
    "DPO 为什么不需要奖励模型？",
    "课程里怎么介绍模型评估的？",
    "什么是分组查询注意力？",
    "向量数据库有哪些？",
    "怎么构建指令数据集？",
    "模型合并有哪些方法？",
    "什么是混合专家模型？",
    "推理优化有哪些技术？",
    "Flash Attention 解决了什么问题？",
    "预训练的数据管道包括哪些步骤？",
    "多模态模型是怎么处理图像和文本的？",
    "RLHF 的流程是什么？",
    "解释一下量化的原理",
    "给我讲讲 KV 缓存",
    "介绍一下 mergekit",
    "解释一下困惑度这个指标",
)


class SearchCourseInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    query: str = Field(
        min_length=1, max_length=2000, description="The learner's question, English or Chinese."
    )
    k: int = Field(5, ge=1, le=20, description="Number of passages to return.")


class Passage(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str
    source: str = Field(description="File the passage comes from, e.g. notes/scientist-4-sft.md.")
    heading: str = Field(description="Heading path of the passage in that file.")
    score: float
    chunk_id: str


class SearchCourseResult(BaseModel):
    model_config = ConfigDict(extra="forbid")
    query: str
    found: bool = Field(description="False when nothing in the notes is relevant: say so, do not invent.")
    passages: list[Passage] = Field(default_factory=list)

    def to_markdown(self) -> str:
        if not self.found or not self.passages:
            return f"Nothing in the course notes answers “{self.query}”."
        parts = []
        for number, passage in enumerate(self.passages, start=1):
            where = f"{passage.source} › {passage.heading}" if passage.heading else passage.source
            text = " ".join(passage.text.split())
            parts.append(f"**[{number}]** {text}\n\n*— {where}*")
        return "\n\n".join(parts)

    def citations(self) -> list[dict[str, Any]]:
        """Numbered passages for a cited answer: {n, source, heading, text, chunk_id}."""
        return [
            {"n": i, "source": p.source, "heading": p.heading, "text": p.text, "chunk_id": p.chunk_id}
            for i, p in enumerate(self.passages, 1)
        ]


# ----- the index, built on first use, and opened retrievers ------------------------
_LOCK = threading.Lock()
_RETRIEVERS: dict[str, Any] = {}
_CHECKED: set[str] = set()


def ensure_course_index(
    index_dir: str | Path, sources: Sequence[str | Path] | None = None, *, progress: Any = None
) -> bool:
    """Build (or bring up to date) the index of `sources` (default: the bundled course notes)
    at `index_dir`; True if anything changed.

    Checked once per process and location: unchanged files cost one hash
    each and nothing is embedded again.
    """
    sources = (COURSE_NOTES,) if sources is None else sources
    from llmtutor.knowledge.rag.embeddings import Embedder
    from llmtutor.knowledge.rag.index import build_index, connect, read_meta

    key = str(index_dir)
    with _LOCK:
        if key in _CHECKED:
            return False
        existing = [Path(s) for s in sources if Path(s).exists()]
        # Keep the index's own embedding model (LLMTUTOR_EMBED_MODEL may have built it).
        model = read_meta(connect(index_dir)).get("embed_model") or None
        report = build_index(existing, index_dir, embedder=Embedder(model), progress=progress)
        _CHECKED.add(key)
        changed = bool(report.added or report.updated or report.removed)
        if changed:
            _RETRIEVERS.pop(key, None)
        return changed


def open_retriever(index_dir: str | Path) -> Any:
    """The process-wide Retriever for an index (loading costs ~1 s; a search ~10 ms)."""
    from llmtutor.knowledge.rag.retrieval import Retriever

    key = str(index_dir)
    with _LOCK:
        retriever = _RETRIEVERS.get(key)
        if retriever is None:
            retriever = _RETRIEVERS[key] = Retriever(index_dir)
        return retriever


def forget_index(index_dir: str | Path) -> None:
    """Drop cached state for an index (after `llmtutor index build` rewrote it in this process)."""
    with _LOCK:
        _RETRIEVERS.pop(str(index_dir), None)
        _CHECKED.discard(str(index_dir))


def search_course(args: SearchCourseInput, ctx: ToolContext) -> SearchCourseResult:
    index_dir = ctx.workspace / "index"
    ctx.report("index", message="checking the course index")
    ensure_course_index(index_dir, progress=ctx.report)
    ctx.check_cancelled()
    result = open_retriever(index_dir).search(args.query, k=args.k)
    # Indexed documents are data: no control tokens, remote images or orders to the assistant
    # reach the learner or the model (llmtutor.text.passage_as_data).
    passages = [
        Passage(
            text=passage_as_data(h.text),
            source=h.source,
            heading=clean_display_text(h.heading),
            score=h.score,
            chunk_id=h.chunk_id,
        )
        for h in result.hits
    ]
    return SearchCourseResult(query=args.query, found=result.found and bool(passages), passages=passages)


TOOL = ToolSpec(
    name="search_course",
    description=(
        "Search the LLM Course notes (English and Chinese) for passages that answer a question about course "
        "content: concepts, techniques, tools and what the course recommends. Returns numbered passages with "
        "their source file and heading to cite as [1], [2]; found=false when the notes do not cover it."
    ),
    input_model=SearchCourseInput,
    output_model=SearchCourseResult,
    func=search_course,
    examples=EXAMPLES,
    expensive=False,
    writes=False,  # the index it builds on first use is a cache of the bundled notes
    extract_args=lambda text: {"query": text},
)
