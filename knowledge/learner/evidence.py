"""Graded dialogue steps as learner-model evidence: the tutor's check questions and the quiz
master's question first (multiple choice, from the quiz bank) and the Socratic coach's verdicts
(the learner's own words, judged against the passage); the quiz flow records quiz answers
through `record_question` too; labs run to completion through `record_lab`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from llmtutor.database import Database
from llmtutor.knowledge.catalog.learner import LOCAL_LEARNER
from llmtutor.knowledge.learner import store
from llmtutor.knowledge.learner.graph import load_concept_graph
from llmtutor.knowledge.learner.labs import labs
from llmtutor.knowledge.quiz.questions import Question


def concepts_tested(question: Question) -> list[str]:
    """The concepts of the question's module that it names (its focus terms, prompt and answer);
    none named: the module's first concept, so every graded answer is evidence somewhere."""
    graph = load_concept_graph()
    own = {c.id for c in graph.of_module(question.module_id)}
    text = " ".join([*question.focus, question.prompt, question.answer])
    named = [c.id for c in graph.find(text) if c.id in own]
    return named[:3] or [c.id for c in graph.of_module(question.module_id)[:1]]


def record_question(
    db_path: Path | Database,
    question: Question,
    score: float,
    correct: bool,
    kind: str,
    *,
    learner_id: str = LOCAL_LEARNER,
) -> list[store.ConceptUpdate]:
    """A graded bank question: BKT on the concepts it tests, and its review card graded
    (FSRS: right → good, partly → hard, wrong → again)."""
    concepts = concepts_tested(question)
    updates = store.record_evidence(
        db_path,
        concepts,
        score,
        kind,
        learner_id=learner_id,
        module_id=question.module_id,
        detail=question.prompt,
    )
    card, first = f"quiz:{question.id}", concepts[0] if concepts else None
    store.ensure_card(db_path, card, concept_id=first, question_id=question.id, learner_id=learner_id)
    store.review(db_path, card, 3 if correct else 2 if score >= 0.5 else 1, learner_id=learner_id)
    return updates


def record_outcome(
    db_path: Path | Database,
    kind: str,
    score: float,
    question: Question | None = None,
    about: str = "",
    *,
    learner_id: str = LOCAL_LEARNER,
) -> list[store.ConceptUpdate]:
    """Update the concepts the step tests: the bank question's concepts (and its review card),
    or the concepts named by what the dialogue is about. Nothing named: nothing recorded."""
    if question is not None:  # multiple choice: right means a full score
        return record_question(db_path, question, score, score >= 1.0, kind, learner_id=learner_id)
    concepts = [c.id for c in load_concept_graph().find(about)][:2]
    if not concepts:
        return []
    return store.record_evidence(db_path, concepts, score, kind, learner_id=learner_id, detail=about)


# Lab tools outside labs.yaml (they train, quantize or merge a model) and the concept a completed
# run practises when the request names none of its module's concepts.
PRACTISED_BY = {
    "finetune_model": "sft_basics",
    "quantize_model": "quantization_basics",
    "merge_models": "model_merging",
}


def record_lab(
    db_path: Path | Database,
    tool: str,
    request: str,
    args: dict[str, Any],
    *,
    learner_id: str = LOCAL_LEARNER,
) -> list[store.ConceptUpdate]:
    """A lab run to completion as (weak) evidence on the concepts it practises: those of the lab's
    modules (labs.yaml) that the request or its arguments name; else the one module's first
    concept, or the tool's own concept (PRACTISED_BY). A tool that is no lab records nothing."""
    graph = load_concept_graph()
    modules = [module for module, lab in labs().items() if lab.tool == tool]
    if tool in PRACTISED_BY:
        modules.append(graph.concept(PRACTISED_BY[tool]).module)
    own = {c.id: c.module for module in modules for c in graph.of_module(module)}
    if not own:
        return []
    text = f"{request} {json.dumps(args, ensure_ascii=False)}"
    concepts = [c.id for c in graph.find(text) if c.id in own][:3]
    if not concepts and tool in PRACTISED_BY:
        concepts = [PRACTISED_BY[tool]]
    elif not concepts and len(modules) == 1:
        concepts = [graph.of_module(modules[0])[0].id]
    if not concepts:  # several modules and none named: which idea was practised is unknown
        return []
    return store.record_evidence(
        db_path,
        concepts,
        1.0,
        "lab",
        learner_id=learner_id,
        module_id=own[concepts[0]],
        detail=f"lab {tool}: {request}",
    )
