"""Bayesian Knowledge Tracing (Corbett & Anderson, 1994): the probability that the learner knows
a concept, updated after every graded event.

Each concept is a hidden binary skill. Before an answer the tracer believes it is known with
probability p. An answer is right with probability 1 − slip when the skill is known and `guess`
when it is not, so Bayes' rule gives the posterior; then the learner may learn from the
attempt itself (`learn`):

    p(known | right) = p(1 − slip) / (p(1 − slip) + (1 − p) guess)
    p(known | wrong) = p slip / (p slip + (1 − p)(1 − guess))
    p_next = posterior + (1 − posterior) learn

A graded score between 0 and 1 (a short answer partly right) mixes the two posteriors in
proportion. Parameters are the textbook defaults, with `guess` by kind of event: a
four-option question is guessed a quarter of the time, a free answer or a Socratic reply
rarely. pyBKT fits these parameters from many learners' logs; one local learner has no such
log, so the update is written out here (tested against hand computations) and the parameters
stay explicit.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class BKTParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    prior: float = Field(0.2, ge=0, le=1, description="p(known) before any evidence.")
    learn: float = Field(0.15, ge=0, le=1, description="p(learns it) from one attempt.")
    slip: float = Field(0.1, ge=0, lt=0.5, description="p(wrong | known).")
    guess: float = Field(0.25, ge=0, lt=0.5, description="p(right | not known).")


# Evidence kinds and how much guessing they allow.
GUESS_BY_KIND = {
    "quiz_mc": 0.25,  # four options
    "quiz_short": 0.1,
    "check": 0.25,  # the tutor's multiple-choice check question
    "socratic": 0.1,  # the learner explained it in their own words
    "review": 0.2,  # a flashcard the learner grades themself
    # A lab run to completion: practice, weak evidence of knowing (anyone can ask for a lab and
    # read its numbers), so it moves p(known) by about a third of a right quiz answer.
    "lab": 0.45,
}
KNOWN = 0.95  # the learner says they know it ("I already know Python")
DEFAULT = BKTParams()


def params_for(kind: str, base: BKTParams = DEFAULT) -> BKTParams:
    return base.model_copy(update={"guess": GUESS_BY_KIND.get(kind, base.guess)})


def update(p_known: float, score: float, params: BKTParams = DEFAULT) -> float:
    """p(known) after one graded event with `score` in [0, 1] (1 right, 0 wrong)."""
    if not 0.0 <= score <= 1.0:
        raise ValueError(f"score must be in [0, 1], got {score}")
    p, s, g = p_known, params.slip, params.guess
    right = p * (1 - s) / (p * (1 - s) + (1 - p) * g) if p * (1 - s) + (1 - p) * g else 0.0
    wrong = p * s / (p * s + (1 - p) * (1 - g)) if p * s + (1 - p) * (1 - g) else 0.0
    posterior = score * right + (1 - score) * wrong
    return posterior + (1 - posterior) * params.learn


def p_correct(p_known: float, params: BKTParams = DEFAULT) -> float:
    """The chance the next answer is right: what a mastery estimate predicts, for evaluation."""
    return p_known * (1 - params.slip) + (1 - p_known) * params.guess
