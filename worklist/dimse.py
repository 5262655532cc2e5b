"""DIMSE handlers of the worklist app (port ``PACS_MWL_PORT``): MWL C-FIND [MWL-2] and
MPPS N-CREATE / N-SET [MWL-3]; thin adapters over :mod:`worklist.query` and
:mod:`worklist.mpps`, shaped like ``studies.dimse.handle_find``."""

from __future__ import annotations

import logging
from collections.abc import Iterator

from django.db import close_old_connections
from pydicom.dataset import Dataset
from pynetdicom import evt

from devices import acl
from pacs.dimse import status
from pacs.dimse.find import FindResponse, serve_find, status_dataset
from worklist import mpps
from worklist.query import find_worklist

logger = logging.getLogger(__name__)


def handle_mwl_find(event: evt.Event) -> Iterator[FindResponse]:
    """MWL C-FIND (PS3.4 K.4.1): with MWL and FIND [DEV-ACL], one pending response per
    matching scheduled step, through the shared response loop (cancel, failures, never
    raises)."""
    return serve_find(
        event,
        service="MWL C-FIND",
        permission=acl.Permission.MWL,
        find_matches=lambda: find_worklist(event.identifier),
    )


def _mpps_allowed(event: evt.Event, service: str) -> Dataset | None:
    """MPPS needs the MWL permission (a modality that takes the worklist reports on it)."""
    calling_ae_title = event.assoc.requestor.ae_title
    decision = acl.may(calling_ae_title, acl.Permission.MWL)
    if decision.allowed:
        return None
    logger.warning("MPPS %s from %s refused: %s", service, calling_ae_title, decision.reason)
    return status_dataset(status.REFUSED_NOT_AUTHORIZED, decision.reason)


def handle_n_create(event: evt.Event) -> tuple[Dataset | int, Dataset | None]:
    """MPPS N-CREATE (PS3.4 F.7.2.1): a performed step IN PROGRESS; its scheduled steps
    move to IN_PROGRESS. Answers the attributes as created."""
    close_old_connections()
    try:
        refused = _mpps_allowed(event, "N-CREATE")
        if refused is not None:
            return refused, None
        attributes = event.attribute_list
        mpps.create(
            event.request.AffectedSOPInstanceUID,
            attributes,
            calling_ae_title=event.assoc.requestor.ae_title,
        )
    except mpps.MppsError as exc:
        logger.warning("MPPS N-CREATE refused: %s", exc)
        return status_dataset(exc.dimse_status, str(exc)), None
    except Exception as exc:
        logger.exception("MPPS N-CREATE failed")
        return status_dataset(status.PROCESSING_FAILURE, f"internal error: {exc}"), None
    return status.SUCCESS, attributes


def handle_n_set(event: evt.Event) -> tuple[Dataset | int, Dataset | None]:
    """MPPS N-SET (PS3.4 F.7.2.2): COMPLETED or DISCONTINUED end the performed step and
    its scheduled steps. Answers the modified attributes."""
    close_old_connections()
    try:
        refused = _mpps_allowed(event, "N-SET")
        if refused is not None:
            return refused, None
        modifications = event.attribute_list
        mpps.update(str(event.request.RequestedSOPInstanceUID), modifications)
    except mpps.MppsError as exc:
        logger.warning("MPPS N-SET refused: %s", exc)
        return status_dataset(exc.dimse_status, str(exc)), None
    except Exception as exc:
        logger.exception("MPPS N-SET failed")
        return status_dataset(status.PROCESSING_FAILURE, f"internal error: {exc}"), None
    return status.SUCCESS, modifications
