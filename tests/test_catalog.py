"""The course catalog: the bundled YAML validates and matches the course documents.

Counts come from the course README in the seeds (seeds/004, the mid-2024 edition);
the earlier edition (seeds/000 Simplified Chinese, seeds/001 Traditional Chinese) is
checked through `legacy_*` entries and aliases. The seed cross-checks at the bottom
run only where the seed documents are present.
"""

from __future__ import annotations

import html
import re
from collections import Counter
from pathlib import Path

import pytest
import yaml

from llmtutor.errors import ConfigError
from llmtutor.knowledge.catalog import DEFAULT_PATH, Catalog, load_catalog

# Resources listed per module in the README (seeds/004), in course order.
RESOURCES_PER_MODULE = {
    "fundamentals.math": 7,
    "fundamentals.python": 5,
    "fundamentals.neural-networks": 4,
    "fundamentals.nlp": 5,
    "scientist.architecture": 7,
    "scientist.instruction-datasets": 5,
    "scientist.pretraining": 8,
    "scientist.sft": 5,
    "scientist.preference-alignment": 6,
    "scientist.evaluation": 4,
    "scientist.quantization": 5,
    "scientist.new-trends": 5,
    "engineer.running-llms": 4,
    "engineer.vector-storage": 4,
    "engineer.rag": 5,
    "engineer.advanced-rag": 6,
    "engineer.inference-optimization": 4,
    "engineer.deployment": 4,
    "engineer.security": 4,
}
# Resources the README added after the earlier edition (seeds/000) was translated.
NEW_IN_THIS_EDITION = {
    "Visual intro to Transformers",
    "Distilabel",
    "Preference Tuning LLMs",
    "DSPy in 8 Steps",
}
# The 15 notebooks of the earlier edition (seeds/000, seeds/001), by their names there.
EARLIER_NOTEBOOKS = [
    "LLM AutoEval",
    "LazyMergekit",
    "AutoGGUF",
    "Model Family Tree",
    "Fine-tune Llama 2 in Google Colab",
    "Fine-tune LLMs with Axolotl",
    "Fine-tune Mistral-7b with DPO",
    "Introduction to Quantization",
    "4-bit Quantization using GPTQ",
    "Quantization with GGUF and llama.cpp",
    "ExLlamaV2: The Fastest Library to Run LLMs",
    "Decoding Strategies in Large Language Models",
    "Visualizing GPT-2's Loss Landscape",
    "Improve ChatGPT with Knowledge Graphs",
    "Merge LLMs with mergekit",
]

SEEDS = next(
    (p for p in (Path("/work/shared/seeds"), Path(__file__).parents[1] / "shared" / "seeds") if p.is_dir()),
    None,
)
needs_seeds = pytest.mark.skipif(SEEDS is None, reason="course seed documents not present")


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog()


def _all_urls(cat: Catalog) -> list[str | None]:
    urls: list[str | None] = [cat.course.url]
    for mod in cat.modules():
        urls += [r.url for r in (*mod.resources, *mod.references, *mod.legacy_resources)]
    for nb in (*cat.notebooks, *cat.legacy_notebooks):
        urls += [nb.article_url, nb.colab_url, nb.repo_url]
    return urls


def test_default_path_is_bundled_and_cached(catalog: Catalog) -> None:
    assert DEFAULT_PATH.is_file() and DEFAULT_PATH.parts[-2:] == ("course", "catalog.yaml")
    assert load_catalog() is catalog
    assert load_catalog(DEFAULT_PATH) == catalog


def test_tracks_and_module_counts(catalog: Catalog) -> None:
    assert [(t.id, len(t.modules)) for t in catalog.tracks] == [
        ("fundamentals", 4),
        ("scientist", 8),
        ("engineer", 7),
    ]
    assert [t.title_zh for t in catalog.tracks] == ["LLM 基础", "LLM 科学家", "LLM 工程师"]
    assert len(catalog.modules()) == 19


def test_modules_in_course_order_with_titles(catalog: Catalog) -> None:
    mods = catalog.modules()
    assert [m.id for m in mods] == list(RESOURCES_PER_MODULE)
    assert (mods[0].title, mods[0].title_zh) == ("Mathematics for Machine Learning", "机器学习 ML 的数学基础")
    assert (mods[4].title, mods[4].title_zh) == ("LLM Architecture", "LLM 架构")
    assert (mods[10].title, mods[10].title_zh) == ("Quantization", "量化")
    assert (mods[18].title, mods[18].title_zh) == ("Securing LLMs", "LLMs安全")
    for mod in mods:
        assert mod.summary and mod.summary_zh and len(mod.topics) == len(mod.topics_zh) >= 3


