"""The course concept graph: the bundled YAML is a sound prerequisite graph over the catalog,
lookups behave, and every kind of broken edit is rejected with a message naming it."""

from __future__ import annotations

import graphlib
import re
from collections import Counter, deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from llmtutor.errors import ConfigError
from llmtutor.knowledge.catalog import load_catalog
from llmtutor.knowledge.learner.graph import (
    DEFAULT_PATH,
    Concept,
    ConceptGraph,
    ModuleNode,
    load_concept_graph,
)

CJK = re.compile(r"[\u4e00-\u9fff]")


@pytest.fixture(scope="module")
def graph() -> ConceptGraph:
    return load_concept_graph()


def test_bundled_graph_loads_once_and_has_a_sensible_size(graph: ConceptGraph) -> None:
    assert load_concept_graph() is graph  # cached for the default path
    assert 90 <= len(graph.concepts) <= 130
    for module_id in graph.modules:
        assert 4 <= len(graph.of_module(module_id)) <= 8, module_id


def test_every_catalog_module_is_covered_in_course_order(graph: ConceptGraph) -> None:
    catalog_ids = [m.id for m in load_catalog().modules()]
    assert list(graph.modules) == catalog_ids
    assert {c.module for c in graph.concepts.values()} == set(catalog_ids)


def test_graph_is_acyclic_and_order_is_topological(graph: ConceptGraph) -> None:
    # An independent check with graphlib: raises CycleError on any cycle.
    list(graphlib.TopologicalSorter({c.id: c.requires for c in graph.concepts.values()}).static_order())
    list(graphlib.TopologicalSorter({m.id: m.requires for m in graph.modules.values()}).static_order())
    order = graph.order()
    assert sorted(order) == sorted(graph.concepts) and len(order) == len(set(order))
    position = {cid: i for i, cid in enumerate(order)}
    for concept in graph.concepts.values():
        for req in concept.requires:
            assert position[req] < position[concept.id], (req, concept.id)


def test_order_is_stable() -> None:
    # The bundled YAML is written in teaching order, so order() keeps it; a listing that
    # is not topological is fixed with the least movement (earliest-listed ready first).
    assert load_concept_graph().order() == list(load_concept_graph().concepts)
    concepts = [
        Concept(id="c", module="m", en="C", zh="丙", requires=("b",)),
        Concept(id="a", module="m", en="A", zh="甲"),
        Concept(id="b", module="m", en="B", zh="乙"),
        Concept(id="d", module="m", en="D", zh="丁"),
    ]
    small = ConceptGraph(concepts={c.id: c for c in concepts}, modules={"m": ModuleNode(id="m")})
    assert small.order() == ["a", "b", "c", "d"]


def test_concept_prerequisites_respect_module_prerequisites(graph: ConceptGraph) -> None:
    for concept in graph.concepts.values():
        allowed = {concept.module, *graph.module_prerequisites(concept.module)}
        for req in concept.requires:
            assert graph.concept(req).module in allowed, (concept.id, req)


def test_every_concept_is_reachable_from_the_roots(graph: ConceptGraph) -> None:
    dependants: dict[str, list[str]] = {cid: [] for cid in graph.concepts}
    for concept in graph.concepts.values():
        for req in concept.requires:
            dependants[req].append(concept.id)
    roots = [c.id for c in graph.concepts.values() if not c.requires]
    assert {graph.concept(r).module for r in roots} <= {"fundamentals.math", "fundamentals.python"}
    seen, queue = set(roots), deque(roots)
    while queue:
        for nxt in dependants[queue.popleft()]:
            if nxt not in seen:
                seen.add(nxt)
                queue.append(nxt)
    assert seen == set(graph.concepts)


def test_every_glossary_term_is_assigned_once_in_a_listed_module(graph: ConceptGraph) -> None:
    glossary = {t.en: t for t in load_catalog().glossary}
    counts = Counter(term for c in graph.concepts.values() for term in c.terms)
    assert set(counts) == set(glossary)
    assert [t for t, n in counts.items() if n != 1] == []
    for concept in graph.concepts.values():
        for term in concept.terms:
            assert concept.module in glossary[term].modules, (concept.id, term)


