"""What the learner has covered and what to do next, computed from the concept graph and the
learner tables (no model involved: every number shown comes from here).

- `progress`: mastery per module (mean p(known) over its concepts, unseen ones at the prior),
  concepts covered, weak spots (traced and below `WEAK`), recurring mistakes (two or more wrong
  answers on one concept), reviews due in the next 14 days.
- `next_step`: the one next thing, prerequisite-aware: due reviews first; then, for a goal,
  the weakest unmastered prerequisite of it (foundations first); then the first concept in the
  course order that is not mastered and whose prerequisites all are. It never proposes a
  concept whose prerequisites the learner lacks.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from llmtutor.database import Database
from llmtutor.knowledge.catalog.learner import LOCAL_LEARNER
from llmtutor.knowledge.learner import store, tracing
from llmtutor.knowledge.learner.graph import ConceptGraph, load_concept_graph

MASTERED = 0.8  # p(known) from which a concept counts as mastered
WEAK = 0.5  # traced concepts below this are weak spots


class ModuleProgress(BaseModel):
    model_config = ConfigDict(extra="forbid")
    module_id: str
    title: str
    mastery: float  # mean p(known) over the module's concepts
    concepts: int
    covered: int  # concepts with any evidence or a self-report
    mastered: int


class ConceptProgress(BaseModel):
    model_config = ConfigDict(extra="forbid")
    concept_id: str
    name: str
    module_id: str
    p_known: float
    events: int
    correct: int
    wrong: int


class Progress(BaseModel):
    model_config = ConfigDict(extra="forbid")
    learner_id: str
    language: Literal["en", "zh"]
    modules: list[ModuleProgress]
    weak: list[ConceptProgress] = Field(default_factory=list)
    mistakes: list[ConceptProgress] = Field(default_factory=list)
    due_next_14_days: list[int]
    due_now: int
    events: int


class NextStep(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["review", "learn", "done"]
    concept_id: str | None = None
    concept: str | None = None
    module_id: str | None = None
    module: str | None = None
    p_known: float | None = None
    goal: list[str] = Field(default_factory=list)  # the goal's concept ids, when one was given
    missing: list[str] = Field(default_factory=list)  # the goal's prerequisites not mastered yet
    prerequisites: int = 0  # how many concepts the proposed one builds on (all mastered)
    due: int = 0


def _titles(language: str) -> dict[str, str]:
    from llmtutor.knowledge.catalog import load_catalog

    return {m.id: (m.title_zh if language == "zh" else m.title) for m in load_catalog().modules()}


def p_known_all(graph: ConceptGraph, states: dict[str, store.ConceptState]) -> dict[str, float]:
    return {cid: (states[cid].p_known if cid in states else tracing.DEFAULT.prior) for cid in graph.concepts}


def progress(
    db_path: Path | Database,
    language: Literal["en", "zh"] = "en",
    *,
    learner_id: str = LOCAL_LEARNER,
    now: datetime | None = None,
    graph: ConceptGraph | None = None,
) -> Progress:
    graph = graph or load_concept_graph()
    states = store.concept_states(db_path, learner_id)
    known = p_known_all(graph, states)
    wrong = store.wrong_counts(db_path, learner_id)
    titles = _titles(language)
    modules = []
    for module_id in graph.modules:
        ids = [c.id for c in graph.of_module(module_id)]
        modules.append(
            ModuleProgress(
                module_id=module_id,
                title=titles.get(module_id, module_id),
                mastery=round(sum(known[i] for i in ids) / len(ids), 3),
                concepts=len(ids),
                covered=sum(i in states for i in ids),
                mastered=sum(known[i] >= MASTERED for i in ids),
            )
        )

    def row(cid: str) -> ConceptProgress:
        state = states[cid]
        return ConceptProgress(
            concept_id=cid,
            name=graph.name(cid, language),
            module_id=graph.concept(cid).module,
            p_known=round(state.p_known, 3),
            events=state.events,
            correct=state.correct,
            wrong=wrong.get(cid, 0),
        )

    traced = [cid for cid, s in states.items() if s.source == "traced" and cid in graph.concepts]
    weak = sorted((row(c) for c in traced if states[c].p_known < WEAK), key=lambda r: r.p_known)
    mistakes = sorted((row(c) for c in traced if wrong.get(c, 0) >= 2), key=lambda r: -r.wrong)
    return Progress(
        learner_id=learner_id,
        language=language,
        modules=modules,
        weak=weak[:5],
        mistakes=mistakes[:5],
        due_next_14_days=store.due_forecast(db_path, learner_id=learner_id, now=now, days=14),
        due_now=len(store.due_cards(db_path, learner_id=learner_id, now=now, limit=1000)),
        events=sum(s.events for s in states.values()),
    )


def next_step(
    db_path: Path | Database,
    goal: str = "",
    language: Literal["en", "zh"] = "en",
    *,
    learner_id: str = LOCAL_LEARNER,
    now: datetime | None = None,
    graph: ConceptGraph | None = None,
) -> NextStep:
    graph = graph or load_concept_graph()
    due = len(store.due_cards(db_path, learner_id=learner_id, now=now, limit=1000))
    if due:
        return NextStep(kind="review", due=due)
    known = p_known_all(graph, store.concept_states(db_path, learner_id))
    goal_ids = goal_concepts(graph, goal)
    ready = [
        cid
        for cid in graph.order()
        if known[cid] < MASTERED and all(known[p] >= MASTERED for p in graph.prerequisites(cid))
    ]
    if goal_ids:
        needed = set(goal_ids)
        for cid in goal_ids:
            needed.update(graph.prerequisites(cid))
        missing = [cid for cid in graph.order() if cid in needed and known[cid] < MASTERED]
        pick = next((cid for cid in ready if cid in needed), None)
    else:
        missing, pick = [], (ready[0] if ready else None)
    if pick is None:
        return NextStep(kind="done", goal=goal_ids, missing=missing)
    concept = graph.concept(pick)
    return NextStep(
        kind="learn",
        concept_id=pick,
        concept=graph.name(pick, language),
        module_id=concept.module,
        module=_titles(language).get(concept.module, concept.module),
        p_known=round(known[pick], 3),
        goal=goal_ids,
        missing=missing,
        prerequisites=len(graph.prerequisites(pick)),
    )


def goal_concepts(graph: ConceptGraph, goal: str) -> list[str]:
    """The concepts a goal names ("I want to fine-tune Llama 3 with LoRA"), or a module's
    concepts when it names a module ("learn RAG")."""
    if not goal.strip():
        return []
    found = [c.id for c in graph.find(goal)]
    if found:
        return found
    from llmtutor.knowledge.catalog import load_catalog

    module = load_catalog().find_module(goal)
    return [c.id for c in graph.of_module(module.id)] if module else []
