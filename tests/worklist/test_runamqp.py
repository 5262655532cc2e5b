"""``python manage.py runamqp`` as a process: env gives the settings their values, it stays
up idle while RabbitMQ is disabled, picks up an enabling within seconds, consumes, and ends
cleanly on SIGTERM."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pika
import pytest
from pika.exceptions import ChannelClosedByBroker

from tests.ops.test_env import REPO_DIR, clean_env, run_manage
from tests.worklist.amqp_helpers import BROKER_HOST, BROKER_PORT, Ris, private_vhost
from tests.worklist.test_amqp import NEW_MWL


def _database(tmp_path: Path) -> sqlite3.Connection:
    return sqlite3.connect(tmp_path / "data" / "db.sqlite3", timeout=30)


def _wait(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return False


def _procedures(tmp_path: Path, accession: str) -> int:
    with _database(tmp_path) as db:
        query = "SELECT COUNT(*) FROM worklist_requestedprocedure WHERE accession_number = ?"
        return db.execute(query, (accession,)).fetchone()[0]


def test_runamqp_idles_while_disabled_then_consumes_once_enabled_and_stops_on_sigterm(tmp_path):
    with private_vhost() as vhost:
        url = f"amqp://guest:guest@{BROKER_HOST}:{BROKER_PORT}/{vhost}"
        assert run_manage(tmp_path, "migrate", "--noinput").returncode == 0
        env = clean_env(tmp_path, PACS_AMQP_URL=url, PACS_AMQP_ENABLED="off")
        process = subprocess.Popen(
            [sys.executable, "manage.py", "runamqp"],
            cwd=REPO_DIR,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            time.sleep(3)
            assert process.poll() is None, process.stdout.read()
            with _database(tmp_path) as db:
                row = db.execute(
                    "SELECT enabled, host, port, virtual_host, send_mwl_status, send_new_study,"
                    " send_new_series FROM pacs_amqpsettings"
                ).fetchone()
            assert row == (0, BROKER_HOST, BROKER_PORT, vhost, 1, 1, 1)
            # Disabled: nothing connected, so nothing declared on the broker.
            probe = pika.BlockingConnection(
                pika.ConnectionParameters(BROKER_HOST, BROKER_PORT, virtual_host=vhost)
            )
            try:
                with pytest.raises(ChannelClosedByBroker) as missing:
                    probe.channel().queue_declare("PACS.MWL", passive=True)
                assert missing.value.reply_code == 404
            finally:
                probe.close()
            with _database(tmp_path) as db:
                db.execute("UPDATE pacs_amqpsettings SET enabled = 1")
            ris = Ris(vhost)
            try:

                def consumed() -> bool:
                    channel = ris.connection.channel()
                    try:
                        count = channel.queue_declare("PACS.MWL", passive=True)
                    except ChannelClosedByBroker:
                        return False  # not declared yet
                    channel.close()
                    return count.method.consumer_count == 1

                assert _wait(consumed, 20), "runamqp did not start consuming"
                ris.publish(NEW_MWL.format(accession="PROC-1", station="CT1"))
                assert _wait(lambda: _procedures(tmp_path, "PROC-1") == 1, 10)
            finally:
                ris.close()
            process.send_signal(signal.SIGTERM)
            output, _ = process.communicate(timeout=30)
            assert process.returncode == 0, output
            assert "RabbitMQ link stopped" in output
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