def test_ids_unique_and_orders_contiguous(catalog: Catalog) -> None:
    ids = [m.id for m in catalog.modules()]
    assert len(set(ids)) == len(ids)
    assert all(m.id.startswith(f"{m.track}.") for m in catalog.modules())
    assert sorted(t.order for t in catalog.tracks) == [1, 2, 3]
    for track in catalog.tracks:
        assert sorted(m.order for m in track.modules) == list(range(1, len(track.modules) + 1))
    names = [nb.name for nb in (*catalog.notebooks, *catalog.legacy_notebooks)]
    assert len(set(names)) == len(names)


def test_resource_counts(catalog: Catalog) -> None:
    assert {m.id: len(m.resources) for m in catalog.modules()} == RESOURCES_PER_MODULE
    assert sum(1 for _ in catalog.resources()) == 97
    assert [r.title for r in catalog.module("scientist.preference-alignment").legacy_resources] == [
        "StackLLaMA"
    ]
    math = catalog.module("fundamentals.math").resources
    assert [r.author for r in math].count("Khan Academy") == 3
    assert math[0].kind == "video" and math[0].url.startswith("https://www.youtube.com/")


def test_every_url_is_https_or_null(catalog: Catalog) -> None:
    urls = _all_urls(catalog)
    assert len(urls) > 240
    for url in urls:
        assert url is None or re.fullmatch(r"https://\S+", url), url
    assert all(r.url for _, r in catalog.resources())  # the README links every resource


def test_notebooks(catalog: Catalog) -> None:
    assert len(catalog.notebooks) == 21
    assert Counter(nb.category for nb in catalog.notebooks) == {
        "tools": 6,
        "fine-tuning": 6,
        "quantization": 4,
        "other": 5,
    }
    assert all(nb.colab_url for nb in catalog.notebooks)
    assert not any(nb.article_url for nb in catalog.notebooks if nb.category == "tools")
    assert sum(1 for nb in catalog.notebooks if nb.article_url) == 14
    assert [nb.name for nb in catalog.legacy_notebooks] == ["Visualizing GPT-2's Loss Landscape"]
    for name in EARLIER_NOTEBOOKS:  # every notebook of the earlier edition is still findable
        assert catalog.notebook(name) is not None, name
    assert catalog.notebook("autogguf").name == "AutoQuant"
    assert catalog.notebook("no such notebook") is None
    known = {m.id for m in catalog.modules()}
    assert all(nb.modules and set(nb.modules) <= known for nb in catalog.notebooks)


def test_glossary_size_and_required_pairs(catalog: Catalog) -> None:
    assert len(catalog.glossary) >= 80
    pairs = {(t.en, t.zh) for t in catalog.glossary}
    for pair in [
        ("speculative decoding", "推测性解码"),
        ("quantization", "量化"),
        ("low-rank adaptation", "低秩适配"),
        ("retrieval-augmented generation", "检索增强生成"),
        ("self-attention", "自注意力"),
        ("nucleus sampling", "核采样"),
    ]:
        assert pair in pairs
    # Every module's vocabulary is covered.
    covered = {m for t in catalog.glossary for m in t.modules}
    assert covered == set(RESOURCES_PER_MODULE)
    assert all(t.definition for t in catalog.glossary)


def test_glossary_map_both_directions(catalog: Catalog) -> None:
    m = catalog.glossary_map()
    assert m["quantization"] == "量化" and m["量化"] == "quantization"
    assert m["speculative decoding"] == "推测性解码" and m["推测性解码"] == "speculative decoding"
    assert m["投機解碼"] == "speculative decoding"  # Traditional variant from seeds/001
    assert m["lora"] == "低秩适配" and m["低階適配器"] == "low-rank adaptation"
    assert m["rag"] == "检索增强生成" and m["檢索增強生成"] == "retrieval-augmented generation"
    assert m["核採樣"] == "nucleus sampling"
    assert catalog.term("KV Cache").zh == "键值缓存"
    assert catalog.term("自注意力").en == "self-attention"
    assert catalog.term("unknown words") is None


@pytest.mark.parametrize(
    ("text", "module_id"),
    [
        ("量化", "scientist.quantization"),
        ("quantization", "scientist.quantization"),
        ("2.7", "scientist.quantization"),
        ("LLM Architecture", "scientist.architecture"),
        ("llm 架构", "scientist.architecture"),
        ("scientist.sft", "scientist.sft"),
        ("监督微调", "scientist.sft"),
        ("RLHF", "scientist.preference-alignment"),
        ("首选项对齐", "scientist.preference-alignment"),
        ("RAG", "engineer.rag"),
        ("检索增强生成（RAG）", "engineer.rag"),
        ("高级 RAG", "engineer.advanced-rag"),
        ("tell me about advanced rag", "engineer.advanced-rag"),
        ("推理優化", "engineer.inference-optimization"),
        ("Securing LLMs", "engineer.security"),
        ("neural", "fundamentals.neural-networks"),
    ],
)
def test_find_module(catalog: Catalog, text: str, module_id: str) -> None:
    found = catalog.find_module(text)
    assert found is not None and found.id == module_id


