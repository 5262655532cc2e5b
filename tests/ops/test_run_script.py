"""``scripts/run``, the README run command: it brings up the web and SCP processes, answers
DCMTK, stops both cleanly on SIGTERM, and stops everything when one process dies."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import requests
from pydicom.uid import generate_uid

from tests.conftest import REPO_DIR, dcmtk_tool
from tests.dicom_helpers import free_port, make_dataset, write_part10

pytestmark = pytest.mark.e2e

ADMIN_PASSWORD = "run-script-password"


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def wait_until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise TimeoutError(f"{what} after {timeout}s")


def children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(child) for child in text.split()]


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


class RunScript:
    def __init__(self, tmp_path: Path, database_url: str | None, **env: str) -> None:
        tmp_path.mkdir(parents=True, exist_ok=True)
        self.data_dir = tmp_path / "data"
        self.http_port = free_port()
        self.dicom_port = free_port()
        self.dicomweb_port = free_port()
        self.output = tmp_path / "run.out"
        self.env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith("PACS_") and key not in {"DATABASE_URL", "CELERY_BROKER_URL"}
        }
        self.env.pop("DJANGO_SETTINGS_MODULE", None)
        self.env.update(
            {
                "PACS_DATA_DIR": str(self.data_dir),
                "PACS_HTTP_PORT": str(self.http_port),
                "PACS_DICOM_PORT": str(self.dicom_port),
                "PACS_MWL_PORT": str(free_port()),
                "PACS_DICOMWEB_PORT": str(self.dicomweb_port),
                "PACS_SCP_PROCESSES": "1",
                "PACS_WEB_WORKERS": "1",
                "PACS_DRAIN_SECONDS": "5",
                "PACS_SKIP_INSTALL": "1",
                "PACS_ACCEPT_ANY_AE": "on",
                "PACS_ADMIN_PASSWORD": ADMIN_PASSWORD,
                "PYTHONUNBUFFERED": "1",
            }
        )
        if database_url:
            self.env["DATABASE_URL"] = database_url
        self.env.update(env)
        self.process: subprocess.Popen | None = None

    def start(self) -> subprocess.Popen:
        self.process = subprocess.Popen(
            [str(REPO_DIR / "scripts" / "run")],
            cwd=REPO_DIR,
            env=self.env,
            stdout=self.output.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
            # As in a terminal: SIGINT not ignored (a background shell would ignore it).
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        return self.process

    def log(self) -> str:
        return self.output.read_text(errors="replace")

    def wait_ready(self) -> None:
        assert self.process is not None
        wait_until(
            lambda: (
                self.process.poll() is not None
                or (port_open(self.http_port) and port_open(self.dicom_port))
            ),
            120,
            "web and SCP not listening",
        )
        assert self.process.poll() is None, self.log()

    def kill_everything(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)


def postgres_url() -> str:
    url = os.environ.get("DATABASE_URL", "")
    return url if url.startswith(("postgres://", "postgresql://")) else ""


def admin_connection(url: str):
    import psycopg

    return psycopg.connect(url.replace("postgres://", "postgresql://", 1), autocommit=True)


@pytest.fixture
def run_script(tmp_path):
    """Make RunScript objects; on PostgreSQL each gets a fresh database, dropped afterwards."""
    base_url = postgres_url()
    scripts: list[RunScript] = []
    databases: list[str] = []

    def make(**env: str) -> RunScript:
        database_url = None
        if base_url:
            name = f"vesalius_run_{uuid.uuid4().hex[:12]}"
            with admin_connection(base_url) as conn:
                conn.execute(f'CREATE DATABASE "{name}"')
            databases.append(name)
            database_url = f"{base_url.rsplit('/', 1)[0]}/{name}"
        script = RunScript(tmp_path / f"run{len(scripts)}", database_url, **env)
        scripts.append(script)
        return script

    yield make
    for script in scripts:
        script.kill_everything()
    for name in databases:
        with admin_connection(base_url) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_the_run_script_brings_up_a_pacs_that_stores_and_lists_and_stops_cleanly(
    run_script, tmp_path
):
    pacs = run_script()
    process = pacs.start()
    pacs.wait_ready()

    log = pacs.log()
    assert f"http://localhost:{pacs.http_port}/api/" in log
    assert f"port {pacs.dicom_port}" in log
    assert "admin / (PACS_ADMIN_PASSWORD)" in log

    echo = subprocess.run(
        [dcmtk_tool("echoscu"), "-aec", "VESALIUS", "127.0.0.1", str(pacs.dicom_port)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert echo.returncode == 0, echo.stderr
    study_uid, series_uids = generate_uid(), [generate_uid(), generate_uid()]
    folder = tmp_path / "in"
    for number, series_uid in enumerate(series_uids * 2):
        ds = make_dataset(patient_name="Run^Script", study_uid=study_uid, series_uid=series_uid)
        write_part10(ds, folder / f"{number}.dcm")
    storescu = [dcmtk_tool("storescu"), "-aec", "VESALIUS", "+sd"]
    store = subprocess.run(
        [*storescu, "127.0.0.1", str(pacs.dicom_port), str(folder)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert store.returncode == 0, store.stderr
    response = requests.get(
        f"http://127.0.0.1:{pacs.http_port}/api/studies/",
        auth=("admin", ADMIN_PASSWORD),
        timeout=30,
    )
    assert response.status_code == 200, response.text
    [study] = response.json()["results"]
    assert study["study_instance_uid"] == study_uid
    assert study["patient_name"] == "Run^Script"
    assert (study["number_of_series"], study["number_of_instances"]) == (2, 4)
    assert len([p for p in (pacs.data_dir / "storage").rglob("*") if p.is_file()]) == 4

    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 0, pacs.log()
    assert not port_open(pacs.http_port)
    assert not port_open(pacs.dicom_port)
    assert "[run] stopped" in pacs.log()


def test_ctrl_c_stops_every_process_cleanly(run_script):
    pacs = run_script()
    process = pacs.start()
    pacs.wait_ready()
    pids = children(process.pid)

    # Ctrl-C in a terminal: SIGINT to the whole foreground process group.
    os.killpg(process.pid, signal.SIGINT)

    assert process.wait(timeout=60) == 0, pacs.log()
    assert "[run] stopped" in pacs.log()
    assert not [pid for pid in pids if Path(f"/proc/{pid}").exists()]
    assert not port_open(pacs.dicom_port)
    assert not port_open(pacs.http_port)
    assert not processes_in_group(process.pid)  # no gunicorn worker left behind


def processes_in_group(pgid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                found.append(int(entry.name))
    return found


def test_the_run_script_stops_everything_and_fails_when_one_process_dies(run_script):
    pacs = run_script()
    process = pacs.start()
    pacs.wait_ready()
    scp = [pid for pid in children(process.pid) if "runscp" in command_line(pid)]
    assert scp, f"no runscp child of {process.pid}: {pacs.log()}"

    os.kill(scp[0], signal.SIGKILL)

    assert process.wait(timeout=60) != 0, pacs.log()
    assert "scp exited" in pacs.log(), pacs.log()
    wait_until(lambda: not port_open(pacs.http_port), 30, "web still listening")


def test_the_run_script_refuses_a_bad_configuration_before_starting(run_script):
    pacs = run_script(PACS_DICOM_PORT="abc")
    process = pacs.start()

    assert process.wait(timeout=120) != 0
    assert "PACS_DICOM_PORT='abc': expected a whole number" in pacs.log()
    assert not port_open(pacs.http_port)
