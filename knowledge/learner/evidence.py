"""Graded dialogue steps as learner-model evidence: the tutor's check questions and the quiz
master's question first (multiple choice, from the quiz bank) and the Socratic coach's verdicts
(the learner's own words, judged against the passage). Quiz answers are recorded by the quiz
flow itself (knowledge/quiz/flow.py)."""

from __future__ import annotations

from pathlib import Path

from llmtutor.knowledge.catalog.learner import LOCAL_LEARNER
from llmtutor.knowledge.learner import store
from llmtutor.knowledge.learner.graph import load_concept_graph
from llmtutor.knowledge.quiz.questions import Question


def record_outcome(
    db_path: Path,
    kind: str,
    score: float,
    question: Question | None = None,
    about: str = "",
    *,
    learner_id: str = LOCAL_LEARNER,
) -> list[store.ConceptUpdate]:
    """Update the concepts the step tests: the bank question's concepts (and its review card),
    or the concepts named by what the dialogue is about. Nothing named: nothing recorded."""
    if question is not None:
        from llmtutor.knowledge.quiz.flow import concepts_tested

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
        store.review(db_path, card, 3 if score >= 1.0 else 2 if score >= 0.5 else 1, learner_id=learner_id)
        return updates
    concepts = [c.id for c in load_concept_graph().find(about)][:2]
    if not concepts:
        return []
    return store.record_evidence(db_path, concepts, score, kind, learner_id=learner_id, detail=about)
