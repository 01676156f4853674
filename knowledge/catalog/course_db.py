"""The course database: the catalog as SQLite tables, plus the learner's quiz history.

One SQLite file (`Settings.catalog_db`, i.e. `<workspace>/course.sqlite`) holds two kinds of
tables. Catalog tables are a copy of `knowledge/course/catalog.yaml` and are rebuilt whenever
the catalog changes; learner tables are only ever written through `record_quiz_attempt` and
`update_mastery` (`knowledge.catalog.learner`, called by the quiz tool) and survive every rebuild. Questions are answered on a
separate read-only connection (`run_readonly`); text-to-SQL can never write.

Schema (the current edition of the course; `legacy_*` items stay in the YAML only):

- ``course(title, title_zh, author, url, edition)`` - one row about the course itself.
- ``tracks(id, position, title, title_zh, aliases, summary, summary_zh)`` - the three parts
  of the course: ``fundamentals`` (LLM Fundamentals), ``scientist`` (The LLM Scientist),
  ``engineer`` (The LLM Engineer); ``position`` is the course order (1-3).
- ``modules(id, track_id, position, ordinal, code, title, title_zh, aliases, summary, summary_zh)``
  - one row per module, e.g. id ``engineer.rag``; ``position`` is the order inside its track,
  ``ordinal`` the order in the whole course (1-19) and ``code`` the "track.module" number
  (``3.3``). ``aliases`` are other names, ``; ``-separated.
- ``module_topics(module_id, position, topic, topic_zh)`` - the key topics of each module.
- ``resources(id, module_id, position, title, author, url, kind)`` - the resources each
  module lists; ``id`` follows course order, ``position`` is the order inside the module. ``kind`` is one of article, book, course, dataset,
  documentation, leaderboard, model, notebook, paper, repo, tool, video, website;
  ``author`` may be NULL.
- ``module_references(id, module_id, position, title, author, url, kind)`` - papers and tools
  linked from a module's key ideas (not part of its resource list).
- ``notebooks(id, position, name, category, aliases, description, description_zh,
  article_url, colab_url, repo_url)`` - the course's Colab notebooks in README order;
  ``category`` is one of tools, fine-tuning, quantization, other; ``aliases`` other names.
- ``notebook_modules(notebook_id, module_id)`` - which modules each notebook belongs to.
- ``glossary(id, en, zh, en_alt, zh_alt, definition)`` - bilingual terms; ``en_alt`` /
  ``zh_alt`` hold abbreviations and other spellings, ``; ``-separated.
- ``glossary_modules(term_id, module_id)`` - which modules use each term.
- ``quiz_attempts(id, taken_at, module_id, topic, question, answer, expected, correct, score,
  learner_id)`` - one row per answered quiz question; ``taken_at`` is UTC ISO-8601 text
  (``2025-01-31T14:05:00``), ``correct`` is 0/1, ``score`` is 0.0-1.0, ``module_id`` may be NULL;
  ``learner_id`` is ``'local'`` for the single local learner.
- ``module_mastery(learner_id, module_id, attempts, correct, mastery, last_attempt_at,
  updated_at)`` - one row per learner and module quizzed on; ``mastery`` is 0.0-1.0.
- ``schema_version(version, description, applied_at)`` and ``catalog_build(key, value)`` -
  bookkeeping: applied migrations and the hash of the catalog the tables were built from.

Migrations are append-only: a new schema version is a new entry at the end of `MIGRATIONS`;
an applied one is never edited, so an old workspace upgrades in place without losing rows.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from llmtutor.knowledge.catalog import Catalog, Resource, load_catalog
from llmtutor.sqlite import migrate

CATALOG_TABLES = (
    "course",
    "tracks",
    "modules",
    "module_topics",
    "resources",
    "module_references",
    "notebooks",
    "notebook_modules",
    "glossary",
    "glossary_modules",
)
LEARNER_TABLES = ("quiz_attempts", "module_mastery")
QUERYABLE_TABLES = CATALOG_TABLES + LEARNER_TABLES

# (version, description, SQL). Append only; never edit an entry once released.
MIGRATIONS: tuple[tuple[int, str, str], ...] = (
    (
        1,
        "catalog and learner tables",
        """
CREATE TABLE course (title TEXT NOT NULL, title_zh TEXT NOT NULL, author TEXT NOT NULL,
    url TEXT, edition TEXT NOT NULL);
