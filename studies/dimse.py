"""DIMSE handlers of the studies app: thin adapters over the ingest service."""

from __future__ import annotations

import logging

from pydicom.dataset import Dataset
from pynetdicom import evt

from devices import acl
from pacs.dimse import status
from studies.services import Origin, store_instance

logger = logging.getLogger(__name__)


def _status(code: int, comment: str = "") -> Dataset:
    """A status dataset; the Error Comment (0000,0902; LO, 64 chars) tells the peer why."""
    rsp = Dataset()
    rsp.Status = code
    if comment:
        rsp.ErrorComment = comment[:64]
    return rsp


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
            return _status(status.REFUSED_NOT_AUTHORIZED, decision.reason)
        result = store_instance(
            event.dataset_path,
            origin=Origin("dimse", ae_title=calling_ae_title, address=requestor.address),
            expected_sop_class_uid=str(request.AffectedSOPClassUID or ""),
            expected_sop_instance_uid=str(request.AffectedSOPInstanceUID or ""),
        )
    except Exception as exc:
        logger.exception("C-STORE of %s failed", request.AffectedSOPInstanceUID)
        return _status(status.STORE_OUT_OF_RESOURCES, f"internal error: {exc}")
    return _status(result.dimse_status, "" if result.ok else result.reason)
