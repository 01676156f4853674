"""Which language the learner writes in (the tutor answers in it)."""

from __future__ import annotations

import re

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


def detect_language(text: str) -> str:
    """'zh' when Chinese characters dominate the letters, else 'en'.

    Chinese questions often contain English terms (LoRA, GGUF), so count
    characters: one Han character carries about as much as a short word.
    """
    han = len(_CJK.findall(text))
    latin_words = len(re.findall(r"[A-Za-z]+", text))
    if han == 0:
        return "en"
    return "zh" if han >= latin_words else "en"
