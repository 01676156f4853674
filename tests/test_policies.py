"""Teaching policies as state machines: the Socratic dialogue, the tutor's check question, the
quiz master's question first, the lab engineer's lab offer and the research mentor's papers, on
real course passages (the bundled notes), in English and Chinese."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmtutor.agents.policies.check import check_question, grade_reply, is_answer, module_of, render_question
from llmtutor.agents.policies.socratic import (
    SocraticState,
    concept_of,
    continue_dialogue,
    open_dialogue,
)
from llmtutor.knowledge import NOTES_DIR
from llmtutor.text import detect_language

SOCRATIC_DEV = Path(__file__).resolve().parents[1].parent / "shared" / "dev" / "socratic_dev.jsonl"


def passages(concept_words: list[str], language: str, limit: int = 3) -> list[dict]:
    """Real key-idea sections of the notes that mention the concept, as retrieval returns them."""
    from llmtutor.knowledge.catalog import load_catalog
    from llmtutor.knowledge.quiz.text import parse_notes

    catalog, found = load_catalog(), []
    for path in sorted(NOTES_DIR.glob("*.md")):
        for section in parse_notes(path, catalog):
            if section.language == language and any(w.lower() in section.text.lower() for w in concept_words):
                found.append(
                    {
                        "n": len(found) + 1,
                        "source": f"notes/{path.name}",
                        "heading": section.path,
                        "text": section.text,
                    }
                )
    return found[:limit]


CASES = [
    ("What is quantization?", "en", ["quantiz"], ["reduce the precision", "fewer bits"]),
    ("Why is RAG useful?", "en", ["retrieval"], []),
    ("什么是 DPO？", "zh", ["DPO"], ["直接偏好优化"]),
    ("LoRA 是怎么工作的？", "zh", ["LoRA"], ["低秩"]),
    ("Can you just give me the answer: what is perplexity?", "en", ["perplexity"], []),
    ("How does speculative decoding work?", "en", ["speculative"], ["draft model"]),
    ("为什么需要 KV 缓存？", "zh", ["KV"], ["键值"]),
]


@pytest.mark.parametrize(("question", "language", "words", "reveal"), CASES)
def test_first_reply_asks_and_reveals_nothing(question, language, words, reveal):
    cited = passages(words, language)
    assert cited, words
    step = open_dialogue(question, concept_of(question), cited, language)
    assert step.text.rstrip().endswith(("?", "？")) and step.state is not None and not step.reveal
    assert detect_language(step.text) == language
    assert not any(phrase.lower() in step.text.lower() for phrase in reveal)
    assert not any(s["text"][:40] in step.text for s in cited)  # no passage text in the question


def test_socratic_dev_first_replies():
    if not SOCRATIC_DEV.is_file():
        pytest.skip("../shared/dev is not here")
    items = [
        json.loads(line) for line in SOCRATIC_DEV.read_text(encoding="utf-8").splitlines() if line.strip()
    ]
    for item in items:
        concept = concept_of(item["q"])
        step = open_dialogue(
            item["q"],
            concept,
            passages([concept], item["lang"]) or passages(["model"], item["lang"]),
            item["lang"],
        )
        assert step.text.rstrip().endswith(("?", "？")), item
        assert detect_language(step.text) == item["lang"], item
        assert not any(p.lower() in step.text.lower() for p in item["reveal"]), item


def test_four_turns_of_wrong_answers_end_with_the_cited_answer():
    cited = passages(["quantiz"], "en")
    step = open_dialogue("What is quantization?", "quantization", cited, "en")
    hints = []
    for reply in ("It makes the model friendlier.", "It adds more layers?", "Something about GPUs"):
        step = continue_dialogue(SocraticState.model_validate(step.state.model_dump()), reply)  # as stored
        assert step.state is not None and not step.reveal
        hints.append(step.text)
    assert [h.split(":")[0].split("(")[0].strip()[:20] for h in hints] and "Hint 1 of 3" in hints[0]
    assert "Hint 2 of 3" in hints[1] and "____" in hints[1] and "3 of 3" in hints[2]
    last = continue_dialogue(step.state, "no clue, sorry")
    assert last.reveal and last.state is None and "answer" in last.text.lower()


def test_a_right_reply_is_confirmed_and_closes_the_dialogue():
    cited = passages(["quantiz"], "en")
    step = open_dialogue("What is quantization?", "quantization", cited, "en")
    terms = step.state.key_terms
    reply = f"It stores the {terms[0]} with {terms[1]} so the model needs less memory."
    done = continue_dialogue(step.state, reply)
    assert done.reveal and done.state is None and done.text.startswith("Yes")


@pytest.mark.parametrize("reply", ["Just tell me the answer", "我放弃，直接告诉我"])
def test_asking_for_the_answer_reveals_it(reply):
    step = open_dialogue("LoRA 是怎么工作的？", "LoRA", passages(["LoRA"], "zh"), "zh")
    done = continue_dialogue(step.state, reply)
    assert done.reveal and done.state is None


def test_chinese_hints_are_chinese():
    step = open_dialogue("什么是 DPO？", "DPO", passages(["DPO"], "zh"), "zh")
    hint = continue_dialogue(step.state, "不太清楚它和模型有什么关系")
    assert "提示 1/3" in hint.text and detect_language(hint.text) == "zh"


def test_check_question_comes_from_the_cited_module_and_is_graded():
    assert module_of("notes/scientist-7-quantization.md") == "scientist.quantization"
    state = check_question([{"source": "notes/scientist-7-quantization.md", "text": "…"}], "GPTQ", "en")
    assert state is not None and state.question.module_id == "scientist.quantization"
    shown = render_question(state)
    assert "A)" in shown and state.question.answer not in shown.split("A)")[0]  # the answer is not given away
    right = "ABCD"[state.question.answer_index]
    wrong = "ABCD"[(state.question.answer_index + 1) % 4]
    assert is_answer(state, right) and not is_answer(state, "What is GPTQ?")
    assert grade_reply(state, right).startswith("✅") and grade_reply(state, wrong).startswith("❌")
    zh = check_question([{"source": "notes/scientist-4-sft.md", "text": "…"}], "LoRA", "zh")
    assert zh is not None and detect_language(render_question(zh)) == "zh"


# ----- through the tutor: the policies drive real turns, and the state lives in the thread ----
class _Cited(__import__("pydantic").BaseModel):
    query: str
    passages: list[dict]

    def to_markdown(self) -> str:
        return "\n\n".join(f"[{p['n']}] {p['text']}" for p in self.passages)

    def citations(self) -> list[dict]:
        return self.passages


def _course_tutor(workspace: Path, extra_tools: tuple = ()):
    """A Tutor whose search_course returns real note passages, routed by a stub (no index build)."""
    from fakes import FakeBackend
    from pydantic import BaseModel

    from llmtutor import Tutor
    from llmtutor.agents.routing.router import RouteDecision
    from llmtutor.settings import Settings
    from llmtutor.tools.registry import ToolRegistry, ToolSpec

    class Query(BaseModel):
        query: str

    def search(cfg: Query, ctx) -> _Cited:
        words = ["LoRA"] if "lora" in cfg.query.lower() else ["quantiz"]
        return _Cited(query=cfg.query, passages=passages(words, detect_language(cfg.query)))

    class ToSearch:
        def parse_command(self, text):
            return None

        def route(self, text):
            return RouteDecision(
                tool="search_course", args={"query": text}, confidence=1.0, method="classifier"
            )

        def route_batch(self, texts):
            return [self.route(t) for t in texts]

    tool = ToolSpec("search_course", "Course search.", Query, _Cited, search)
    return Tutor(
        Settings(workspace=workspace),
        backend=FakeBackend([]),
        registry=ToolRegistry([tool, *extra_tools]),
        router=ToSearch(),
    )


def test_a_full_socratic_dialogue_through_the_tutor_survives_a_reload(tmp_path: Path):
    first = _course_tutor(tmp_path).ask("What is quantization?", thread_id="s1", persona="socratic_coach")
    assert first.answer.rstrip().endswith("?") and not first.citations
    assert "fewer bits" not in first.answer and "precision" not in first.answer.lower()
    # a new Tutor on the same workspace (a reload) continues the dialogue from the thread
    replies = [
        _course_tutor(tmp_path).ask(text, thread_id="s1", persona="socratic_coach")
        for text in ("It makes the model friendlier.", "It adds layers?", "Something about GPUs", "no idea")
    ]
    assert "Hint 1 of 3" in replies[0].answer and "Hint 2 of 3" in replies[1].answer
    assert "3 of 3" in replies[2].answer
    assert "course notes" in replies[3].answer and replies[3].citations and "[1]" in replies[3].answer
    after = _course_tutor(tmp_path).ask("What is LoRA?", thread_id="s1", persona="socratic_coach")
    assert after.answer.rstrip().endswith("?")  # the dialogue closed: a new question opens a new one


def test_the_tutor_offers_a_check_question_and_grades_the_reply(tmp_path: Path):
    tutor = _course_tutor(tmp_path)
    reply = tutor.ask("What is LoRA?", thread_id="c1")
    assert reply.citations and "Check yourself" in reply.answer and "A)" in reply.answer
    graded = tutor.ask("B", thread_id="c1")
    assert graded.answer.startswith(("✅", "❌")) and "Source:" in graded.answer
    again = tutor.ask("B", thread_id="c1")  # the check is over: "B" is a new message now
    assert not again.answer.startswith(("✅", "❌"))


def test_check_question_is_about_the_question():
    cited = [{"source": "notes/scientist-4-sft.md", "module_id": "scientist.sft", "text": "…"}]
    asked = "How does QLoRA save memory compared with LoRA?"
    state = check_question(cited, concept_of(asked), "en", asked)
    assert state is not None and "QLoRA" in f"{state.question.prompt} {state.question.answer}"


def test_the_quiz_master_asks_first_then_grades_and_explains(tmp_path: Path):
    tutor = _course_tutor(tmp_path)
    first = tutor.ask("What is LoRA?", thread_id="q1", persona="quiz_master")
    assert "Before I explain" in first.answer and "A)" in first.answer
    assert not first.citations and "**Sources**" not in first.answer  # the answer comes after the try
    graded = tutor.ask("A", thread_id="q1", persona="quiz_master")
    assert graded.answer.startswith(("✅", "❌")) and graded.citations and "**Sources**" in graded.answer
    zh = tutor.ask("LoRA 是什么？", thread_id="q2", persona="quiz_master")
    assert "讲解之前" in zh.answer
    told = tutor.ask("直接告诉我", thread_id="q2", persona="quiz_master")
    assert not told.answer.startswith(("✅", "❌")) and told.citations and "**来源**" in told.answer
    assert detect_language(told.answer.split("**来源**")[0]) == "zh"


def test_the_research_mentor_lists_the_catalog_papers_for_the_concept(tmp_path: Path):
    from llmtutor.knowledge.catalog import load_catalog

    urls = {str(r.url) for m in load_catalog().modules() for r in (*m.resources, *m.references)}
    tutor = _course_tutor(tmp_path)
    reply = tutor.ask("What is LoRA?", thread_id="r1", persona="research_mentor")
    assert reply.citations and "**Papers and references**" in reply.answer
    papers = reply.answer.split("**Papers and references**")[1]
    listed = __import__("re").findall(r"\]\((https://[^)]+)\)", papers)
    assert listed and set(listed) <= urls  # every reference comes from the catalog
    assert listed[0] == "https://arxiv.org/abs/2106.09685"  # the LoRA paper first
    assert "Read next: **LoRA: Low-Rank Adaptation" in papers
    zh = tutor.ask("LoRA 是什么？", thread_id="r2", persona="research_mentor")
    assert "**论文与参考资料**" in zh.answer and "下一篇推荐" in zh.answer


def test_the_lab_engineer_offers_the_module_lab_and_runs_it_on_yes(tmp_path: Path):
    from llmtutor.tools.estimate_memory import TOOL as MEMORY

    tutor = _course_tutor(tmp_path, extra_tools=(MEMORY,))
    offer = tutor.ask("What is LoRA?", thread_id="l1", persona="lab_engineer")
    assert offer.citations and "Try it in a lab" in offer.answer and "`estimate_memory`" in offer.answer
    ran = tutor.ask("yes", thread_id="l1", persona="lab_engineer")
    assert ran.tool_calls[0]["tool"] == "estimate_memory"
    assert ran.tool_calls[0]["args"] == {"model": "Llama-3-8B", "mode": "qlora"}
    assert "| **total** |" in ran.answer and "GiB" in ran.answer
    again = tutor.ask("yes", thread_id="l1", persona="lab_engineer")  # the offer was used up
    assert not again.tool_calls or again.tool_calls[0]["tool"] != "estimate_memory"
    declined = tutor.ask("LoRA 是什么？", thread_id="l2", persona="lab_engineer")
    assert "动手试试" in declined.answer
    other = tutor.ask("What is quantization?", thread_id="l2", persona="lab_engineer")
    assert not any(c["tool"] == "estimate_memory" for c in other.tool_calls)  # a new question, no lab


def test_every_lab_offer_names_a_module_and_valid_tool_input():
    from llmtutor.agents.policies.lab import labs
    from llmtutor.knowledge.catalog import load_catalog
    from llmtutor.tools.registry import default_registry

    modules, registry = {m.id for m in load_catalog().modules()}, default_registry()
    assert labs()
    for module_id, lab in labs().items():
        assert module_id in modules
        registry.get(lab.tool).validate(lab.args)  # raises on input the tool would refuse
        assert detect_language(lab.request_zh) == "zh" and detect_language(lab.request) == "en"


def test_graded_dialogue_steps_become_learner_evidence(tmp_path: Path):
    from llmtutor.knowledge.learner import store

    tutor = _course_tutor(tmp_path)
    db = tutor.settings.catalog_db
    reply = tutor.ask("What is LoRA?", thread_id="e1")
    assert "Check yourself" in reply.answer
    tutor.ask("A", thread_id="e1")  # graded: evidence on the question's concepts, and a review card
    traced = store.concept_states(db)
    assert traced and all(s.events == 1 for s in traced.values())
    assert store.evidence(db, next(iter(traced)))[0]["kind"] == "check"
    socratic = _course_tutor(tmp_path)
    socratic.ask("What is quantization?", thread_id="e2", persona="socratic_coach")
    socratic.ask("no idea", thread_id="e2", persona="socratic_coach")  # revealed: not known yet
    events = [
        e for cid in store.concept_states(db) for e in store.evidence(db, cid) if e["kind"] == "socratic"
    ]
    assert events and all(e["score"] == 0.0 for e in events)
