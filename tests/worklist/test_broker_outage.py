"""RabbitMQ outages [AMQP-3], [AMQP-4]: events recorded while the broker is down all
arrive once it is back, none twice, and the consumer reconnects by itself.

These tests stop the shared broker for a few seconds (``rabbitmqctl stop_app``). The
``broker_outage`` fixture starts it again in a ``finally`` and waits until it answers,
whatever the test did, so a failing test never leaves the broker down."""

from __future__ import annotations

import contextlib
import time

import pytest
from pydicom.uid import generate_uid

from tests.conftest import configure_pacs, reconfigure, running_scp
from tests.worklist.amqp_helpers import (
    Ris,
    broker_answers,
    enable_amqp,
    private_vhost,
    rabbitmqctl,
    running_runner,
)
from tests.worklist.conftest import make_procedure
from tests.worklist.test_amqp import NEW_MWL, _study_files, _wait_for, storescu
from worklist import services
from worklist.choices import ChangeSource, StepStatus
from worklist.models import RequestedProcedure


def _start_broker() -> None:
    rabbitmqctl("start_app", check=False)
    deadline = time.monotonic() + 120
    while not broker_answers() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert broker_answers(), "RabbitMQ did not come back"


@pytest.fixture
def broker_outage():
    """A context manager that stops the broker for its block; always restarted."""

    @contextlib.contextmanager
    def outage():
        rabbitmqctl("stop_app")
        try:
            yield
        finally:
            _start_broker()

    try:
        yield outage
    finally:
        if not broker_answers():
            _start_broker()


@pytest.fixture
def vhost(transactional_db, tmp_path):
    configure_pacs(tmp_path, accept_any_ae=True)
    with private_vhost() as name:
        enable_amqp(name)
        yield name
    reconfigure(accept_any_ae=False)


def test_events_of_an_outage_all_arrive_once_and_the_consumer_reconnects(
    vhost, broker_outage, tmp_path
):
    statuses = [make_procedure(accession_number=f"OUT-{n}") for n in range(3)]
    paths, study_uid, series_uids = _study_files(tmp_path / "files")
    with running_runner() as runner:
        with broker_outage():
            assert _wait_for(lambda: not runner.connected.is_set(), timeout=30)
            with running_scp() as scp:
                storescu(scp.port, paths)
            for procedure in statuses:
                services.change_status(
                    list(procedure.steps.all()), StepStatus.IN_PROGRESS, source=ChangeSource.MPPS
                )
        assert runner.connected.wait(60), "the runner did not reconnect"
        ris = Ris(vhost)
        try:
            studies = sorted(body for body, _ in ris.take("PACS.Studies", 3, timeout=30))
            changes = [body for body, _ in ris.take("PACS.MWL_changed", 3, timeout=30)]
            assert studies == sorted(
                [f"<study><uid>{study_uid}</uid></study>".encode()]
                + [f"<series><uid>{uid}</uid></series>".encode() for uid in series_uids]
            )
            assert changes == [
                f"<mwl><accession_number>OUT-{n}</accession_number>"
                f"<status>IN_PROGRESS</status></mwl>".encode()
                for n in range(3)
            ]
            # None twice.
            assert ris.take("PACS.Studies", 1, timeout=1.5) == []
            assert ris.take("PACS.MWL_changed", 1, timeout=0.1) == []
            # The consumer is back on its queue without a restart.
            ris.publish(NEW_MWL.format(accession=f"BACK-{generate_uid()[-8:]}", station="CT1"))
            assert _wait_for(
                lambda: RequestedProcedure.objects.filter(
                    accession_number__startswith="BACK-"
                ).exists(),
                timeout=10,
            )
        finally:
            ris.close()
