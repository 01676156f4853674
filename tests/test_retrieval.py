"""The course index and hybrid retrieval, on real LanceDB folders and the real MiniLM model."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from llmtutor.knowledge.rag.embeddings import Embedder
from llmtutor.knowledge.rag.glossary import GlossaryEntry
from llmtutor.knowledge.rag.index import build_index, index_status
from llmtutor.knowledge.rag.retrieval import RetrievalConfig, Retriever

REPO = Path(__file__).resolve().parents[1]
SEEDS = REPO.parent / "shared" / "seeds"
DEV = REPO.parent / "shared" / "dev" / "retrieval_dev.jsonl"
NOTES = REPO / "knowledge" / "course" / "notes"

EN_NOTE = """# Fine-tuning

## Parameter-efficient methods
LoRA freezes the pre-trained weights and trains two small low-rank matrices next to them.
Only the adapters are updated, so memory use drops sharply. QLoRA also loads the frozen model in 4-bit.

## Evaluation
Perplexity measures how surprised a model is by held-out text. Lower is better, but it says little about chat quality.
"""
ZH_NOTE = """# 部署

## 边缘部署
MLC LLM 可以在浏览器和手机上运行大模型。它把模型编译成适合不同硬件的格式。

## 服务器部署
vLLM 使用分页注意力来管理 KV 缓存，提高吞吐量。TGI 也是常用的推理框架。
"""
HTML_PAGE = """<html><body><article><h1>灾难性遗忘</h1>
<p>灾难性遗忘是指模型在学习新任务时忘记旧知识的现象。参数高效微调只更新少量参数，可以减轻这个问题。</p>
</article></body></html>"""
GLOSSARY = [
    GlossaryEntry(en="catastrophic forgetting", zh="灾难性遗忘"),
    GlossaryEntry(en="browser", zh="浏览器", kind="word"),
    GlossaryEntry(en="phone", zh="手机", en_alt=("phones",), kind="word"),
    GlossaryEntry(en="low-rank adaptation", zh="低秩适配", en_alt=("LoRA",)),
]


class CountingEmbedder:
    """The real MiniLM embedder, counting what it is asked to embed."""

    def __init__(self) -> None:
        self.inner = Embedder()
        self.key = self.inner.key
        self.texts: list[str] = []

    @property
    def dim(self) -> int:
        return self.inner.dim

    def embed(self, texts):
        texts = [texts] if isinstance(texts, str) else list(texts)
        self.texts.extend(texts)
        return self.inner.embed(texts)


@pytest.fixture(scope="module")
def embedder() -> CountingEmbedder:
    return CountingEmbedder()


@pytest.fixture()
def corpus(tmp_path: Path) -> Path:
    root = tmp_path / "course"
    root.mkdir()
    (root / "finetuning.md").write_text(EN_NOTE, encoding="utf-8")
    (root / "deploy.md").write_text(ZH_NOTE, encoding="utf-8")
    (root / "forgetting.txt").write_text(HTML_PAGE, encoding="utf-8")  # HTML saved as .txt
    (root / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(200))
    (root / "broken.json").write_text('{"title": ', encoding="utf-8")
    return root


def test_build_reports_problems_and_is_incremental(corpus, tmp_path, embedder):
    location = tmp_path / "index"
    stages: list[str] = []
    report = build_index(
        [corpus], location, embedder=embedder, progress=lambda stage, *a, **k: stages.append(stage)
    )
    assert sorted(report.added) == ["course/deploy.md", "course/finetuning.md", "course/forgetting.txt"]
    assert [p.source for p in report.skipped] == ["course/logo.png"] and "binary" in report.skipped[0].reason
    assert [p.source for p in report.failed] == ["course/broken.json"]
    assert {"read", "embed", "write"} <= set(stages)
    status = index_status(location)
    assert status.exists and status.documents == 3 and status.chunks == report.chunks
    assert set(status.languages) == {"en", "zh"} and status.formats["html"] == 1 and status.last_build

    embedder.texts.clear()
    again = build_index([corpus], location, embedder=embedder)
    assert again.unchanged == 3 and again.chunks_embedded == 0 and embedder.texts == []

    (corpus / "deploy.md").write_text(ZH_NOTE + "\n## 安全\n提示注入是一种常见攻击。\n", encoding="utf-8")
    changed = build_index([corpus], location, embedder=embedder)
    assert changed.updated == ["course/deploy.md"] and changed.unchanged == 2
    assert changed.chunks_embedded == len(embedder.texts) > 0
    assert all(("部署" in t or "安全" in t) for t in embedder.texts)  # only the changed file's chunks

    (corpus / "finetuning.md").unlink()
    removed = build_index([corpus], location, embedder=embedder)
    assert removed.removed == ["course/finetuning.md"] and removed.documents == 2
    sources = {row["source"] for row in Retriever(location, embedder=embedder, glossary=GLOSSARY).rows}
    assert sources == {"course/deploy.md", "course/forgetting.txt"}


def test_hybrid_search_crosses_languages(corpus, tmp_path, embedder):
    location = tmp_path / "index"
    build_index([corpus], location, embedder=embedder)
    retriever = Retriever(location, embedder=embedder, glossary=lambda: GLOSSARY)  # pluggable glossary source
    english = retriever.search("Which frameworks run LLMs on phones and in the browser?", k=3)
    assert (
        english.found and "MLC LLM" in english.hits[0].text and english.hits[0].source == "course/deploy.md"
    )
    assert "浏览器" in english.expansions
    forgetting = retriever.search("What is catastrophic forgetting?", k=3)
    assert forgetting.found and "灾难性遗忘" in forgetting.hits[0].text
    chinese = retriever.search("低秩适配是什么？", k=3)
    assert chinese.found and chinese.hits[0].source == "course/finetuning.md"
    assert chinese.hits[0].heading == "Fine-tuning > Parameter-efficient methods"
    for off_topic in ("best pizza in Naples", "如何做红烧肉？"):
        result = retriever.search(off_topic)
        assert not result.found and result.hits == []
    assert retriever.search(
        "best pizza in Naples", only_relevant=False
    ).hits  # a search box still shows something


def test_bilingual_notes_answer_in_the_question_language(tmp_path, embedder):
    """A Chinese question that quotes the English term reads the Chinese section first (the
    English one matches its words a little better: without the language bonus it wins)."""
    root = tmp_path / "notes"
    root.mkdir()
    (root / "quant.md").write_text(
        "# Quantization\n\n## Absmax and zero-point\nAbsmax quantization divides by the largest absolute "
        "value. Zero-point quantization adds an offset, the zero-point, so skewed values waste fewer levels.\n",
        encoding="utf-8",
    )
    (root / "quant-zh.md").write_text(
        "# 量化（中文）\n\n## absmax 与零点量化\nabsmax 量化用最大绝对值去除每个数；"
        "零点（非对称）量化再加一个偏移，数值偏斜时浪费的级别更少。\n",
        encoding="utf-8",
    )
    location = tmp_path / "index"
    build_index([root], location, embedder=embedder)
    glossary = [*GLOSSARY, GlossaryEntry(en="zero-point quantization", zh="零点量化")]
    question = "零点量化（zero-point）和 absmax 有什么不同？"
    for bonus, first in ((0.0, "en"), (RetrievalConfig().language_bonus, "zh")):
        config = RetrievalConfig(language_bonus=bonus)
        retriever = Retriever(location, embedder=embedder, glossary=glossary, config=config)
        assert retriever.search(question, k=2).hits[0].language == first
    english = retriever.search("How does zero-point quantization differ from absmax?", k=2)
    assert english.hits[0].language == "en"


def test_near_duplicates_from_two_sources_are_returned_once(corpus, tmp_path, embedder):
    (corpus / "deploy-copy.md").write_text(ZH_NOTE.replace("# 部署", "# 部署（转载）"), encoding="utf-8")
    location = tmp_path / "index"
    build_index([corpus], location, embedder=embedder)
    retriever = Retriever(location, embedder=embedder, glossary=GLOSSARY)
    hits = retriever.search("vLLM 怎么管理 KV 缓存？", k=5).hits
    paged = [h for h in hits if "分页注意力" in h.text]
    assert len(paged) == 1, [(h.source, h.text[:30]) for h in hits]
    assert (
        sum(
            "分页注意力" in h.text
            for h in retriever.search("vLLM 怎么管理 KV 缓存？", k=5, method="bm25").hits
        )
        == 2
    )


class HashEmbedder:
    """Deterministic stand-in vectors (no model): for the fast dev-set check below."""

    key = "hash-embedder"
    dim = 16

    def embed(self, texts):
        texts = [texts] if isinstance(texts, str) else list(texts)
        rng = [np.random.default_rng(abs(hash(t)) % 2**32).normal(size=self.dim) for t in texts]
        vectors = np.array(rng, dtype=np.float32).reshape(len(texts), self.dim)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def _dev_recall(embedder) -> dict[str, list[bool]]:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        build_index([SEEDS], tmp, embedder=embedder)
        retriever = Retriever(tmp, embedder=embedder)
        items = [json.loads(line) for line in DEV.read_text(encoding="utf-8").splitlines() if line.strip()]
        hits: dict[str, list[bool]] = {"en": [], "zh": []}
        for item in items:
            result = retriever.search(item["query"], k=5)
            hits[item["lang"]].append(any(all(m in h.text for m in item["must"]) for h in result.hits))
        # Items whose must-strings never share a chunk (q22: "2,304" and "2304" are in different
        # seed files) cannot be hit; the per-language targets are checked on the others.
        unreachable = {
            i["id"] for i in items if not any(all(m in r["text"] for m in i["must"]) for r in retriever.rows)
        }
        reachable = {}
        for lang in ("en", "zh"):
            langs = [i for i in items if i["lang"] == lang]
            reachable[lang] = [
                h for i, h in zip(langs, hits[lang], strict=True) if i["id"] not in unreachable
            ]
    return {"all": hits["en"] + hits["zh"], **reachable}


needs_dev = pytest.mark.skipif(
    not (SEEDS.is_dir() and DEV.is_file()), reason="seed corpus or dev queries not present"
)


@needs_dev
def test_dev_set_recall_lexical_path():
    """The seeds are all Chinese, so the pipeline never consults MiniLM on them: fast with stand-in vectors."""
    recall = _dev_recall(HashEmbedder())
    assert np.mean(recall["all"]) >= 0.95, recall
    assert np.mean(recall["en"]) >= 0.90 and np.mean(recall["zh"]) >= 0.90, recall


@pytest.mark.slow
@needs_dev
def test_dev_set_recall_real_model(embedder):
    recall = _dev_recall(embedder)
    assert np.mean(recall["all"]) >= 0.95 and np.mean(recall["en"]) >= 0.90 and np.mean(recall["zh"]) >= 0.90


def test_search_course_tool_cites_and_declines(tmp_path, monkeypatch):
    from llmtutor.tools import search_course as tool_module
    from llmtutor.tools.registry import ToolContext

    notes = tmp_path / "notes"
    notes.mkdir()
    for name in ("scientist-4-sft.md", "engineer-6-deployment.md"):
        shutil.copy(NOTES / name, notes / name)
    monkeypatch.setattr(tool_module, "COURSE_NOTES", notes)
    workspace = tmp_path / "ws"
    tool_module.forget_index(workspace / "index")
    events = []
    ctx = ToolContext(workspace=workspace, progress=events.append)

    result = tool_module.TOOL.run({"query": "How does LoRA reduce the number of trainable parameters?"}, ctx)
    assert result.found and result.passages
    assert result.passages[0].source == "notes/scientist-4-sft.md" and "LoRA" in result.passages[0].text
    markdown = result.to_markdown()
    assert markdown.startswith("**[1]**") and "notes/scientist-4-sft.md" in markdown
    assert any(e.stage == "embed" for e in events)

    zh = tool_module.TOOL.run({"query": "在浏览器里运行大模型用什么？", "k": 3}, ctx)
    assert zh.found and len(zh.passages) <= 3 and "MLC" in " ".join(p.text for p in zh.passages)

    events.clear()
    off = tool_module.TOOL.run(tool_module.TOOL.extract_args("best pizza in Naples"), ctx)
    assert not off.found and off.passages == [] and "Nothing in the course notes" in off.to_markdown()
    assert not any(e.stage == "embed" for e in events)  # the index is not rebuilt
    assert len(tool_module.TOOL.examples) >= 30
    tool_module.forget_index(workspace / "index")


def test_cli_search_json_and_batch(corpus, tmp_path):
    import typer
    from typer.testing import CliRunner

    from llmtutor.ui.cli.knowledge import register

    app = typer.Typer()
    app.callback()(lambda: None)
    register(app)
    runner = CliRunner()
    location = str(tmp_path / "index")
    built = runner.invoke(app, ["index", "build", str(corpus), "--index", location, "--json"])
    assert built.exit_code == 0, built.output
    assert json.loads(built.stdout)["documents"] == 3
    single = runner.invoke(
        app, ["search", "MLC LLM 可以在哪里运行？", "--index", location, "--k", "2", "--json"]
    )
    assert single.exit_code == 0, single.output
    passages = json.loads(single.stdout)
    assert len(passages) <= 2 and set(passages[0]) == {"text", "source", "heading", "score", "chunk_id"}
    batch = tmp_path / "queries.jsonl"
    batch.write_text(
        "\n".join(json.dumps({"query": q}) for q in ("What is perplexity?", "vLLM 怎么管理 KV 缓存？"))
    )
    lines = runner.invoke(app, ["search", "--batch", str(batch), "--index", location]).stdout.splitlines()
    assert len(lines) == 2
    assert "Perplexity" in json.loads(lines[0])[0]["text"] and "vLLM" in json.loads(lines[1])[0]["text"]
    status = runner.invoke(app, ["index", "status", "--index", location, "--json"])
    assert json.loads(status.stdout)["chunks"] > 0
