"""The `lab` policy (the lab engineer's): after a cited answer, offer the lab that shows the idea
on real numbers; a "yes" runs it (through the usual approval when the tool is expensive).

    cited answer + offer ──("yes" / "好")──▶ the offered tool runs, its result explained
                         └─(anything else)──▶ routed as usual, the offer dropped

Which lab goes with which course module is data (knowledge/learner/labs.yaml). The offer's text is fixed; the
tool's result is explained by its templates like any other tool step.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from llmtutor.knowledge.learner.labs import labs

Language = Literal["en", "zh"]

TEXT = {
    "en": "**Try it in a lab:** {request}. Reply “yes” to run it (`{tool}`).",
    "zh": "**动手试试：** {request}。回复“好”即可运行（`{tool}`）。",
}
_YES = re.compile(
    r"(?:yes|yeah|yep|sure|ok(?:ay)?|go(?: ahead)?|run it|do it|let'?s (?:do|try) it|please)[.!]*"
    r"|(?:好|好的|可以|行|运行吧?|试试|来吧|是的?|嗯)[。！!]*",
    re.IGNORECASE,
)


class LabOffer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    policy: Literal["lab"] = "lab"
    language: Language
    tool: str
    args: dict[str, Any]


def offer(
    citations: list[dict[str, Any]], language: Language, allowed: list[str]
) -> tuple[str, LabOffer] | None:
    """The offer for the first cited module that has a lab the persona may run."""
    for citation in citations:
        lab = labs().get(str(citation.get("module_id", "")))
        if lab is not None and lab.tool in allowed:
            request = lab.request_zh if language == "zh" else lab.request
            text = TEXT[language].format(request=request, tool=lab.tool)
            return text, LabOffer(language=language, tool=lab.tool, args=lab.args)
    return None


def accepts(reply: str) -> bool:
    return bool(_YES.fullmatch(reply.strip()))
