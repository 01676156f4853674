"""Study plans: the concepts a goal needs, in prerequisite order, laid out over the days given.

A plan is built from the concept graph and the learner model, never written by a model:

- the goal's concepts and all their prerequisites the learner has not mastered, in the graph's
  order (no goal: the next unmastered concepts of the course);
- per concept a reading session (the course notes on it), and when a module's last planned
  concept is done, a quiz on the module and, where the module has one, its lab (labs.yaml);
- sessions packed into days of `minutes_per_day`; what does not fit is reported with the days
  it would need at that pace.

Plans are stored per learner (`study_plans`); showing one marks the sessions whose concepts
are mastered since as done and lays the rest out again from today, so the plan follows the
learner's progress.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from llmtutor.database import Database
from llmtutor.knowledge.catalog.learner import LOCAL_LEARNER
from llmtutor.knowledge.catalog.learner_db import open_learner_tables
from llmtutor.knowledge.learner import store
from llmtutor.knowledge.learner.graph import ConceptGraph, load_concept_graph
from llmtutor.knowledge.learner.labs import labs
from llmtutor.knowledge.learner.progress import MASTERED, goal_concepts, p_known_all

MINUTES = {"read": 20, "quiz": 10, "lab": 20}  # a session's planned length
NO_GOAL_CONCEPTS = 12  # without a goal, plan the next this many concepts of the course


class Session(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["read", "quiz", "lab"]
    concept_id: str | None = None  # read: the concept; quiz/lab: None (the module)
    module_id: str
    minutes: int
    done: bool = False


class Day(BaseModel):
    model_config = ConfigDict(extra="forbid")
    day: date
    sessions: list[Session]


class StudyPlan(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: int | None = None
    learner_id: str = LOCAL_LEARNER
    goal: str
    goal_concepts: list[str]
    created: date
    days: int = Field(ge=1, le=366)
    minutes_per_day: int = Field(ge=10, le=600)
    sessions: list[Session]  # everything the goal needs, in order (done ones included)
    schedule: list[Day] = Field(default_factory=list)  # the open sessions laid out from `start`
    unscheduled: int = 0  # open sessions that do not fit in the days left
    extra_days: int = 0  # days they would need at this pace


def build_sessions(graph: ConceptGraph, needed: list[str]) -> list[Session]:
    """Reading sessions in order; a module's quiz (and lab) right after its last planned concept."""
    sessions: list[Session] = []
    last_of_module = {graph.concept(c).module: c for c in needed}
    for cid in needed:
        module = graph.concept(cid).module
        sessions.append(Session(kind="read", concept_id=cid, module_id=module, minutes=MINUTES["read"]))
        if last_of_module[module] == cid:
            sessions.append(Session(kind="quiz", module_id=module, minutes=MINUTES["quiz"]))
            if module in labs():
                sessions.append(Session(kind="lab", module_id=module, minutes=MINUTES["lab"]))
    return sessions


def lay_out(plan: StudyPlan, start: date) -> StudyPlan:
    """The open sessions packed into the days left (from `start` to the plan's end)."""
    end = plan.created + timedelta(days=plan.days)
    days_left = max(0, (end - start).days)
    schedule: list[Day] = []
    open_sessions = [s for s in plan.sessions if not s.done]
    day, used = 0, 0
    placed = 0
    for session in open_sessions:
        if used and used + session.minutes > plan.minutes_per_day:
            day, used = day + 1, 0
        if day >= days_left:
            break
        if not schedule or schedule[-1].day != start + timedelta(days=day):
            schedule.append(Day(day=start + timedelta(days=day), sessions=[]))
        schedule[-1].sessions.append(session)
        used += session.minutes
        placed += 1
    rest = open_sessions[placed:]
    extra = math.ceil(sum(s.minutes for s in rest) / plan.minutes_per_day) if rest else 0
    return plan.model_copy(update={"schedule": schedule, "unscheduled": len(rest), "extra_days": extra})


def make_plan(
    db_path: Path | Database,
    goal: str,
    days: int,
    minutes_per_day: int = 45,
    *,
    learner_id: str = LOCAL_LEARNER,
    today: date | None = None,
    graph: ConceptGraph | None = None,
) -> StudyPlan:
    graph = graph or load_concept_graph()
    today = today or datetime.now(UTC).date()
    known = p_known_all(graph, store.concept_states(db_path, learner_id))
    targets = goal_concepts(graph, goal)
    if targets:
        wanted = set(targets).union(*(graph.prerequisites(c) for c in targets))
        needed = [c for c in graph.order() if c in wanted and known[c] < MASTERED]
    else:
        needed = [c for c in graph.order() if known[c] < MASTERED][:NO_GOAL_CONCEPTS]
    plan = StudyPlan(
        learner_id=learner_id,
        goal=goal,
        goal_concepts=targets,
        created=today,
        days=days,
        minutes_per_day=minutes_per_day,
        sessions=build_sessions(graph, needed),
    )
    return lay_out(plan, today)


def refresh(db_path: Path | Database, plan: StudyPlan, today: date | None = None) -> StudyPlan:
    """Sessions whose concept (read) or module (quiz, lab: all its planned concepts) is mastered
    now are done; the rest is laid out again from today."""
    graph = load_concept_graph()
    known = p_known_all(graph, store.concept_states(db_path, plan.learner_id))
    planned: dict[str, list[str]] = {}
    for s in plan.sessions:
        if s.kind == "read" and s.concept_id:
            planned.setdefault(s.module_id, []).append(s.concept_id)
    sessions = []
    for s in plan.sessions:
        ids = [s.concept_id] if s.kind == "read" and s.concept_id else planned.get(s.module_id, [])
        sessions.append(s.model_copy(update={"done": s.done or all(known[c] >= MASTERED for c in ids)}))
    today = today or datetime.now(UTC).date()
    return lay_out(plan.model_copy(update={"sessions": sessions}), max(today, plan.created))


def save_plan(db_path: Path | Database, plan: StudyPlan) -> StudyPlan:
    body = plan.model_dump_json(exclude={"id", "schedule", "unscheduled", "extra_days"})
    with open_learner_tables(db_path) as con:
        (plan_id,) = con.execute(
            "INSERT INTO study_plans (learner_id, created_at, goal, plan) VALUES (?, ?, ?, ?) RETURNING id",
            (plan.learner_id, plan.created.isoformat(), plan.goal, body),
        ).fetchone()
    return plan.model_copy(update={"id": int(plan_id)})


def latest_plan(db_path: Path | Database, learner_id: str = LOCAL_LEARNER) -> StudyPlan | None:
    with open_learner_tables(db_path) as con:
        row = con.execute(
            "SELECT id, plan FROM study_plans WHERE learner_id = ? ORDER BY id DESC LIMIT 1", (learner_id,)
        ).fetchone()
    if row is None:
        return None
    return StudyPlan.model_validate({**json.loads(row[1]), "id": row[0]})
