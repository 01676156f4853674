"""Wrong statements built from the right words: an answer clause that says the opposite of the reference.

Learners who half-remember reuse the reference's words and turn one of them around: "the
gradient points to where the loss is *smallest*" (steepest increase), "the chain rule
*integrates*" (differentiates), "ReLU *导致*梯度消失" (缓解), "每个 token 经过*所有*专家" (少数).
Word overlap rewards such answers, so grading looks for the turn explicitly, with two general,
bilingual checks on each answer clause and each reference clause about the same thing (sharing
at least two words: English stems, Chinese jieba words), in the answer's language:
- polarity: one side negates what the other asserts. The reference's "instead of the
  question", "never storing the full score matrix", "不需要单独训练奖励模型" against an answer
  that embeds the question, keeps the full matrix, trains a reward model; or an answer's
  "doesn't need a hidden state" against the reference's "carry a hidden state".
- reversal: the clauses use opposite words of one pair (a small table, written once for the
  field, not per question), after counting negations and direction flips ("against the
  gradient to reduce the loss" agrees with "steepest increase").
The checks are deliberately strict (two shared words, the closest reference clause only, the
table's words only): a missed misconception leaves an answer partial, a false one calls a right
answer wrong.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from llmtutor.knowledge.quiz.rubric import grams
from llmtutor.knowledge.quiz.text import words
from llmtutor.text import CJK

# Negation cues; what follows them in the clause is negated. Chinese 不 alone also starts 不同
# (different), 不断 (constantly), 不少 (many), so only these forms count.
_NEGATION = re.compile(
    r"\b(?:not|no|never|without|instead\s+of|rather\s+than|unlike|cannot|nor|neither|no\s+longer|"
    r"(?:does|do|did|is|are|was|were|ca|wo|could|would|should|has|have|need)n'?t)\b|"
    r"不需要|不需|无需|不必|不用|没有|没|并非|而不是|而非|不是|不会|不能|不再|从不|从未|并未|尚未|并不|无法|不直接|不代表",
    re.I,
)
# A negation reaches to the end of its phrase: "instead of HBM and approximates…" negates HBM only.
_SCOPE_END = re.compile(r"[(（\[]|\be\.g\.|\s(?:and|but|so|then|which|while|or)\s|[而但却所并]", re.I)
# Words that turn a direction around without negating: "against the gradient", "相反方向".
_FLIP = re.compile(r"\b(?:against|opposite|negative|reverse[ds]?|inverse)\b|相反|反方向|负梯度|逆", re.I)

# Pairs of opposite words: name, one side, the other side ("|" between words). English words
# match whole, or as a prefix with "*" ("increas*": increase, increases, increasing); Chinese
# words match anywhere.
_TABLE = (
    ("direction", "increas*|rise|rises|rising|grow*|higher|highest|larger|largest|maximi*|maximum|ascent|"
     "uphill|more|增加|增大|上升|升高|变大|最大|增长|更多|上坡",
     "decreas*|reduc*|lower|lowers|lowest|smaller|smallest|minimi*|minimum|descent|downhill|drop*|shrink*|"
     "less|fewer|减少|降低|下降|减小|变小|最小|更少|下坡"),
    ("calculus", "differentiat*|derivative*|求导|导数|微分", "integrat*|integral*|积分"),
    ("order", "parallel*|simultaneous*|all at once|并行|同时处理",
     "sequential*|one at a time|one by one|step by step|in order|顺序|逐个|依次|串行"),
    ("exactness", "exact|exactly|identical|lossless|完全相同|精确|无损", "approximat*|inexact|lossy|近似|有损"),
    ("cause", "caus*|lead to|leads to|introduc*|worsen*|导致|引起|造成|引发|加剧",
     "avoid*|prevent*|mitigat*|alleviat*|solv*|fixes|避免|缓解|防止|减轻|解决|消除"),
    ("frozen", "frozen|freez*|unchanged|untouched|冻结|保持不变",
     "updat*|modif*|chang*|compress*|alter*|retrain*|overwrit*|更新|修改|改变|压缩|重新训练"),
    ("share", "all|entire|entirely|whole|所有|全部|整个|全体", "few|subset|fraction|small number|少数|一部分|若干|几个"),
    ("time", "before|prior to|之前|以前", "after|afterwards|之后|以后"),
    ("sameness", "same|identical|相同|一样", "different|differ|differs|不同"),
    ("density", "dense|稠密", "sparse|稀疏"),
)  # fmt: skip
_PAIRS = tuple((name, tuple(one.split("|")), tuple(other.split("|"))) for name, one, other in _TABLE)


def _pattern(word: str) -> re.Pattern[str]:
    if CJK.search(word):
        return re.compile(re.escape(word))
    if word.endswith("*"):
        return re.compile(r"(?<![a-z])" + re.escape(word[:-1]))
    return re.compile(r"(?<![a-z])" + re.escape(word) + r"(?![a-z])")


_PATTERNS = {w: _pattern(w) for pair in _PAIRS for side in pair[1:] for w in side}


@dataclass(frozen=True)
class Misconception:
    kind: str  # "polarity" or the pair's name ("direction", "calculus", ...)
    answer: str  # the answer's clause
    reference: str  # the reference clause it contradicts

    def describe(self) -> str:
        return f"{self.kind}: “{self.answer}” contradicts “{self.reference}”"


@lru_cache(maxsize=8192)
def _terms(text: str) -> frozenset[str]:
    """The words two clauses must share to be about the same thing: English stems, Chinese jieba
    words (characters alone say too little: 消除 and 消失 share 消)."""
    found = {g for g in grams(text) if not g.startswith("c:") and not CJK.search(g)}
    return frozenset(found | set(words(text, "zh")))


@dataclass(frozen=True)
class _Clause:
    text: str
    plain: frozenset[str]  # words outside any negation
    negated: frozenset[str]  # words after a negation cue
    scope: tuple[int, int]  # where the negation reaches in text (empty when none)
    flips: int  # direction flips ("against", "相反") in the clause


def _scope_limit(rest: str) -> int:
    """A negation reaches six words or ten Chinese characters at most ("never storing the full
    score matrix", "不需要单独训练奖励模型"), not a whole run-on clause."""
    count = 0.0
    for match in re.finditer(r"[A-Za-z0-9'-]+|[\u3400-\u9fff]", rest):
        count += 1 if match.group()[0].isascii() else 0.6
        if count > 6:
            return match.start()
    return len(rest)


def _clause(text: str) -> _Clause:
    flips = len(_FLIP.findall(text))
    cue = _NEGATION.search(text)
    if cue is None:
        return _Clause(text, _terms(text), frozenset(), (0, 0), flips)
    rest = text[cue.end() :]
    end = _SCOPE_END.search(rest)
    cut = min(end.start() if end else len(rest), _scope_limit(rest))
    plain = _terms(text[: cue.start()]) | _terms(rest[cut:])
    return _Clause(text, plain, _terms(rest[:cut]) - plain, (cue.start(), cue.end() + cut), flips)


def _sides(clause: _Clause, pair: tuple[str, tuple[str, ...], tuple[str, ...]]) -> set[int]:
    """The sides of a pair the clause takes, each turned around when a negation covers the word
    or the clause flips direction an odd number of times ("against the gradient")."""
    lowered = clause.text.casefold()
    found = set()
    for side, options in enumerate(pair[1:]):
        for word in options:
            for match in _PATTERNS[word].finditer(lowered):
                negated = clause.scope[0] <= match.start() < clause.scope[1]
                found.add(side ^ negated ^ (clause.flips % 2))
    return found


# The pair words themselves must not count as the shared subject.
_PAIR_TERMS = frozenset().union(
    *(_terms(w.rstrip("*")) for pair in _PAIRS for side in pair[1:] for w in side)
)


def _negates_pair_word(clause: _Clause) -> bool:
    """A negated pair word ("does not change") is judged by the pair check, which knows that
    "not changed" means "frozen"; the polarity check would only see the shared subject."""
    start, end = clause.scope
    scoped = clause.text[start:end].casefold()
    return any(_PATTERNS[w].search(scoped) for pair in _PAIRS for side in pair[1:] for w in side)


def _polarity(answer: _Clause, reference: _Clause) -> bool:
    if answer.negated & reference.negated or _negates_pair_word(answer) or _negates_pair_word(reference):
        return False  # both deny the same thing, or a pair word decides
    context = len(answer.plain & reference.plain)
    asserts_denied = len(answer.plain & reference.negated)  # the reference says "not X", the answer X
    denies_stated = len(answer.negated & reference.plain)  # the answer says "not X", the reference X
    # Two shared words on the turned part, or one with two more in the rest of the clause.
    return any(n >= 2 or (n >= 1 and context >= 2) for n in (asserts_denied, denies_stated))


def _reversal(answer: _Clause, reference: _Clause) -> str | None:
    if len((answer.plain | answer.negated) & (reference.plain | reference.negated) - _PAIR_TERMS) < 2:
        return None
    for pair in _PAIRS:
        said, meant = _sides(answer, pair), _sides(reference, pair)
        if len(said) == 1 and len(meant) == 1 and said != meant:  # one side each, opposite
            return pair[0]
    return None


def find_misconceptions(
    answer_clauses: Sequence[str], reference_clauses: Sequence[str]
) -> list[Misconception]:
    """Answer clauses that negate or reverse the reference clause they are about (one per answer clause).

    A clause is about the reference clauses it shares the most words with: "standard attention
    builds an n×n matrix" is about the reference's same sentence, not about its later "never
    storing the full score matrix", so only a contradiction at least as close as any agreeing
    clause counts."""
    references = [_clause(r) for r in reference_clauses]
    found: list[Misconception] = []
    for text in answer_clauses:
        answer = _clause(text)
        said = answer.plain | answer.negated
        # Denying what the reference denies ("instead of writing the score matrix to HBM" and
        # "never storing the full score matrix") is agreement, whatever else the words touch.
        denies_alike = any(len(answer.negated & r.negated) >= 2 for r in references)
        contradicted: list[tuple[int, str, _Clause]] = []
        agreeing = 0
        for reference in references:
            overlap = len(said & (reference.plain | reference.negated))
            turned = not denies_alike and _polarity(answer, reference)
            kind = "polarity" if turned else _reversal(answer, reference)
            if kind:
                contradicted.append((overlap, kind, reference))
            else:
                agreeing = max(agreeing, overlap)
        best = max(contradicted, key=lambda c: c[0], default=None)
        if best is not None and best[0] >= agreeing:
            found.append(Misconception(best[1], text, best[2].text))
    return found
