"""Teaching policies: how a persona teaches, as small state machines over the same tools.

A persona's YAML names its policy (`policy: socratic`) and parameters (`policy_params`);
adding a persona with an existing policy stays one YAML file.

- `direct`: the grounded answer (cited passages, tool results with their explanation).
- `check`: the direct answer, then one check question on the concept from the quiz bank,
  graded on the learner's next reply.
- `socratic`: never the answer first; a guiding question, graded hints, then the cited answer.
- `quiz`: retrieval practice first: a quiz-bank question on the concept, graded, then the cited
  answer.
- `lab`: the cited answer, then the lab that shows the idea on real numbers (knowledge/learner/labs.yaml); "yes"
  runs it.
- `research`: the cited answer, then the papers and references the course catalog lists for it.
"""

from __future__ import annotations

POLICIES: tuple[str, ...] = ("direct", "check", "socratic", "quiz", "lab", "research")
