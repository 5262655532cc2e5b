"""DIMSE handlers of the studies app: thin adapters over the ingest service (C-STORE) and the
query engine (C-FIND)."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator

from pydicom.dataset import Dataset
from pynetdicom import evt
from pynetdicom.sop_class import (
    PatientRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelFind,
)

from devices import acl
from pacs.config import get_runtime_settings
from pacs.dimse import status
from pacs.dimse.find import FindResponse, serve_find, status_dataset
from studies.query import find
from studies.services import Origin, store_instance

logger = logging.getLogger(__name__)


def handle_store(event: evt.Event) -> Dataset:
    """C-STORE (PS3.4 B.2): check UPLOAD [DEV-ACL], then hand the received file to the one
    ingest service [ING-8]. Never raises: an unexpected error answers Out of Resources."""
    requestor = event.assoc.requestor
    calling_ae_title = requestor.ae_title
    request = event.request
    try:
        decision = acl.may(calling_ae_title, acl.Permission.UPLOAD)
        if not decision.allowed:
            logger.warning(
                "C-STORE of %s refused: %s",
                request.AffectedSOPInstanceUID,
                decision.reason,
            )
            return status_dataset(status.REFUSED_NOT_AUTHORIZED, decision.reason)
        result = store_instance(
            event.dataset_path,
            origin=Origin("dimse", ae_title=calling_ae_title, address=requestor.address),
            expected_sop_class_uid=str(request.AffectedSOPClassUID or ""),
            expected_sop_instance_uid=str(request.AffectedSOPInstanceUID or ""),
        )
    except Exception as exc:
        logger.exception("C-STORE of %s failed", request.AffectedSOPInstanceUID)
        return status_dataset(status.STORE_OUT_OF_RESOURCES, f"internal error: {exc}")
    return status_dataset(result.dimse_status, "" if result.ok else result.reason)


# The Query/Retrieve FIND SOP classes served, and the information model of each.
FIND_QUERY_MODELS = {
    str(PatientRootQueryRetrieveInformationModelFind): "patient",
    str(StudyRootQueryRetrieveInformationModelFind): "study",
}


# PS3.4 C.5.1.1.1 / C.5.1.1.2: the C-FIND service-class application information, one byte
# per option: relational queries, combined date-time matching, fuzzy semantic matching of
# person names, timezone query adjustment. Only combined date-time matching is offered.
_DATE_TIME_MATCHING_BYTE = 1


def handle_sop_extended(event: evt.Event) -> dict[str, bytes]:
    """SOP Class Extended Negotiation (PS3.7 D.3.3.5): for the C-FIND SOP classes, accept
    combined date-time matching when asked, refuse the other options (their bytes 0)."""
    answers = {}
    for sop_class_uid, requested in event.app_info.items():
        if str(sop_class_uid) not in FIND_QUERY_MODELS or not requested:
            continue
        answer = bytearray(len(requested))
        if len(requested) > _DATE_TIME_MATCHING_BYTE and requested[_DATE_TIME_MATCHING_BYTE]:
            answer[_DATE_TIME_MATCHING_BYTE] = 1
        answers[sop_class_uid] = bytes(answer)
    return answers


def combined_date_time_accepted(assoc, sop_class_uid: str) -> bool:
    """Whether this association accepted combined date-time matching for the SOP class."""
    accepted = assoc.acceptor.sop_class_extended.get(sop_class_uid, b"")
    return len(accepted) > _DATE_TIME_MATCHING_BYTE and bool(accepted[_DATE_TIME_MATCHING_BYTE])


def handle_find(event: evt.Event) -> Iterator[FindResponse]:
    """C-FIND (PS3.4 C.4.1): with FIND [DEV-ACL], one pending response per match of the query
    engine, through the shared response loop (cancel, failures, never raises)."""
    sop_class_uid = str(event.request.AffectedSOPClassUID)

    def find_matches() -> Iterable[Dataset]:
        return find(
            event.identifier,
            FIND_QUERY_MODELS[sop_class_uid],
            retrieve_ae_title=get_runtime_settings().ae_title,
            combined_date_time=combined_date_time_accepted(event.assoc, sop_class_uid),
        )

    return serve_find(
        event, service="C-FIND", permission=acl.Permission.FIND, find_matches=find_matches
    )
