"""BLEU (sacrebleu) and ROUGE-L (rouge_score) for English and Chinese answers.

- BLEU: corpus-level sacrebleu. English with its standard `13a` tokenizer, Chinese with
  `zh` (one token per Han character, the WMT convention: Chinese has no spaces, so `13a`
  would make a whole sentence one "word"). The overall score uses `zh` on every item: for
  text without Han characters it tokenizes exactly like `13a`, so one corpus BLEU covers
  mixed-language sets.
- ROUGE-L: mean per-item F1. rouge_score's default tokenizer keeps only [a-z0-9] and so
  deletes Chinese text entirely (every Chinese pair would score 0); Chinese items use a
  character-level tokenizer plugged into the same scorer. English keeps the default with
  Porter stemming (the setting of the original ROUGE script).
"""

from __future__ import annotations

import re
from typing import Any

_TOKEN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]|[a-z0-9]+")


def _char_tokenizer() -> Any:
    from rouge_score.tokenizers import Tokenizer

    class ChineseCharTokenizer(Tokenizer):
        """Han characters one by one; Latin words and numbers whole, lower-cased."""

        def tokenize(self, text: str) -> list[str]:
            return _TOKEN.findall(text.lower())

    return ChineseCharTokenizer()


def bleu(hypotheses: list[str], references: list[str], tokenize: str = "13a") -> float:
    """Corpus BLEU (0-100), one reference per hypothesis."""
    import sacrebleu

    if not hypotheses:
        return 0.0
    return float(sacrebleu.corpus_bleu(hypotheses, [references], tokenize=tokenize).score)


def rouge_l(hypotheses: list[str], references: list[str], language: str = "en") -> list[float]:
    """ROUGE-L F1 (0-1) per pair."""
    from rouge_score import rouge_scorer

    if language == "zh":
        scorer = rouge_scorer.RougeScorer(["rougeL"], tokenizer=_char_tokenizer())
    else:
        scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    return [
        scorer.score(ref, hyp)["rougeL"].fmeasure for hyp, ref in zip(hypotheses, references, strict=True)
    ]


def generation_scores(hypotheses: list[str], references: list[str], languages: list[str]) -> dict[str, Any]:
    """bleu, rougeL overall and per language (bleu_en, bleu_zh, rougeL_en, rougeL_zh), plus
    per-item ROUGE-L for the details file."""
    per_item = [0.0] * len(hypotheses)
    out: dict[str, Any] = {"bleu": bleu(hypotheses, references, tokenize="zh")}
    for lang, tok in (("en", "13a"), ("zh", "zh")):
        idx = [i for i, lg in enumerate(languages) if lg == lang]
        if not idx:
            continue
        hyps, refs = [hypotheses[i] for i in idx], [references[i] for i in idx]
        out[f"bleu_{lang}"] = bleu(hyps, refs, tokenize=tok)
        scores = rouge_l(hyps, refs, lang)
        out[f"rougeL_{lang}"] = sum(scores) / len(scores)
        for i, s in zip(idx, scores, strict=True):
            per_item[i] = s
    out["rougeL"] = sum(per_item) / len(per_item) if per_item else 0.0
    out["rougeL_items"] = per_item
    return out