CREATE TABLE tracks (id TEXT PRIMARY KEY, position INTEGER NOT NULL, title TEXT NOT NULL,
    title_zh TEXT NOT NULL, aliases TEXT NOT NULL, summary TEXT NOT NULL, summary_zh TEXT NOT NULL);
CREATE TABLE modules (id TEXT PRIMARY KEY, track_id TEXT NOT NULL REFERENCES tracks(id),
    position INTEGER NOT NULL, ordinal INTEGER NOT NULL UNIQUE, code TEXT NOT NULL, title TEXT NOT NULL, title_zh TEXT NOT NULL,
    aliases TEXT NOT NULL, summary TEXT NOT NULL, summary_zh TEXT NOT NULL);
CREATE TABLE module_topics (module_id TEXT NOT NULL REFERENCES modules(id), position INTEGER NOT NULL,
    topic TEXT NOT NULL, topic_zh TEXT NOT NULL, PRIMARY KEY (module_id, position));
CREATE TABLE resources (id INTEGER PRIMARY KEY, module_id TEXT NOT NULL REFERENCES modules(id),
    position INTEGER NOT NULL, title TEXT NOT NULL, author TEXT, url TEXT, kind TEXT NOT NULL);
CREATE TABLE module_references (id INTEGER PRIMARY KEY, module_id TEXT NOT NULL REFERENCES modules(id),
    position INTEGER NOT NULL, title TEXT NOT NULL, author TEXT, url TEXT, kind TEXT NOT NULL);
CREATE TABLE notebooks (id INTEGER PRIMARY KEY, position INTEGER NOT NULL, name TEXT NOT NULL,
    category TEXT NOT NULL, aliases TEXT NOT NULL, description TEXT NOT NULL,
    description_zh TEXT NOT NULL, article_url TEXT, colab_url TEXT, repo_url TEXT);
CREATE TABLE notebook_modules (notebook_id INTEGER NOT NULL REFERENCES notebooks(id),
    module_id TEXT NOT NULL REFERENCES modules(id), PRIMARY KEY (notebook_id, module_id));
CREATE TABLE glossary (id INTEGER PRIMARY KEY, en TEXT NOT NULL, zh TEXT NOT NULL,
    en_alt TEXT NOT NULL, zh_alt TEXT NOT NULL, definition TEXT NOT NULL);
CREATE TABLE glossary_modules (term_id INTEGER NOT NULL REFERENCES glossary(id),
    module_id TEXT NOT NULL REFERENCES modules(id), PRIMARY KEY (term_id, module_id));
CREATE TABLE quiz_attempts (id INTEGER PRIMARY KEY AUTOINCREMENT, taken_at TEXT NOT NULL,
    module_id TEXT, topic TEXT, question TEXT NOT NULL, answer TEXT NOT NULL, expected TEXT,
    correct INTEGER NOT NULL CHECK (correct IN (0, 1)),
    score REAL NOT NULL CHECK (score >= 0 AND score <= 1));
CREATE INDEX quiz_attempts_by_module ON quiz_attempts (module_id, taken_at);
CREATE TABLE module_mastery (module_id TEXT PRIMARY KEY, attempts INTEGER NOT NULL,
    correct INTEGER NOT NULL, mastery REAL NOT NULL CHECK (mastery >= 0 AND mastery <= 1),
    last_attempt_at TEXT, updated_at TEXT NOT NULL);
CREATE TABLE catalog_build (key TEXT PRIMARY KEY, value TEXT NOT NULL);
""",
    ),
    (
        2,
        "learner identity; concept mastery, learner events and review cards",
        """
ALTER TABLE quiz_attempts ADD COLUMN learner_id TEXT NOT NULL DEFAULT 'local';
CREATE INDEX quiz_attempts_by_learner ON quiz_attempts (learner_id, module_id, taken_at);
CREATE TABLE module_mastery_v2 (learner_id TEXT NOT NULL DEFAULT 'local', module_id TEXT NOT NULL,
    attempts INTEGER NOT NULL, correct INTEGER NOT NULL,
    mastery REAL NOT NULL CHECK (mastery >= 0 AND mastery <= 1),
    last_attempt_at TEXT, updated_at TEXT NOT NULL, PRIMARY KEY (learner_id, module_id));
