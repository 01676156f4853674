"""A throwaway PostgreSQL server for the tests: `initdb` + `pg_ctl` in a temporary folder.

Real Postgres, not a mock: the binaries come from PATH or Debian's `postgresql` package
(`/usr/lib/postgresql/<version>/bin`, installed by `.ci/run`). initdb and postgres refuse to run
as root, so under root the cluster belongs to an unprivileged user (`postgres`, else `nobody`)
and its tools run as that user. The server listens on 127.0.0.1 on a free port with trust
authentication (nothing else can reach a test cluster), and is stopped at the end of the session.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

SUPERUSER = "llmtutor"


def find_bin_dir() -> Path | None:
    """The folder holding initdb and pg_ctl, or None when Postgres is not installed."""
    on_path = shutil.which("initdb")
    candidates = [Path(on_path).parent] if on_path else []
    # Debian keeps the server binaries off PATH, one folder per major version (newest first).
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name))
    candidates += [Path(p) for p in reversed(versions)]
    return next((c for c in candidates if (c / "initdb").is_file() and (c / "pg_ctl").is_file()), None)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class PostgresServer:
    port: int

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """A fresh, empty database on the server (tests never share tables); returns its URL."""
        import psycopg

        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url(), autocommit=True) as con:
            con.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


@contextmanager
def running_postgres(bin_dir: Path) -> Iterator[PostgresServer]:
    """Start a cluster in a temporary folder; stop it and delete the folder afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="llmtutor-pg-"))
    data, log = folder / "data", folder / "server.log"
    as_user: dict = {}
    if os.geteuid() == 0:  # initdb and postgres refuse to run as root
        owner = pwd.getpwnam(next(name for name in ("postgres", "nobody") if _user_exists(name)))
        os.chown(folder, owner.pw_uid, owner.pw_gid)
        as_user = {"user": owner.pw_uid, "group": owner.pw_gid, "extra_groups": []}
    port = _free_port()

    def run(*args: str, check: bool = True) -> None:
        subprocess.run(list(args), check=check, capture_output=True, timeout=120, cwd=folder, **as_user)

    initdb = [
        str(bin_dir / "initdb"),
        "-D",
        str(data),
        "-U",
        SUPERUSER,
        "--auth=trust",
        "-E",
        "UTF8",
        "--locale=C",  # whatever locales the machine has installed
        "--no-sync",
    ]
    # Unsafe for real data, fine for a cluster deleted after the tests: nothing is synced to disk.
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {folder} -c fsync=off -c full_page_writes=off"
    try:
        run(*initdb)
        run(
            str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options, "-w", "-t", "60", "start"
        )
    except (OSError, subprocess.SubprocessError) as exc:
        stderr = getattr(exc, "stderr", None) or b""
        shown = log.read_text(errors="replace")[-2000:] if log.is_file() else ""
        shutil.rmtree(folder, ignore_errors=True)
        raise RuntimeError(
            f"the test Postgres did not start: {exc} {stderr.decode(errors='replace')}{shown}"
        ) from exc
    try:
        yield PostgresServer(port=port)
    finally:
        run(str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop", check=False)
        shutil.rmtree(folder, ignore_errors=True)


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True
