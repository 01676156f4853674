"""The course concept graph: modules, the concepts they teach, prerequisites and glossary terms.

`load_concept_graph()` reads `concepts.yaml`, checks it against the course catalog and returns a
frozen `ConceptGraph`. Every inconsistency is a ConfigError naming the entry and the fix, so a
bad edit fails when the graph loads, not later inside knowledge tracing. No heavy imports."""

from __future__ import annotations

import difflib
import graphlib
import heapq
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from llmtutor.errors import ConfigError
from llmtutor.knowledge.catalog import Catalog, load_catalog

DEFAULT_PATH = Path(__file__).resolve().parent / "concepts.yaml"
_HINT = "fix the named entries; the bundled knowledge/learner/concepts.yaml shows the format"
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


_M = TypeVar("_M", bound=_Frozen)


class Concept(_Frozen):
    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    module: str  # catalog module id
    en: str = Field(min_length=1)
    zh: str = Field(min_length=1)
    requires: tuple[str, ...] = ()  # concept ids to know first
    terms: tuple[str, ...] = ()  # glossary `en` spellings that belong to this concept
    aliases: tuple[str, ...] = ()  # other names learners use ("Python", "NF4") where no term fits


class ModuleNode(_Frozen):
    id: str
    requires: tuple[str, ...] = ()  # direct module prerequisites


class ConceptGraph(_Frozen):
    """Concepts and modules, both in YAML order. Build it with `load_concept_graph`, which
    validates; the methods assume a valid (acyclic, fully referenced) graph."""

    concepts: dict[str, Concept]
    modules: dict[str, ModuleNode]
    # glossary term (`en`) -> all its spellings, from the catalog; used by `find`
    spellings: dict[str, tuple[str, ...]] = {}

    def concept(self, concept_id: str) -> Concept:
        if (found := self.concepts.get(concept_id)) is not None:
            return found
        raise ConfigError(f"unknown concept {concept_id!r}", _did_you_mean(concept_id, self.concepts))

    def module(self, module_id: str) -> ModuleNode:
        if (found := self.modules.get(module_id)) is not None:
            return found
        raise ConfigError(f"unknown module {module_id!r}", _did_you_mean(module_id, self.modules))

    def of_module(self, module_id: str) -> list[Concept]:
        """The module's concepts in YAML (teaching) order."""
        self.module(module_id)
        return [c for c in self.concepts.values() if c.module == module_id]

    def prerequisites(self, concept_id: str, transitive: bool = True) -> list[str]:
        """Concept ids to know before `concept_id`.

        Direct (`transitive=False`): its `requires`, as written. Transitive: every ancestor, in
        `order()` order - foundations first, each id after its own prerequisites, so the
        nearest prerequisites tend to come last."""
        concept = self.concept(concept_id)
        if not transitive:
            return list(concept.requires)
        ancestors = _ancestors(concept_id, lambda c: self.concepts[c].requires)
        return [c for c in self._concept_order if c in ancestors]

    def module_prerequisites(self, module_id: str, transitive: bool = True) -> list[str]:
        """Module ids to study before `module_id`; ordered like `prerequisites`."""
        node = self.module(module_id)
        if not transitive:
            return list(node.requires)
        ancestors = _ancestors(module_id, lambda m: self.modules[m].requires)
        return [m for m in self._module_order if m in ancestors]

    def order(self) -> list[str]:
        """All concept ids, every prerequisite before its dependants; among concepts that are
        ready at the same time the one listed first in the YAML comes first (stable)."""
        return list(self._concept_order)

    def find(self, text: str) -> list[Concept]:
        """Concepts named in `text`, in order of first mention.

        Names are the en/zh names and every spelling of the concept's glossary terms, matched
        ignoring case and width: English as whole words (a Latin letter or digit next to it
        blocks a match, CJK does not; hyphen ~ space), Chinese anywhere. Longer spellings match
        first and claim their characters: "QLoRA" names QLoRA only, LoRA only if written apart."""
        folded = _fold(text)
        taken = [False] * len(folded)
        first: dict[str, int] = {}
        for pattern, concept_id in self._matchers:
            for m in pattern.finditer(folded):
                if any(taken[m.start() : m.end()]):
                    continue
                taken[m.start() : m.end()] = [True] * (m.end() - m.start())
                first[concept_id] = min(first.get(concept_id, m.start()), m.start())
        return [self.concepts[c] for c in sorted(first, key=first.__getitem__)]

    def name(self, concept_id: str, language: Literal["en", "zh"] = "en") -> str:
        return getattr(self.concept(concept_id), "zh" if language == "zh" else "en")

    @cached_property
    def _concept_order(self) -> tuple[str, ...]:
        return _stable_order({c.id: c.requires for c in self.concepts.values()})

    @cached_property
    def _module_order(self) -> tuple[str, ...]:
        return _stable_order({m.id: m.requires for m in self.modules.values()})

    @cached_property
    def _matchers(self) -> tuple[tuple[re.Pattern[str], str], ...]:
        owner: dict[str, str] = {}  # folded spelling -> concept id (first concept wins)
        for c in self.concepts.values():
            terms = (s for t in c.terms for s in self.spellings.get(t, (t,)))
            for spelling in (c.en, c.zh, *c.aliases, *terms):
                if key := _fold(spelling).strip():
                    owner.setdefault(key, c.id)
        longest_first = sorted(owner.items(), key=lambda kv: -len(kv[0]))
        return tuple((_pattern(key), cid) for key, cid in longest_first)


