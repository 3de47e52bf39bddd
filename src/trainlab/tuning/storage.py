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
URLS_THAT_WORK = "sqlite:///PATH, postgresql://USER@HOST/DB or mysql+pymysql://USER@HOST/DB (any SQLAlchemy URL)"
# what to install for each SQLAlchemy driver name (the ones Optuna's synchronous storage can use)
DRIVER_PACKAGES = {
    "psycopg": "'psycopg[binary]'",
    "psycopg2": "psycopg2-binary",
    "psycopg2cffi": "psycopg2cffi",
    "pg8000": "pg8000",
    "pymysql": "pymysql",
    "mysqldb": "mysqlclient",
    "mysqlconnector": "mysql-connector-python",
    "mariadbconnector": "mariadb",
    "oracledb": "oracledb",
    "cx_oracle": "cx_Oracle",
    "pyodbc": "pyodbc",
    "pymssql": "pymssql",
}


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


def check_url(url: str) -> None:
    """A URL of a database SQLAlchemy knows, else one line naming what the URL names and the URLs that work."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        parsed = make_url(url)
        parsed.get_dialect()  # the dialect's module only: its driver is imported when the storage opens
    except NoSuchModuleError:  # a kind of ArgumentError: first
        raise TrainlabError(
            f"--storage {shown(url)}: SQLAlchemy has no database dialect '{parsed.drivername}'; give {URLS_THAT_WORK}"
        ) from None
    except ArgumentError:
        raise TrainlabError(f"--storage {url}: not a database URL; give {URLS_THAT_WORK}") from None


def missing_driver(url: str, error: ImportError) -> TrainlabError:
    """The one line for a URL whose driver cannot be imported: the driver, why, and the package to install."""
    from sqlalchemy.engine import make_url

    driver = make_url(url).get_driver_name()
    why = f" ({error.__cause__})" if error.__cause__ is not None else ""
    package = DRIVER_PACKAGES.get(driver, driver)
    return TrainlabError(f"--storage {shown(url)}: its driver {driver} cannot be imported{why}; pip install {package}")


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
    check_url(url)
    engine = {"connect_args": connect_args_for(url)}  # bounded: a server that never answers is one line
    attempts = 0
    while True:
        try:
            return open_bounded(lambda: optuna.storages.RDBStorage(url, engine_kwargs=engine))
        except ImportError as exc:  # Optuna's own words name no package
            raise missing_driver(url, exc) from None
        except Exception as exc:  # SQLAlchemy raises many kinds for an unusable URL
            first_line, attempts = str(exc).splitlines()[0], attempts + 1
            if attempts == STORAGE_ATTEMPTS or not creating_elsewhere(first_line):
                raise TrainlabError(f"--storage {shown(url)}: cannot open the study database ({first_line})") from None
            time.sleep(0.5)  # seconds


def creating_elsewhere(error: str) -> bool:
    """An error of two processes creating one study database's tables at once (the later one then finds them)."""
    return any(part in error for part in ("UNIQUE constraint failed", "already exists", "database is locked"))