def test_names_are_chinese_and_english(graph: ConceptGraph) -> None:
    for concept in graph.concepts.values():
        assert CJK.search(concept.zh), concept.id
        assert not CJK.search(concept.en), concept.id
    assert graph.name("qlora", "zh") == graph.concept("qlora").zh
    assert "QLoRA" in graph.name("qlora", "en")


def test_key_edges(graph: ConceptGraph) -> None:
    qlora = graph.prerequisites("qlora")
    assert {"lora", "nf4_quantization", "full_fine_tuning", "sft_basics"} <= set(qlora)
    assert qlora.index("full_fine_tuning") < qlora.index("lora")  # foundations first
    assert graph.prerequisites("qlora", transitive=False) == ["lora", "nf4_quantization"]
    assert {"sft_basics", "preference_data"} <= set(graph.prerequisites("dpo", transitive=False))
    assert {"embeddings", "vector_database"} <= set(graph.prerequisites("rag_pipeline", transitive=False))
    assert "word_embeddings" in graph.prerequisites("rag_pipeline")
    assert "attention" in graph.prerequisites("kv_cache", transitive=False)
    assert "quantization_basics" in graph.prerequisites("gguf", transitive=False)
    assert "sft_basics" in graph.prerequisites("model_merging")
    assert graph.prerequisites("linear_algebra") == []


def test_module_prerequisites(graph: ConceptGraph) -> None:
    assert graph.module_prerequisites("fundamentals.math") == []
    assert graph.module_prerequisites("scientist.sft", transitive=False) == [
        "scientist.pretraining",
        "scientist.instruction-datasets",
    ]
    deployment = graph.module_prerequisites("engineer.deployment")
    assert {"engineer.running-llms", "engineer.inference-optimization", "scientist.quantization"} <= set(
        deployment
    )
    assert deployment.index("fundamentals.math") < deployment.index("scientist.architecture")
    assert "engineer.rag" not in deployment
    assert "fundamentals.nlp" in graph.module_prerequisites("engineer.vector-storage")


def test_tracks_come_in_order(graph: ConceptGraph) -> None:
    tracks = [graph.concept(cid).module.split(".")[0] for cid in graph.order()]
    last_fundamentals = max(i for i, t in enumerate(tracks) if t == "fundamentals")
    first_scientist = tracks.index("scientist")
    assert last_fundamentals < first_scientist
    assert max(i for i, t in enumerate(tracks) if t == "scientist") < tracks.index("engineer")


@pytest.mark.parametrize(
    ("text", "first"),
    [
        ("How does QLoRA work?", "qlora"),
        ("什么是检索增强生成？", "rag_pipeline"),
        ("什么是QLoRA？", "qlora"),
        ("Explain the KV-cache", "kv_cache"),
        ("ＲＡＧ是什么", "rag_pipeline"),  # full-width letters
    ],
)
def test_find(graph: ConceptGraph, text: str, first: str) -> None:
    found = graph.find(text)
    assert found and found[0].id == first, [c.id for c in found]


def test_find_prefers_longest_spelling_and_whole_words(graph: ConceptGraph) -> None:
    assert [c.id for c in graph.find("How does QLoRA work?")] == ["qlora"]
    assert [c.id for c in graph.find("quantized low-rank adaptation")] == ["qlora"]
    assert [c.id for c in graph.find("QLoRA or plain LoRA?")] == ["qlora", "lora"]
    assert [c.id for c in graph.find("词嵌入和 RNN")] == ["word_embeddings", "recurrent_networks"]
    assert graph.find("the weather is nice today") == []


def test_unknown_ids_raise_config_error_with_a_hint(graph: ConceptGraph) -> None:
    with pytest.raises(ConfigError, match="unknown concept 'qloar'") as err:
        graph.concept("qloar")
    assert "qlora" in str(err.value.hint)
    with pytest.raises(ConfigError, match="unknown module"):
        graph.of_module("scientist.sftt")


def _raw() -> dict[str, Any]:
    return yaml.safe_load(DEFAULT_PATH.read_text(encoding="utf-8"))