def test_find_module_no_match_and_module_lookup_errors(catalog: Catalog) -> None:
    assert catalog.find_module("") is None
    assert catalog.find_module("underwater basket weaving") is None
    assert catalog.module("engineer.rag").title == "Retrieval Augmented Generation"
    with pytest.raises(KeyError, match="engineer.rag"):
        catalog.module("nope")


def test_broken_yaml_raises_config_error(tmp_path: Path) -> None:
    path = tmp_path / "catalog.yaml"
    path.write_text("tracks: [\n  - {id: fundamentals\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=re.escape(str(path))):
        load_catalog(path)
    with pytest.raises(ConfigError, match="cannot read"):
        load_catalog(tmp_path / "missing.yaml")
    path.write_text("- just a list\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="mapping"):
        load_catalog(path)


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (
            lambda d: d["tracks"][1]["modules"][2]["resources"][0].update(url="http://example.com"),
            "tracks.1.modules.2.resources.0.url",
        ),
        (lambda d: d["tracks"][0]["modules"][0].update(colour="red"), "tracks.0.modules.0.colour"),
        (lambda d: d["notebooks"][0].update(category="misc"), "notebooks.0.category"),
        (lambda d: d["tracks"][2]["modules"][1].update(order=9), "tracks[2].modules: orders"),
        (lambda d: d["tracks"][0]["modules"][1].update(id="fundamentals.math"), "tracks[0].modules[1].id"),
        (lambda d: d["glossary"].append(dict(d["glossary"][0])), "is already used by glossary[0]"),
        (lambda d: d["notebooks"][0].update(modules=["scientist.nope"]), "notebooks[0].modules"),
        (lambda d: d["tracks"][0]["modules"][0]["topics_zh"].pop(), "topics_zh"),
    ],
)
def test_invalid_catalog_names_file_and_field(tmp_path: Path, mutate, field: str) -> None:
    data = yaml.safe_load(DEFAULT_PATH.read_text(encoding="utf-8"))
    mutate(data)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_catalog(path)
    assert str(path) in str(info.value) and field in str(info.value)


# ---- cross-checks against the seed documents ---------------------------------------


@needs_seeds
def test_urls_come_from_the_readme_seed(catalog: Catalog) -> None:
    readme = next(SEEDS.glob("004_*.txt")).read_text(encoding="utf-8")
    hrefs = set(re.findall(r'href="([^"]+)"', html.unescape(readme)))
    current = [u for u in _all_urls(catalog) if u]
    legacy = {r.url for m in catalog.modules() for r in m.legacy_resources}
    assert [u for u in current if u not in hrefs and u not in legacy and u != catalog.course.url] == []


@needs_seeds
def test_resource_counts_match_the_earlier_edition_seed(catalog: Catalog) -> None:
    """seeds/000 lists each module's resources as lines after 资源/资料/参考资料 up to the next heading."""
    text = next(SEEDS.glob("000_*.txt")).read_text(encoding="utf-8")
    counts, current, inside = {}, None, False
    for line in text.splitlines():
        if heading := re.match(r"^(\d)\.(\d) ", line):
            current, inside = f"{heading[1]}.{heading[2]}", False
        elif re.match(r"^\d\. ", line) or line.startswith("暂无评论"):
            current, inside = None, False
        elif current and line.rstrip(":") in {"资源", "资料", "参考资料"}:
            inside, counts[current] = True, 0
        elif inside and line.strip():
            counts[current] += 1
    assert counts["1.1"] == 7  # the math resources
    orders = {t.id: t.order for t in catalog.tracks}
    expected = {
        f"{orders[m.track]}.{m.order}": sum(r.title not in NEW_IN_THIS_EDITION for r in m.resources)
        + len(m.legacy_resources)
        for m in catalog.modules()
    }
    assert counts == expected


@needs_seeds
def test_glossary_terms_appear_in_the_seeds(catalog: Catalog) -> None:
    seeds = "\n".join(p.read_text(encoding="utf-8") for p in SEEDS.glob("*.txt"))
    found = [t for t in catalog.glossary if any(z in seeds for z in (t.zh, *t.zh_alt))]
    assert len(found) >= 0.9 * len(catalog.glossary)
    for zh in ("推测性解码", "量化", "检索增强生成", "自注意力", "核采样", "投機解碼", "鍵值快取"):
        assert zh in seeds and catalog.term(zh) is not None