def _fold(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold()


def _pattern(spelling: str) -> re.Pattern[str]:
    words = [re.escape(w) for w in spelling.split()]
    if _CJK.search(spelling):  # Chinese: anywhere, spaces optional ("RAG 融合" == "RAG融合")
        return re.compile(r"\s*".join(words))
    body = r"[\s-]+".join(w.replace(r"\-", r"[\s-]?") for w in words)
    return re.compile(rf"(?<![0-9a-z_]){body}(?![0-9a-z_])")


def _did_you_mean(name: str, known: Iterable[str], fallback: str = "see concepts.yaml") -> str:
    close = difflib.get_close_matches(name, list(known), n=3)
    return f"did you mean {', '.join(map(repr, close))}?" if close else fallback


def _ancestors(node: str, requires: Callable[[str], Iterable[str]]) -> set[str]:
    """Everything `node` transitively requires (not `node` itself unless in a cycle)."""
    seen: set[str] = set()
    stack = list(requires(node))
    while stack:
        if (current := stack.pop()) not in seen:
            seen.add(current)
            stack.extend(requires(current))
    return seen


def _stable_order(requires: Mapping[str, Iterable[str]]) -> tuple[str, ...]:
    """Kahn's algorithm that always takes the earliest-listed ready node, so the listed order
    survives wherever prerequisites allow (a listing that is already topological comes back
    unchanged, and a track listed before another stays before it)."""
    names = list(requires)
    index = {n: i for i, n in enumerate(names)}
    waiting = {n: set(reqs) for n, reqs in requires.items()}
    dependants = {n: [d for d in names if n in waiting[d]] for n in names}
    ready = [index[n] for n in names if not waiting[n]]  # ascending, so already a heap
    out: list[str] = []
    while ready:
        out.append(node := names[heapq.heappop(ready)])
        for d in dependants[node]:
            waiting[d].discard(node)
            if not waiting[d]:
                heapq.heappush(ready, index[d])
    if len(out) != len(names):  # load_concept_graph rejects cycles first
        raise ConfigError("the concept graph has a cycle", "load it with load_concept_graph to see which")
    return tuple(out)


def _cycle(requires: Mapping[str, Iterable[str]]) -> list[str] | None:
    try:
        graphlib.TopologicalSorter({n: list(r) for n, r in requires.items()}).prepare()
    except graphlib.CycleError as exc:
        return list(reversed(exc.args[1]))  # graphlib lists predecessors first; we say "requires"
    return None


def _problems(modules: list[ModuleNode], concepts: list[Concept], catalog: Catalog) -> list[str]:
    """Every inconsistency, each worded with its fix; empty when the graph is valid."""
    known = [m.id for m in catalog.modules()]
    out: list[str] = []
    mod_requires = {m.id: m.requires for m in modules}
    for node in modules:
        for mid in (node.id, *node.requires):
            if mid not in known:
                out.append(f"unknown module id {mid!r} in modules ({_did_you_mean(mid, known)})")
    for mid in known:
        if mid not in mod_requires:
            out.append(f"module {mid!r} is missing from modules: add it with its requires")
        elif not any(c.module == mid for c in concepts):
            out.append(f"module {mid!r} has no concepts: add at least one")
    by_id: dict[str, Concept] = {}
    for c in concepts:
        if c.id in by_id:
            out.append(f"concept id {c.id!r} is used twice: rename one")
        by_id.setdefault(c.id, c)
    for c in concepts:
        if c.module not in known:
            out.append(f"concept {c.id!r}: unknown module {c.module!r} ({_did_you_mean(c.module, known)})")
        if not _CJK.search(c.zh):
            out.append(f"concept {c.id!r}: zh name {c.zh!r} has no Chinese characters: write it in Chinese")
        for r in c.requires:
            if r not in by_id:
                out.append(f"concept {c.id!r} requires unknown concept {r!r}: {_did_you_mean(r, by_id)}")
    concept_requires = {c.id: c.requires for c in concepts}
    for what, graph in (("module prerequisites", mod_requires), ("concept prerequisites", concept_requires)):
        if cycle := _cycle(graph):
            out.append(f"{what} form a cycle: {' requires '.join(cycle)}; remove one of these requires")
    for c in (c for c in concepts if c.module in mod_requires):  # missing modules are reported above
        before = _ancestors(c.module, lambda m: mod_requires.get(m, ())) | {c.module}
        for r in c.requires:
            if r in by_id and (rmod := by_id[r].module) not in before:
                out.append(
                    f"concept {c.id!r} ({c.module}) requires {r!r} from {rmod}, a module that {c.module} "
                    f"does not require: add {rmod} to its module requires or drop the prerequisite"
                )
    glossary = {t.en: t for t in catalog.glossary}
    owner: dict[str, str] = {}
    for c in concepts:
        for term in c.terms:
            if term not in glossary:
                hint = _did_you_mean(term, glossary, "see the catalog glossary")
                out.append(f"concept {c.id!r}: unknown glossary term {term!r}: use an exact `en` ({hint})")
            elif term in owner:
                out.append(f"glossary term {term!r} is assigned twice ({owner[term]!r}, {c.id!r}): keep one")
            elif c.module not in glossary[term].modules:
                out.append(
                    f"glossary term {term!r} is assigned to {c.id!r} of {c.module}, but the term lists only "
                    f"{', '.join(glossary[term].modules)}: move it to a concept of one of those"
                )
            owner.setdefault(term, c.id)
    return out


def _entry(model: type[_M], raw: Any, where: str, path: Path) -> _M:
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        errs = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'entry'}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"invalid concept graph {path}: {where}: {errs}", _HINT) from exc