INSERT INTO module_mastery_v2 (learner_id, module_id, attempts, correct, mastery, last_attempt_at, updated_at)
    SELECT 'local', module_id, attempts, correct, mastery, last_attempt_at, updated_at FROM module_mastery;
DROP TABLE module_mastery;
ALTER TABLE module_mastery_v2 RENAME TO module_mastery;
CREATE TABLE learner_events (id INTEGER PRIMARY KEY AUTOINCREMENT, learner_id TEXT NOT NULL,
    at TEXT NOT NULL, kind TEXT NOT NULL, concept_id TEXT NOT NULL, module_id TEXT,
    score REAL CHECK (score IS NULL OR (score >= 0 AND score <= 1)),
    p_before REAL, p_after REAL, detail TEXT NOT NULL DEFAULT '');
CREATE INDEX learner_events_by_concept ON learner_events (learner_id, concept_id, at);
CREATE TABLE concept_mastery (learner_id TEXT NOT NULL, concept_id TEXT NOT NULL,
    p_known REAL NOT NULL CHECK (p_known >= 0 AND p_known <= 1), events INTEGER NOT NULL,
    correct INTEGER NOT NULL, source TEXT NOT NULL, updated_at TEXT NOT NULL,
    PRIMARY KEY (learner_id, concept_id));
CREATE TABLE review_cards (learner_id TEXT NOT NULL, card_key TEXT NOT NULL,
    concept_id TEXT, question_id TEXT, due TEXT NOT NULL, card TEXT NOT NULL,
    reviews INTEGER NOT NULL DEFAULT 0, lapses INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (learner_id, card_key));
CREATE INDEX review_cards_due ON review_cards (learner_id, due);
CREATE TABLE review_log (id INTEGER PRIMARY KEY AUTOINCREMENT, learner_id TEXT NOT NULL,
    card_key TEXT NOT NULL, at TEXT NOT NULL, rating INTEGER NOT NULL CHECK (rating BETWEEN 1 AND 4),
    interval_days REAL NOT NULL)
""",
    ),
    (
        3,
        "study plans",
        """
CREATE TABLE study_plans (id INTEGER PRIMARY KEY AUTOINCREMENT, learner_id TEXT NOT NULL,
    created_at TEXT NOT NULL, goal TEXT NOT NULL, plan TEXT NOT NULL);
