from __future__ import annotations

import pytest

from llmtutor.agents.personas import get_persona, load_personas
from llmtutor.errors import ConfigError, PersonaNotFoundError
from llmtutor.text import detect_language


def test_builtin_personas_load_with_required_roles():
    personas = load_personas()
    assert {"tutor", "socratic_coach", "quiz_master", "lab_engineer", "research_mentor"} <= set(personas)
    for persona in personas.values():
        assert persona.system_prompt.strip()
        assert "language" in persona.language_policy.lower()
    # The Socratic coach guides with questions instead of handing over answers.
    assert "question" in personas["socratic_coach"].system_prompt.lower()


def test_system_message_follows_the_learner_language():
    tutor = load_personas()["tutor"]
    assert "简体中文" in tutor.system_message("zh")
    assert "Answer in English." in tutor.system_message("en")


def test_tool_names_respect_allowed_tools():
    personas = load_personas()
    registered = ["estimate_memory", "compare_decoding", "quiz"]
    assert personas["tutor"].tool_names(registered) == registered
    assert personas["quiz_master"].tool_names(registered) == ["estimate_memory", "quiz"]


def test_user_adds_a_persona_with_a_yaml_file(tmp_path):
    (tmp_path / "pirate.yaml").write_text(
        "name: pirate\ntitle: Pirate tutor\ndescription: Arr.\nsystem_prompt: Speak like a pirate.\n"
        "allowed_tools: [estimate_memory]\ntemperature: 0.9\n",
        encoding="utf-8",
    )
    personas = load_personas(tmp_path)
    assert personas["pirate"].temperature == 0.9 and "tutor" in personas


def test_invalid_persona_file_names_the_file(tmp_path):
    (tmp_path / "bad.yaml").write_text("name: Bad Name\ntitle: x\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="bad.yaml"):
        load_personas(tmp_path)


def test_unknown_persona_lists_the_choices():
    with pytest.raises(PersonaNotFoundError, match="socratic_coach"):
        get_persona(load_personas(), "nobody")


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("What is LoRA?", "en"),
        ("解释一下什么是 GGUF", "zh"),
        ("RLHF 和 SFT 有什么区别？", "zh"),
        ("你好", "zh"),
        ("Hello!", "en"),
        ("用 LoRA 微调，学习率 2e-4", "zh"),
    ],
)
def test_detect_language(text, lang):
    assert detect_language(text) == lang
