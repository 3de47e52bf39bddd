"""The study's database: every connection and statement bounded, so a server that never answers is one line.

Optuna's RDBStorage connects through SQLAlchemy; each driver names its own timeouts, so the connect arguments
are chosen by the URL's driver (a value the URL's query already gives wins). Opening the storage (connecting,
creating the tables) also runs under a deadline of its own, which bounds drivers that have no timeout, and is
tried again while another process is creating the same study's tables.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from trainlab.errors import TrainlabError

CONNECT_SECONDS = 10  # one connection to the study's database server
STATEMENT_SECONDS = 60  # one statement (Optuna's are small; a lock held elsewhere may make one wait)
OPEN_SECONDS = 60.0  # connecting and creating the study's tables, whatever the driver
SQLITE_TIMEOUT_SECONDS = 60  # several processes on one SQLite study wait for each other's writes
STORAGE_ATTEMPTS = 10  # opening a new study database while another process creates its tables
DATABASE_FILE = "study.db"


def connect_args_for(url: str) -> dict[str, Any]:
    """The driver's connect arguments that bound its connections and statements (empty for a driver not known)."""
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except Exception:  # not a URL: RDBStorage says so, in the caller's one line
        return {}
    backend, driver = parsed.get_backend_name(), parsed.get_driver_name()
    if backend == "sqlite":
        bounds: dict[str, Any] = {"timeout": SQLITE_TIMEOUT_SECONDS}
    elif backend == "postgresql" and driver in ("psycopg2", "psycopg", "psycopg2cffi"):  # libpq's own words
        bounds = {"connect_timeout": CONNECT_SECONDS, "options": f"-c statement_timeout={STATEMENT_SECONDS * 1000}"}
    elif backend == "postgresql" and driver == "pg8000":
        bounds = {"timeout": STATEMENT_SECONDS}  # its socket timeout, connecting included
    elif backend in ("mysql", "mariadb") and driver in ("pymysql", "mysqldb"):
        bounds = {"connect_timeout": CONNECT_SECONDS, "read_timeout": STATEMENT_SECONDS}
        bounds["write_timeout"] = STATEMENT_SECONDS
    elif backend in ("mysql", "mariadb") and driver == "mysqlconnector":
        bounds = {"connection_timeout": CONNECT_SECONDS}
    else:
        bounds = {}
    return {key: value for key, value in bounds.items() if key not in parsed.query}


def shown(url: str) -> str:
    """The URL as a message may show it: its password hidden."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL SQLAlchemy reads: shown as given, it holds no parsed password
        return url


def open_bounded(open_storage: Callable[[], Any]) -> Any:
    """open_storage() within OPEN_SECONDS, else TimeoutError (the stuck connection is left to a daemon thread,
    which ends with the process)."""
    box: dict[str, Any] = {}

    def work() -> None:
        try:
            box["value"] = open_storage()
        except BaseException as exc:  # handed to the caller
            box["error"] = exc

    thread = threading.Thread(target=work, name="trainlab-study-db", daemon=True)
    thread.start()
    thread.join(OPEN_SECONDS)
    if thread.is_alive():
        raise TimeoutError(
            f"no answer within {OPEN_SECONDS:g} s; check that its server runs, and the URL's host and port"
        )
    if "error" in box:
        raise box["error"]
    return box["value"]


def check_study_folder(study_dir: str | os.PathLike) -> None:
    """The study's folder can be made and written (a read-only disk is one line, before anything starts)."""
    study_dir = Path(study_dir)
    folder = next((parent for parent in (study_dir, *study_dir.parents) if parent.exists()), Path("."))
    if not folder.is_dir():
        raise TrainlabError(f"--run-dir {study_dir}: {folder} is a file, not a folder; give another --run-dir")
    if not os.access(folder, os.W_OK | os.X_OK):  # a read-only file system too, even for root
        raise TrainlabError(
            f"--run-dir {study_dir}: {folder} cannot be written (read-only); give a --run-dir on a disk you can write"
        )


def storage_for(url: str | None, study_dir: Path) -> Any:
    """Optuna's RDBStorage for `url` (default: SQLite in the study folder), waiting for other writers."""
    import optuna

    url = url or f"sqlite:///{(study_dir / DATABASE_FILE).resolve()}"
    engine = {"connect_args": connect_args_for(url)}  # bounded: a server that never answers is one line
    attempts = 0
    while True:
        try:
            return open_bounded(lambda: optuna.storages.RDBStorage(url, engine_kwargs=engine))
        except Exception as exc:  # SQLAlchemy raises many kinds for an unusable URL
            first_line, attempts = str(exc).splitlines()[0], attempts + 1
            if attempts == STORAGE_ATTEMPTS or not creating_elsewhere(first_line):
                raise TrainlabError(f"--storage {shown(url)}: cannot open the study database ({first_line})") from None
            time.sleep(0.5)  # seconds


def creating_elsewhere(error: str) -> bool:
    """An error of two processes creating one study database's tables at once (the later one then finds them)."""
    return any(part in error for part in ("UNIQUE constraint failed", "already exists", "database is locked"))