CREATE INDEX study_plans_by_learner ON study_plans (learner_id, id)
""",
    ),
)
SCHEMA_VERSION = MIGRATIONS[-1][0]


def describe_schema() -> str:
    """The schema description (this module's docstring section), for the README and prompts."""
    doc = __doc__ or ""
    start, end = doc.index("Schema ("), doc.index("Migrations are")
    return doc[start:end].strip()


# ----- building -------------------------------------------------------------------
class BuildReport(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: Path
    schema_version: int
    rebuilt: bool  # False: the catalog tables were already up to date (nothing was written)
    catalog_sha256: str


def catalog_fingerprint(catalog: Catalog) -> str:
    return hashlib.sha256(catalog.model_dump_json().encode()).hexdigest()


def ensure_course_db(db_path: Path, catalog: Catalog | None = None) -> Path:
    """The database at `db_path`, created or refreshed from the catalog first if needed."""
    build_course_db(db_path, catalog)
    return Path(db_path)


def build_course_db(db_path: Path, catalog: Catalog | None = None) -> BuildReport:
    """Create/migrate the database and (re)load the catalog tables. Idempotent.

    The catalog tables are replaced only when the catalog's fingerprint changed, inside one
    transaction, so readers never see a half-built catalog; learner tables are never touched.
    """
    catalog = catalog or load_catalog()
    fingerprint = catalog_fingerprint(catalog)
    db_path = Path(db_path)
    db_path.parent.mkdir(parents=True, exist_ok=True)
    with open_writer(db_path) as con:
        version = migrate(con, MIGRATIONS, name=_db_name(con))
        if _stored_fingerprint(con) == fingerprint:  # checked before taking the write lock
            return BuildReport(
                path=db_path, schema_version=version, rebuilt=False, catalog_sha256=fingerprint
            )
        con.execute("BEGIN IMMEDIATE")
        try:
            if _stored_fingerprint(con) != fingerprint:  # another process may have just built it
                _load_catalog_tables(con, catalog)
                built_at = utc_now_text()
                con.executemany(
                    "INSERT OR REPLACE INTO catalog_build (key, value) VALUES (?, ?)",
                    [
                        ("catalog_sha256", fingerprint),
                        ("built_at", built_at),
                        ("edition", catalog.course.edition),
                    ],
                )
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
    return BuildReport(path=db_path, schema_version=version, rebuilt=True, catalog_sha256=fingerprint)


@contextmanager
def open_writer(db_path: Path) -> Iterator[sqlite3.Connection]:
    """A connection for writes (catalog builds here, learner rows in `learner`); foreign keys on."""
    # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE), never implicit.
    con = sqlite3.connect(db_path, timeout=10.0, isolation_level=None)
    try:
        con.execute("PRAGMA foreign_keys = ON")
        yield con
    finally:
        con.close()


def _db_name(con: sqlite3.Connection) -> str:
    return con.execute("PRAGMA database_list").fetchone()[2] or "the course database"


def _stored_fingerprint(con: sqlite3.Connection) -> str | None:
    row = con.execute("SELECT value FROM catalog_build WHERE key = 'catalog_sha256'").fetchone()
    return row[0] if row else None


def _load_catalog_tables(con: sqlite3.Connection, catalog: Catalog) -> None:
    for table in reversed(CATALOG_TABLES):  # children before parents
        con.execute(f"DELETE FROM {table}")  # noqa: S608 - fixed table names
    c = catalog.course
    con.execute(
        "INSERT INTO course VALUES (?, ?, ?, ?, ?)", (c.title, c.title_zh, c.author, c.url, c.edition)
    )
    ordinal = 0
    for track in sorted(catalog.tracks, key=lambda t: t.order):
        con.execute(
            "INSERT INTO tracks VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                track.id,
                track.order,
                track.title,
                track.title_zh,
                _join(track.aliases),
                track.summary,
                track.summary_zh,
            ),
        )
        for mod in sorted(track.modules, key=lambda m: m.order):
            ordinal += 1
            con.execute(
                "INSERT INTO modules VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    mod.id,
                    track.id,
                    mod.order,
                    ordinal,
                    f"{track.order}.{mod.order}",
                    mod.title,
                    mod.title_zh,
                    _join(mod.aliases),
                    mod.summary,
                    mod.summary_zh,
                ),
            )
            con.executemany(
                "INSERT INTO module_topics VALUES (?, ?, ?, ?)",
                [
                    (mod.id, i, en, zh)
                    for i, (en, zh) in enumerate(zip(mod.topics, mod.topics_zh, strict=True), 1)
                ],
            )
            _insert_resources(con, "resources", mod.id, mod.resources)
            _insert_resources(con, "module_references", mod.id, mod.references)
    for position, nb in enumerate(catalog.notebooks, 1):
        cur = con.execute(
            "INSERT INTO notebooks (position, name, category, aliases, description, description_zh, "
            "article_url, colab_url, repo_url) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                position,
                nb.name,
                nb.category,
                _join(nb.aliases),
                nb.description,
                nb.description_zh,
                nb.article_url,
                nb.colab_url,
                nb.repo_url,
            ),
        )
        con.executemany(
            "INSERT INTO notebook_modules VALUES (?, ?)", [(cur.lastrowid, m) for m in nb.modules]
        )
    for term in catalog.glossary:
        cur = con.execute(
            "INSERT INTO glossary (en, zh, en_alt, zh_alt, definition) VALUES (?, ?, ?, ?, ?)",
            (term.en, term.zh, _join(term.en_alt), _join(term.zh_alt), term.definition),
        )
        con.executemany(
            "INSERT INTO glossary_modules VALUES (?, ?)", [(cur.lastrowid, m) for m in term.modules]
        )


def _insert_resources(con: sqlite3.Connection, table: str, module_id: str, items: Sequence[Resource]) -> None:
    con.executemany(
        f"INSERT INTO {table} (module_id, position, title, author, url, kind) VALUES (?, ?, ?, ?, ?, ?)",  # noqa: S608
        [(module_id, i, r.title, r.author, r.url, r.kind) for i, r in enumerate(items, 1)],
    )


def _join(values: Sequence[str]) -> str:
    return "; ".join(values)


def utc_now_text() -> str:
    """Now in UTC, as the database stores times: ISO-8601 text without offset."""
    return datetime.now(UTC).replace(tzinfo=None).isoformat(timespec="seconds")
