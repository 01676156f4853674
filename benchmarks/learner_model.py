"""The learner model on simulated learners: does knowledge tracing recover what they know, does
`next_step` respect prerequisites, do FSRS intervals behave?

    python benchmarks/learner_model.py [--events 100,300] [--seeds 5]

Three scripted profiles, a true mastery per module (the chance the learner "has" a concept):
knows the Fundamentals only; strong on quantization, weak on RAG; random. Each answers
`--events` multiple-choice quiz events (a module, then one of its concepts, uniformly); an answer
is right with probability m(1 − slip) + (1 − m)·guess, the BKT generative model with the
tracer's own slip/guess (0.1 / 0.25). Reported per profile, mean over `--seeds`:

* Spearman between the profile's order (its distinct true levels; modules sharing a level form
  one group) and the estimate per group: the tracer (mean p(known) of the group's evidenced
  concepts) vs the baseline a user would otherwise have — the course database's
  recency-weighted share of right answers per module (`module_mastery`, what the tutor used
  before);
* next_step violations: proposed concepts with a prerequisite the profile does not have (true
  mastery < 0.5), over the no-goal step and goals QLoRA, RAG, DPO, GGUF;
* FSRS: the intervals of one card answered "good" five times, then "again".

Targets: Spearman ≥ 0.8, 0 violations, intervals growing then shrinking on the lapse.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

GOALS = ("", "QLoRA", "retrieval-augmented generation", "DPO", "GGUF")


def spearman(xs: list[float], ys: list[float]) -> float:
    def ranks(values: list[float]) -> list[float]:
        order = sorted(range(len(values)), key=values.__getitem__)
        out = [0.0] * len(values)
        i = 0
        while i < len(order):
            j = i
            while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
                j += 1
            for k in range(i, j + 1):
                out[order[k]] = (i + j) / 2 + 1
            i = j + 1
        return out

    rx, ry = ranks(xs), ranks(ys)
    if len(set(rx)) < 2 or len(set(ry)) < 2:
        return float("nan")
    return statistics.correlation(rx, ry)


def profiles(modules: list[str], seed: int) -> dict[str, dict[str, float]]:
    rng = random.Random(seed)
    fundamentals = {m: (0.95 if m.startswith("fundamentals.") else 0.05) for m in modules}
    fundamentals["scientist.architecture"] = 0.5
    quant = {m: 0.4 for m in modules}
    quant.update({m: 0.6 for m in modules if m.startswith("fundamentals.")})
    quant.update({"scientist.architecture": 0.7, "scientist.sft": 0.8, "scientist.quantization": 0.95})
    quant.update({"engineer.rag": 0.05, "engineer.advanced-rag": 0.05, "engineer.vector-storage": 0.15})
    return {
        "knows Fundamentals only": fundamentals,
        "strong quantization, weak RAG": quant,
        "random": {m: rng.random() for m in modules},
    }


def simulate(profile: dict[str, float], events: int, seed: int) -> tuple[float, float, int]:
    from llmtutor.knowledge.catalog.learner import record_quiz_attempt
    from llmtutor.knowledge.learner import store, tracing
    from llmtutor.knowledge.learner.graph import load_concept_graph
    from llmtutor.knowledge.learner.progress import next_step

    graph, rng = load_concept_graph(), random.Random(seed)
    db = Path(tempfile.mkdtemp(prefix="learner-sim-")) / "course.sqlite"
    params = tracing.params_for("quiz_mc")
    modules = list(graph.modules)
    start = datetime(2026, 12, 1, tzinfo=UTC)
    for i in range(events):
        module = rng.choice(modules)
        concept = rng.choice(graph.of_module(module))
        m = profile[module]
        right = rng.random() < m * (1 - params.slip) + (1 - m) * params.guess
        when = start + timedelta(minutes=i)
        store.record_evidence(db, [concept.id], 1.0 if right else 0.0, "quiz_mc", module_id=module, now=when)
        record_quiz_attempt(
            db, question=concept.id, answer="x", correct=right, module_id=module, taken_at=when
        )
    states = store.concept_states(db)
    import sqlite3

    baseline = dict(sqlite3.connect(db).execute("SELECT module_id, mastery FROM module_mastery").fetchall())
    # The profile's order is over its levels (modules sharing a true mastery form one group):
    # each group's estimate is the mean over its evidenced concepts (tracer) or its modules'
    # recency-weighted share of right answers (baseline).
    truth, traced, shares = [], [], []
    for level in sorted(set(profile.values())):
        group = [m for m in modules if profile[m] == level]
        ps = [states[c.id].p_known for m in group for c in graph.of_module(m) if c.id in states]
        bs = [baseline[m] for m in group if m in baseline]
        if ps and bs:
            truth.append(level)
            traced.append(statistics.fmean(ps))
            shares.append(statistics.fmean(bs))
    ours, theirs = spearman(truth, traced), spearman(truth, shares)
    violations = 0
    for goal in GOALS:
        step = next_step(db, goal, now=start + timedelta(days=30))
        if step.kind == "review":  # answered cards are due: the concept step is what is checked
            step = next_step(db, goal, now=start - timedelta(days=1))
        if step.concept_id:
            lacking = [
                p for p in graph.prerequisites(step.concept_id) if profile[graph.concept(p).module] < 0.5
            ]
            violations += bool(lacking)
    return ours, theirs, violations


def fsrs_intervals() -> list[float]:
    from llmtutor.knowledge.learner import store

    db = Path(tempfile.mkdtemp(prefix="fsrs-")) / "course.sqlite"
    when = datetime(2026, 12, 1, tzinfo=UTC)
    store.ensure_card(db, "card", now=when)
    out = []
    for rating in (3, 3, 3, 3, 3, 1):
        out.append(store.review(db, "card", rating, now=when))
        when += timedelta(days=out[-1])
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", default="100", help="comma-separated: events per learner")
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()
    from llmtutor.knowledge.learner.graph import load_concept_graph

    modules = list(load_concept_graph().modules)
    print(f"multiple-choice events per learner, mean of {args.seeds} seeds, {len(modules)} modules\n")
    print(
        "| profile | events | Spearman: BKT tracer | Spearman: share of right answers (baseline) "
        "| next_step violations |\n|---|---:|---:|---:|---:|"
    )
    for events in (int(e) for e in args.events.split(",")):
        rows: dict[str, list[tuple[float, float, int]]] = {}
        for seed in range(args.seeds):
            for name, profile in profiles(modules, 1000 + seed).items():
                rows.setdefault(name, []).append(simulate(profile, events, seed))
        for name, results in rows.items():
            ours = statistics.fmean(r[0] for r in results if r[0] == r[0])
            theirs = statistics.fmean(r[1] for r in results if r[1] == r[1])
            violations = sum(r[2] for r in results)
            print(
                f"| {name} | {events} | {ours:.2f} | {theirs:.2f} | {violations} / {len(results) * len(GOALS)} |"
            )
    intervals = fsrs_intervals()
    shown = ", ".join(f"{d:.2f}" for d in intervals)
    print(f"\nFSRS intervals (days) for good ×5 then again: {shown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
