"""Fixtures of the worklist tests: procedures made through the services."""

from __future__ import annotations

import datetime

import pytest

from tests.api.conftest import (  # noqa: F401  (shared API fixtures)
    _fast_password_hashing,
    _fresh_runtime_settings,
    anonymous,
    api,
    user,
)
from tests.conftest import running_scp
from tests.e2e.conftest import pacs_factory  # noqa: F401  (the whole-PACS fixture)
from worklist import services
from worklist.choices import StepStatus

WLISTDB = "worklist/dcmtk/wlistdb"
QUERIES = "worklist/dcmtk/queries"


def make_procedure(
    *,
    patient_name: str = "DOE^JANE",
    patient_id: str = "PID1",
    accession_number: str = "ACC1",
    statuses: tuple[StepStatus, ...] = (StepStatus.SCHEDULED,),
    modality: str = "CT",
    station_ae_title: str = "CT1",
    start_date: datetime.date = datetime.date(2026, 12, 2),
    **values,
):
    """A procedure with one step per status given."""
    procedure = services.create_procedure(
        {
            "patient_name": patient_name,
            "patient_id": patient_id,
            "accession_number": accession_number,
            **values,
        },
        [
            {
                "modality": modality,
                "station_ae_title": station_ae_title,
                "start_date": start_date,
                "start_time": "0900",
                "status": status,
            }
            for status in statuses
        ],
    )
    return procedure


@pytest.fixture
def wlistdb(corpus_dir):
    return corpus_dir / WLISTDB


@pytest.fixture
def queries(corpus_dir):
    return corpus_dir / QUERIES


def running_worklist_scp():
    """The MWL and MPPS SCP in this process on a free port."""
    from pacs.dimse.server import WorklistServer

    return running_scp(WorklistServer)