def _concept(data: dict[str, Any], concept_id: str) -> dict[str, Any]:
    return next(c for c in data["concepts"] if c["id"] == concept_id)


def _cycle(d: dict[str, Any]) -> None:
    _concept(d, "linear_algebra")["requires"] = ["eigen_decomposition"]


def _module_cycle(d: dict[str, Any]) -> None:
    d["modules"]["fundamentals.math"]["requires"] = ["fundamentals.nlp"]


def _unknown_prerequisite(d: dict[str, Any]) -> None:
    _concept(d, "qlora")["requires"] = ["lora", "nf5_quantization"]


def _non_prerequisite_module(d: dict[str, Any]) -> None:
    _concept(d, "embeddings")["requires"] = ["attention"]  # vector-storage does not require architecture


def _term_twice(d: dict[str, Any]) -> None:
    _concept(d, "qlora")["terms"].append("low-rank adaptation")


def _term_wrong_module(d: dict[str, Any]) -> None:
    _concept(d, "traditional_metrics")["terms"].remove("perplexity")
    _concept(d, "linear_algebra")["terms"].append("perplexity")


def _unknown_term(d: dict[str, Any]) -> None:
    _concept(d, "traditional_metrics")["terms"].append("perplexitty")


def _missing_module(d: dict[str, Any]) -> None:
    del d["modules"]["engineer.security"]


def _module_without_concepts(d: dict[str, Any]) -> None:
    d["concepts"] = [c for c in d["concepts"] if c["module"] != "engineer.security"]


def _unknown_module(d: dict[str, Any]) -> None:
    _concept(d, "qlora")["module"] = "scientist.sftt"


def _zh_not_chinese(d: dict[str, Any]) -> None:
    _concept(d, "qlora")["zh"] = "QLoRA"


def _duplicate_id(d: dict[str, Any]) -> None:
    d["concepts"].append({**_concept(d, "lora"), "terms": []})


def _extra_field(d: dict[str, Any]) -> None:
    _concept(d, "lora")["difficulty"] = 3


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (_cycle, r"concept prerequisites form a cycle: .*linear_algebra requires eigen_decomposition"),
        (
            _module_cycle,
            r"module prerequisites form a cycle: .*fundamentals\.math requires fundamentals\.nlp",
        ),
        (_unknown_prerequisite, r"'qlora' requires unknown concept 'nf5_quantization'"),
        (_non_prerequisite_module, r"'embeddings' .* requires 'attention' from scientist\.architecture"),
        (_term_twice, r"glossary term 'low-rank adaptation' is assigned twice"),
        (_term_wrong_module, r"'perplexity' is assigned to 'linear_algebra' .* lists only"),
        (_unknown_term, r"unknown glossary term 'perplexitty'"),
        (_missing_module, r"module 'engineer\.security' is missing from modules"),
        (_module_without_concepts, r"module 'engineer\.security' has no concepts"),
        (_unknown_module, r"unknown module 'scientist\.sftt'"),
        (_zh_not_chinese, r"'qlora': zh name 'QLoRA' has no Chinese characters"),
        (_duplicate_id, r"concept id 'lora' is used twice"),
        (_extra_field, r"difficulty"),
    ],
)
def test_broken_graphs_are_rejected(
    tmp_path: Path, mutate: Callable[[dict[str, Any]], None], message: str
) -> None:
    data = _raw()
    mutate(data)
    path = tmp_path / "concepts.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        load_concept_graph(path)


def test_unchanged_copy_loads(tmp_path: Path) -> None:
    # The round trip used above is not itself what the broken tests catch.
    path = tmp_path / "concepts.yaml"
    path.write_text(yaml.safe_dump(_raw(), allow_unicode=True, sort_keys=False), encoding="utf-8")
    assert load_concept_graph(path).order() == load_concept_graph().order()


@pytest.mark.parametrize("text", ["modules: [", "- just a list", "modules: {}\n"])
def test_unreadable_or_malformed_files_are_rejected(tmp_path: Path, text: str) -> None:
    path = tmp_path / "concepts.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match="concept graph"):
        load_concept_graph(path)
    with pytest.raises(ConfigError, match="cannot read"):
        load_concept_graph(tmp_path / "missing.yaml")
