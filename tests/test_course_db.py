"""The course database: schema, idempotent builds, learner writes, and the read-only walls.

Real SQLite files in tmp dirs. Every escape attempt runs straight against the read-only
connection (bypassing the sqlglot guard) and through the guard, and the file must stay
byte-identical."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest

from llmtutor.errors import ConfigError
from llmtutor.knowledge.catalog import Catalog, course_db, load_catalog
from llmtutor.knowledge.catalog.course_db import (
    MIGRATIONS,
    QUERYABLE_TABLES,
    build_course_db,
    describe_schema,
)
from llmtutor.knowledge.catalog.learner import record_quiz_attempt, update_mastery
from llmtutor.knowledge.catalog.readonly import run_readonly, table_columns
from llmtutor.knowledge.catalog.sql_guard import (
    InvalidSQLError,
    QueryTimeoutError,
    UnsafeSQLError,
    validate_sql,
)

ESCAPES = [
    "DROP TABLE quiz_attempts",
    "DELETE FROM quiz_attempts",
    "UPDATE module_mastery SET mastery = 1",
    "INSERT INTO quiz_attempts (taken_at, question, answer, correct, score) VALUES ('x', 'q', 'a', 1, 1)",
    "SELECT 1; DROP TABLE modules",
    "SELECT COUNT(*) FROM modules; DELETE FROM quiz_attempts",
    "ATTACH DATABASE '{dir}/evil.db' AS evil",
    "PRAGMA writable_schema = ON",
    "PRAGMA query_only = OFF",
    "SELECT load_extension('{dir}/evil.so')",
    "VACUUM INTO '{dir}/evil.db'",
    "CREATE TABLE t (x)",
    "REPLACE INTO modules (id) VALUES ('x')",
    "SELECT * FROM sqlite_master",
]


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture()
def db(tmp_path: Path) -> Path:
    path = tmp_path / "course.sqlite"
    build_course_db(path)
    record_quiz_attempt(
        path,
        question="What is GGUF?",
        answer="a file format",
        correct=True,
        module_id="scientist.quantization",
        topic="GGUF",
    )
    return path


def test_build_loads_the_catalog(db: Path):
    catalog = load_catalog()
    counts = run_readonly(
        db,
        "SELECT (SELECT COUNT(*) FROM modules), (SELECT COUNT(*) FROM resources), "
        "(SELECT COUNT(*) FROM notebooks), (SELECT COUNT(*) FROM glossary), "
        "(SELECT COUNT(*) FROM tracks)",
    ).rows[0]
    assert counts == [
        len(catalog.modules()),
        len(list(catalog.resources())),
        len(catalog.notebooks),
        len(catalog.glossary),
        len(catalog.tracks),
    ]
    rag = run_readonly(db, "SELECT code, track_id, ordinal FROM modules WHERE id = 'engineer.rag'").rows[0]
    assert rag[0] == "3.3" and rag[1] == "engineer"
    versions = run_readonly(db, "SELECT title FROM course").rows
    assert versions == [[catalog.course.title]]


def test_build_is_idempotent_and_leaves_the_file_alone(db: Path):
    before = sha(db)
    report = build_course_db(db)
    assert not report.rebuilt and report.schema_version == MIGRATIONS[-1][0]
    assert sha(db) == before


def test_catalog_rebuild_keeps_learner_rows(db: Path):
    data = load_catalog().model_dump()
    data["tracks"][2]["modules"][2]["resources"].append(
        {
            "title": "A new RAG article",
            "author": "Someone",
            "url": "https://example.org/rag",
            "kind": "article",
        }
    )
    changed = Catalog.model_validate(data)
    report = build_course_db(db, changed)
    assert report.rebuilt
    assert run_readonly(db, "SELECT COUNT(*) FROM resources WHERE title = 'A new RAG article'").rows == [[1]]
    assert run_readonly(db, "SELECT COUNT(*) FROM quiz_attempts").rows == [[1]]
    assert run_readonly(
        db, "SELECT attempts FROM module_mastery WHERE module_id = 'scientist.quantization'"
    ).rows == [[1]]


def test_migrations_are_append_only_and_versions_recorded(db: Path):
    versions = [v for v, _, _ in MIGRATIONS]
    assert versions == list(range(1, len(versions) + 1))
    con = sqlite3.connect(db)
    assert [r[0] for r in con.execute("SELECT version FROM schema_version ORDER BY version")] == versions
    con.execute("INSERT INTO schema_version VALUES (999, 'from the future', 'now')")
    con.commit()
    con.close()
    with pytest.raises(ConfigError, match="newer than this llmtutor"):
        build_course_db(db)


def test_schema_description_names_every_table_and_column(db: Path):
    text = describe_schema()
    for table, columns in table_columns(db).items():
        assert f"``{table}(" in text, table
        for column in columns:
            assert column in text, f"{table}.{column}"
    assert "quiz_attempts" in course_db.__doc__ and "module_mastery" in course_db.__doc__


def test_record_attempt_updates_mastery_with_recency_weights(tmp_path: Path):
    db = tmp_path / "c.sqlite"
    for correct in (False, False, True):
        record_quiz_attempt(db, question="q", answer="a", correct=correct, module_id="engineer.rag")
    row = run_readonly(
        db, "SELECT attempts, correct, mastery FROM module_mastery WHERE module_id = 'engineer.rag'"
    ).rows[0]
    assert row[:2] == [3, 1]
    assert row[2] == pytest.approx(1 / (1 + 0.7 + 0.49), abs=1e-3)  # the newest (right) answer weighs most
    assert update_mastery(db, "engineer.rag", 0.9).mastery == 0.9
    assert update_mastery(db, "engineer.rag").mastery == pytest.approx(row[2], abs=1e-3)


def test_learner_writes_are_checked(tmp_path: Path):
    db = tmp_path / "c.sqlite"
    with pytest.raises(ConfigError, match="unknown course module"):
        record_quiz_attempt(db, question="q", answer="a", correct=True, module_id="nope.nope")
    with pytest.raises(ConfigError, match="between 0 and 1"):
        record_quiz_attempt(db, question="q", answer="a", correct=True, score=2.0)
    assert record_quiz_attempt(db, question="q", answer="a", correct=True) >= 1  # no module: fine


@pytest.mark.parametrize("sql", ESCAPES)
def test_readonly_connection_refuses_writes_and_escapes(db: Path, sql: str):
    sql = sql.replace("{dir}", str(db.parent))
    before = sha(db)
    with pytest.raises(UnsafeSQLError) as info:
        run_readonly(db, sql)  # no guard: the connection alone must hold
    assert "refused" in str(info.value)
    with pytest.raises((UnsafeSQLError, InvalidSQLError)):
        validate_sql(sql, table_columns(db))
    assert sha(db) == before
    assert not (db.parent / "evil.db").exists()


def test_readonly_queries_are_time_limited(db: Path):
    endless = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT MAX(x) FROM c"
    with pytest.raises(QueryTimeoutError, match="longer than"):
        run_readonly(db, endless, timeout_s=0.2)


def test_guard_caps_limit_and_checks_names(db: Path):
    schema = table_columns(db)
    assert validate_sql("SELECT title FROM modules", schema).sql.endswith("LIMIT 200")
    assert validate_sql("SELECT title FROM modules LIMIT 100000", schema).limit == 200
    assert validate_sql("SELECT title FROM modules LIMIT 5", schema).limit == 5
    ok = validate_sql(
        "WITH c AS (SELECT module_id, COUNT(*) AS n FROM resources GROUP BY module_id) "
        "SELECT m.title, c.n FROM c JOIN modules m ON m.id = c.module_id ORDER BY c.n DESC",
        schema,
    )
    assert ok.tables == ["modules", "resources"]
    with pytest.raises(InvalidSQLError, match="titel"):
        validate_sql("SELECT titel FROM modules", schema)
    with pytest.raises(InvalidSQLError, match="unknown table"):
        validate_sql("SELECT * FROM users", schema)
    with pytest.raises(UnsafeSQLError, match="outside"):
        validate_sql("SELECT * FROM other.modules", schema)


def test_queryable_tables_are_documented():
    assert set(QUERYABLE_TABLES) >= {
        "tracks",
        "modules",
        "resources",
        "notebooks",
        "glossary",
        "quiz_attempts",
        "module_mastery",
    }


def test_readme_documents_every_table_and_column(db: Path):
    import sqlite3

    readme = " ".join((Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8").split())
    with sqlite3.connect(db) as con:
        for table in QUERYABLE_TABLES:
            columns = [row[1] for row in con.execute(f"PRAGMA table_info({table})")]
            assert f"`{table}({', '.join(columns)})`" in readme, table
