"""What a quiz question is: the `Question` model, with the `Passage` it came from and its `KeyTerm`s.

Every question keeps the passage it came from (notes file or catalog, heading, text) and its
correct answer, so grading can show the reference and cite it; short answers also carry their
rubric (key terms, each with every English and Chinese spelling that earns the point). These
are plain pydantic models, shared by the generators (`generate.py`), the bank (`bank.py`), the
optional LLM writer (`llm.py`), grading and the stored quiz sessions.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from llmtutor.knowledge.quiz.text import Lang


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Passage(_Model):
    source: str  # notes file name ("scientist-7-quantization.md") or "catalog.yaml"
    heading: str  # "Quantization > Key ideas > AWQ: …" (the citation label)
    text: str
    module_id: str
    language: Lang


class KeyTerm(_Model):
    label: str
    spellings: list[str]  # every English and Chinese spelling that earns the point


class Question(_Model):
    id: str
    kind: Literal["mc", "short"]
    origin: Literal["cloze", "definition", "meaning", "key_idea", "llm"]
    module_id: str
    language: Lang
    prompt: str
    options: list[str] = []  # four for multiple choice, shown as A-D
    answer_index: int | None = None
    answer: str  # the correct option's text, or the reference answer
    reference_alt: str = ""  # short answers: the reference in the other language
    key_terms: list[KeyTerm] = []
    explanation: str = ""
    passage: Passage
    focus: list[str] = []  # glossary terms (English) the question is about