def load_concept_graph(path: Path | None = None) -> ConceptGraph:
    """Load and validate the concept graph (default: the bundled one, parsed once per process).

    Raises ConfigError naming each problem and its fix when the file is missing, not YAML, or
    inconsistent with itself or with the course catalog."""
    return _load_default() if path is None else _load(Path(path))


@lru_cache(maxsize=1)
def _load_default() -> ConceptGraph:
    return _load(DEFAULT_PATH)


def _load(path: Path) -> ConceptGraph:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read concept graph {path}: {exc}", "check the path and the YAML") from exc
    shape = "top level must be `modules:` (a mapping) and `concepts:` (a list)"
    if not (isinstance(data, dict) and set(data) == {"modules", "concepts"}) or not (
        isinstance(data["modules"], dict) and isinstance(data["concepts"], list)
    ):
        raise ConfigError(f"concept graph {path}: {shape}", _HINT)
    raw_modules = {k: v if isinstance(v, dict) else {"requires": v} for k, v in data["modules"].items()}
    modules = [_entry(ModuleNode, {"id": k, **v}, f"modules.{k}", path) for k, v in raw_modules.items()]
    concepts = [_entry(Concept, c, f"concepts[{i}]", path) for i, c in enumerate(data["concepts"])]
    catalog = load_catalog()
    if problems := _problems(modules, concepts, catalog):
        more = f" (+{len(problems) - 8} more)" if len(problems) > 8 else ""
        raise ConfigError(f"invalid concept graph {path}: {'; '.join(problems[:8])}{more}", _HINT)
    spellings = {t.en: t.spellings() for t in catalog.glossary}
    return ConceptGraph(
        concepts={c.id: c for c in concepts},
        modules={m.id: m for m in modules},
        spellings={t: spellings[t] for c in concepts for t in c.terms},
    )
