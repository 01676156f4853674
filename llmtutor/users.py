"""Learners and their API keys, for a server many learners share (`users.sqlite` in the workspace,
or the `users` schema of the Postgres database of `LLMTUTOR_DATABASE_URL`: llmtutor/database.py).

A key is shown once, when it is made (`llmtutor users add NAME`), and stored only as its
SHA-256: keys are 256 random bits, so a fast hash is enough (no password stretching needed)
and a stolen database holds no usable key. With no users the workspace is single-learner
("local"), as before; the server then only listens on the loopback interface.

Threads belong to their learner: `owned_thread` turns a learner's thread id into the stored
one (in the learner's own space), so another learner's id never reaches their conversation.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from llmtutor.database import Connection, Database, connect, location_of
from llmtutor.errors import AuthenticationError, ConfigError

LOCAL = "local"  # the learner of a workspace without users
DB_FILE = "users.sqlite"
KEY_PREFIX = "llt_"
MIGRATIONS = (
    (
        1,
        "learners and API keys",
        """
CREATE TABLE users (id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, admin INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL, revoked_at TEXT);
CREATE TABLE api_keys (key_hash TEXT PRIMARY KEY, user_id TEXT NOT NULL REFERENCES users(id),
    created_at TEXT NOT NULL, revoked_at TEXT)
""",
    ),
)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class User(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    id: str
    name: str
    admin: bool = False
    created_at: str = ""
    revoked: bool = False


LOCAL_USER = User(id=LOCAL, name=LOCAL, admin=True)


def _now() -> str:
    return datetime.now(UTC).replace(tzinfo=None).isoformat(timespec="seconds")


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@contextmanager
def _open(db_path: Path | Database) -> Iterator[Connection]:
    """`db_path`: the SQLite file (as before), or the workspace's Database (SQLite or Postgres)."""
    with connect(location_of(db_path, DB_FILE), MIGRATIONS, schema="users", name="the users database") as con:
        yield con


def _exists(db_path: Path | Database) -> bool:
    """Whether there can be users at all (a missing SQLite file has none, and is not created)."""
    if isinstance(db_path, Database) and db_path.url is not None:
        return True
    return Path(location_of(db_path, DB_FILE)).exists()


def add_user(db_path: Path | Database, name: str, admin: bool = False) -> tuple[User, str]:
    """A new learner and their first API key (returned once, never stored in clear)."""
    if not _NAME.fullmatch(name) or name == LOCAL:
        raise ConfigError(
            f"invalid learner name {name!r}", "use 1-64 letters, digits, '.', '_' or '-' (not 'local')"
        )
    user = User(id=f"u_{secrets.token_hex(6)}", name=name, admin=admin, created_at=_now())
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    with _open(db_path) as con, con.transaction(lock=f"users:{name}"):
        if con.execute("SELECT 1 FROM users WHERE name = ?", (name,)).fetchone():
            raise ConfigError(f"a learner named {name!r} exists", "choose another name, or `users key NAME`")
        con.execute(
            "INSERT INTO users VALUES (?, ?, ?, ?, NULL)", (user.id, name, int(admin), user.created_at)
        )
        con.execute("INSERT INTO api_keys VALUES (?, ?, ?, NULL)", (_hash(key), user.id, user.created_at))
    return user, key


def new_key(db_path: Path | Database, name: str) -> str:
    """Another key for an existing learner (their old keys keep working until revoked)."""
    user = get_user(db_path, name)
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    with _open(db_path) as con:
        con.execute("INSERT INTO api_keys VALUES (?, ?, ?, NULL)", (_hash(key), user.id, _now()))
    return key


def get_user(db_path: Path | Database, name: str) -> User:
    with _open(db_path) as con:
        row = con.execute(
            "SELECT id, name, admin, created_at, revoked_at FROM users WHERE name = ?", (name,)
        ).fetchone()
    if row is None:
        raise ConfigError(f"no learner named {name!r}", "see `llmtutor users list`")
    return User(id=row[0], name=row[1], admin=bool(row[2]), created_at=row[3], revoked=row[4] is not None)


def list_users(db_path: Path | Database) -> list[User]:
    if not _exists(db_path):
        return []
    with _open(db_path) as con:
        rows = con.execute(
            "SELECT id, name, admin, created_at, revoked_at FROM users ORDER BY created_at, name"
        ).fetchall()
    return [
        User(id=r[0], name=r[1], admin=bool(r[2]), created_at=r[3], revoked=r[4] is not None) for r in rows
    ]


def revoke(db_path: Path | Database, name: str) -> User:
    """The learner can no longer sign in (all keys); their data stays."""
    user = get_user(db_path, name)
    now = _now()
    with _open(db_path) as con, con.transaction():
        con.execute("UPDATE users SET revoked_at = ? WHERE id = ?", (now, user.id))
        con.execute(
            "UPDATE api_keys SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL", (now, user.id)
        )
    return user.model_copy(update={"revoked": True})


def has_users(db_path: Path | Database) -> bool:
    return any(not u.revoked for u in list_users(db_path))


def authenticate(db_path: Path | Database, key: str | None) -> User:
    """The learner a key belongs to; AuthenticationError for a missing, unknown or revoked key."""
    if not key:
        raise AuthenticationError("this server needs an API key", "send `Authorization: Bearer YOUR_KEY`")
    with _open(db_path) as con:
        row = con.execute(
            "SELECT u.id, u.name, u.admin, u.created_at FROM api_keys k JOIN users u ON u.id = k.user_id "
            "WHERE k.key_hash = ? AND k.revoked_at IS NULL AND u.revoked_at IS NULL",
            (_hash(key),),
        ).fetchone()
    if row is None:
        raise AuthenticationError(
            "the API key is not valid", "ask the server's admin for a key (`users add`)"
        )
    return User(id=row[0], name=row[1], admin=bool(row[2]), created_at=row[3])


def owned_thread(user: User, thread_id: str) -> str:
    """The stored thread id for a learner's thread id: the local learner's ids are unchanged
    (the CLI and UI threads of a single-learner workspace); others live in their own space."""
    return thread_id if user.id == LOCAL else f"{user.id}:{thread_id}"
