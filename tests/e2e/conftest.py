"""A whole PACS in real processes, in its own data folder and database, for end-to-end tests.

On PostgreSQL (``DATABASE_URL=postgres://...``) each instance gets a fresh database next to
the test database; on SQLite it uses the default file in its data folder."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests

from tests.conftest import REPO_DIR
from tests.dicom_helpers import free_port

ADMIN_PASSWORD = "e2e-admin-password"


def wait_for_port(port: int, timeout: float = 60.0, process: subprocess.Popen | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before listening")
        with socket.socket() as sock:
            sock.settimeout(0.5)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise TimeoutError(f"nothing listens on port {port} after {timeout}s")


class PacsInstance:
    """Environment, data folder and database of one PACS; starts its processes."""

    def __init__(self, root: Path, database_url: str | None, **env: str) -> None:
        self.data_dir = root / "data"
        self.dicom_port = free_port()
        self.http_port = free_port()
        self.env = {
            **os.environ,
            "PACS_DATA_DIR": str(self.data_dir),
            "PACS_DICOM_PORT": str(self.dicom_port),
            "PACS_HTTP_PORT": str(self.http_port),
            "PACS_MWL_PORT": str(free_port()),
            "PACS_DICOMWEB_PORT": "0",
            "PACS_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "PACS_FREE_SPACE_LIMIT_MB": "1",
            "PACS_CRITICAL_FREE_SPACE_MB": "0",
            "PACS_DRAIN_SECONDS": "10",
            "PACS_SKIP_INSTALL": "1",
            "PYTHONUNBUFFERED": "1",
            **env,
        }
        self.env.pop("DJANGO_SETTINGS_MODULE", None)
        if database_url:
            self.env["DATABASE_URL"] = database_url
        else:
            self.env.pop("DATABASE_URL", None)
        self.processes: list[subprocess.Popen] = []

    @property
    def storage_dir(self) -> Path:
        return self.data_dir / "storage"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "logs" / "pacs.log"

    def manage(self, *args: str) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=REPO_DIR,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        return result

    def prepare(self) -> None:
        self.manage("migrate", "--noinput", "-v0")
        self.manage("bootstrap")

    def start(self, command: list[str], port: int, **extra_env: str) -> subprocess.Popen:
        log = (self.data_dir / f"{Path(command[-1]).name}-{len(self.processes)}.out").open("ab")
        process = subprocess.Popen(
            command,
            cwd=REPO_DIR,
            env={**self.env, **extra_env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: signals reach its children
        )
        self.processes.append(process)
        wait_for_port(port, process=process)
        return process

    def start_scp(self, processes: int = 2) -> subprocess.Popen:
        return self.start(
            [sys.executable, "manage.py", "runscp"],
            self.dicom_port,
            PACS_SCP_PROCESSES=str(processes),
        )

    def stop_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=30)

    def api(self) -> requests.Session:
        """A console session logged in as admin, with the CSRF header set."""
        session = requests.Session()
        base = f"http://127.0.0.1:{self.http_port}"
        response = session.post(
            f"{base}/api/auth/login/",
            json={"username": "admin", "password": ADMIN_PASSWORD},
            timeout=30,
        )
        assert response.status_code == 200, response.text
        session.headers["X-CSRFToken"] = session.cookies.get("csrftoken", "")
        session.headers["Referer"] = base
        session.base_url = base  # type: ignore[attr-defined]
        return session


def _postgres_database(base_url: str) -> tuple[str, str]:
    """A new empty database beside the one of ``base_url``: (url, name)."""
    import psycopg

    name = f"pacs_e2e_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(base_url.replace("postgres://", "postgresql://"), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    prefix = base_url.rsplit("/", 1)[0]
    return f"{prefix}/{name}", name


def _drop_postgres_database(base_url: str, name: str) -> None:
    import psycopg

    with psycopg.connect(base_url.replace("postgres://", "postgresql://"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pacs_factory(tmp_path):
    """Make PacsInstance objects on the database of this test run (SQLite or PostgreSQL)."""
    base_url = os.environ.get("DATABASE_URL", "")
    made: list[tuple[PacsInstance, str | None]] = []

    def make(**env: str) -> PacsInstance:
        database_name = None
        database_url = None
        if base_url.startswith(("postgres://", "postgresql://")):
            database_url, database_name = _postgres_database(base_url)
        instance = PacsInstance(tmp_path / f"pacs{len(made)}", database_url, **env)
        instance.data_dir.mkdir(parents=True)
        made.append((instance, database_name))
        return instance

    yield make
    for instance, database_name in made:
        instance.stop_all()
        if database_name:
            _drop_postgres_database(base_url, database_name)
