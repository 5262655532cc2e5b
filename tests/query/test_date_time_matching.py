"""Combined date-time range matching (PS3.4 C.2.2.2.5.1): StudyDate + StudyTime (and
SeriesDate + SeriesTime) ranges as one range of date-times when the peer negotiated it
(SOP Class Extended Negotiation, PS3.4 C.5.1.1.1), each key alone otherwise."""

from __future__ import annotations

import pytest
from pydicom.dataset import Dataset
from pynetdicom import AE
from pynetdicom.pdu_primitives import SOPClassExtendedNegotiation
from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind

from devices.models import Device
from studies.matching import InvalidIdentifier
from studies.query import find
from studies.services import Origin, store_instance
from tests.conftest import reconfigure, running_scp
from tests.dicom_helpers import make_dataset, write_part10

# Study UID suffix -> (StudyDate, StudyTime)
STUDIES = {
    "1": ("20200101", "080000"),  # day 1, morning
    "2": ("20200101", "130000"),  # day 1, afternoon
    "3": ("20200102", "080000"),  # day 2, morning
    "4": ("20200102", "230000"),  # day 2, late
    "5": ("20200103", "130000"),  # day 3
    "6": ("20200101", ""),  # day 1, time unknown
}
ROOT = "1.2.826.0.1.3680043.8.498.4242."


@pytest.fixture
def dated_studies(tmp_path):
    for suffix, (date, time) in STUDIES.items():
        ds = make_dataset(study_uid=ROOT + suffix, study_date=date)
        ds.StudyTime = time
        ds.SeriesDate, ds.SeriesTime = date, time
        path = write_part10(ds, tmp_path / f"{suffix}.dcm")
        assert store_instance(path, origin=Origin("test")).ok


def matched(combined: bool, level: str = "STUDY", **keys) -> set[str]:
    query = Dataset()
    query.QueryRetrieveLevel = level
    query.StudyInstanceUID = ""
    for keyword, value in keys.items():
        setattr(query, keyword, value)
    return {
        rsp.StudyInstanceUID.removeprefix(ROOT)
        for rsp in find(query, "study", combined_date_time=combined)
    }


def test_a_date_range_with_an_open_time_range_starts_at_that_time_on_the_first_day(
    pacs_runtime, dated_studies
):
    # C.2.2.2.5.1: 20200101-20200102 with 120000- is 2020-01-01 12:00 to the end of 01-02.
    combined = matched(True, StudyDate="20200101-20200102", StudyTime="120000-")
    assert combined == {"2", "3", "4"}
    # Each key alone: afternoons of both days only.
    assert matched(False, StudyDate="20200101-20200102", StudyTime="120000-") == {"2", "4"}


def test_a_closed_date_time_range_runs_from_the_first_moment_to_the_last(
    pacs_runtime, dated_studies
):
    # 2020-01-01 12:00 to 2020-01-02 09:00, which no time range alone can say.
    assert matched(True, StudyDate="20200101-20200102", StudyTime="120000-0900") == {"2", "3"}
    assert matched(False, StudyDate="20200101-20200102", StudyTime="120000-0900") == set()


def test_open_ended_combined_ranges(pacs_runtime, dated_studies):
    assert matched(True, StudyDate="20200102-", StudyTime="120000-") == {"4", "5"}
    assert matched(True, StudyDate="-20200102", StudyTime="-090000") == {"1", "2", "3", "6"}


def test_series_date_and_time_combine_at_series_level(pacs_runtime, dated_studies):
    keys = {"SeriesDate": "20200101-20200102", "SeriesTime": "120000-", "SeriesInstanceUID": ""}
    assert matched(True, "SERIES", **keys) == {"2", "3", "4"}


def test_a_single_date_or_time_value_is_matched_alone_even_when_combined(
    pacs_runtime, dated_studies
):
    # Combined matching is for a range of each; one date with a time range is the same
    # either way.
    assert matched(True, StudyDate="20200101", StudyTime="120000-") == {"2"}


def test_a_combined_range_without_dates_is_refused(pacs_runtime, dated_studies):
    with pytest.raises(InvalidIdentifier):
        matched(True, StudyDate="-", StudyTime="120000-")


def c_find_with_date_time_matching(port: int, request_it: bool) -> tuple[set[str], bytes]:
    """A C-FIND over pynetdicom, asking for combined date-time matching or not; the studies
    and what the SCP answered in the extended negotiation."""
    ae = AE(ae_title="FINDSCU")
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
    negotiation = []
    if request_it:
        item = SOPClassExtendedNegotiation()
        item.sop_class_uid = StudyRootQueryRetrieveInformationModelFind
        item.service_class_application_information = b"\x00\x01\x00\x00"
        negotiation.append(item)
    assoc = ae.associate("127.0.0.1", port, ae_title="VESALIUS", ext_neg=negotiation)
    assert assoc.is_established
    query = Dataset()
    query.QueryRetrieveLevel = "STUDY"
    query.StudyInstanceUID = ""
    query.StudyDate = "20200101-20200102"
    query.StudyTime = "120000-"
    try:
        found = {
            identifier.StudyInstanceUID.removeprefix(ROOT)
            for rsp, identifier in assoc.send_c_find(
                query, StudyRootQueryRetrieveInformationModelFind
            )
            if rsp and rsp.Status == 0xFF00
        }
        answer = assoc.acceptor.sop_class_extended.get(StudyRootQueryRetrieveInformationModelFind)
    finally:
        assoc.release()
    return found, answer or b""


def test_the_c_find_scp_combines_date_and_time_only_when_negotiated(pacs_runtime_tx, dated_studies):
    # PS3.4 C.5.1.1.2: the SCP answers byte 2 = 1 (combined date-time matching) and 0 for
    # relational queries, fuzzy matching and timezone adjustment, which it does not offer.
    Device.objects.create(ae_title="FINDSCU", host="127.0.0.1", port=11112, find=True)
    reconfigure()
    with running_scp() as server:
        assert c_find_with_date_time_matching(server.port, True) == (
            {"2", "3", "4"},
            b"\x00\x01\x00\x00",
        )
        assert c_find_with_date_time_matching(server.port, False) == ({"2", "4"}, b"")
