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
from studies.matching import InvalidIdentifier
from worklist import mpps
from worklist.query import find_worklist

logger = logging.getLogger(__name__)


def _status(code: int, comment: str = "") -> Dataset:
    """A status dataset; the Error Comment (0000,0902; LO, 64 chars) tells the peer why."""
    rsp = Dataset()
    rsp.Status = code
    if comment:
        rsp.ErrorComment = comment[:64]
    return rsp


def handle_mwl_find(event: evt.Event) -> Iterator[tuple[Dataset | int, Dataset | None]]:
    """MWL C-FIND (PS3.4 K.4.1): check MWL and FIND [DEV-ACL], then one pending response
    per matching scheduled step. Cancel is checked before each pending response; after a
    failure status the generator returns. Never raises."""
    close_old_connections()
    calling_ae_title = event.assoc.requestor.ae_title
    try:
        decision = acl.may(calling_ae_title, acl.Permission.MWL)
        if not decision.allowed:
            logger.warning("MWL C-FIND from %s refused: %s", calling_ae_title, decision.reason)
            yield _status(status.REFUSED_NOT_AUTHORIZED, decision.reason), None
            return
        matches = iter(find_worklist(event.identifier))
    except InvalidIdentifier as exc:
        logger.warning("MWL C-FIND from %s: invalid identifier: %s", calling_ae_title, exc)
        yield _status(status.FIND_IDENTIFIER_MISMATCH, str(exc)), None
        return
    except Exception as exc:
        logger.exception("MWL C-FIND from %s failed", calling_ae_title)
        yield _status(status.FIND_UNABLE_TO_PROCESS, f"internal error: {exc}"), None
        return
    while True:
        try:
            response = next(matches, None)
        except Exception as exc:
            logger.exception("MWL C-FIND from %s failed while reading matches", calling_ae_title)
            yield _status(status.FIND_UNABLE_TO_PROCESS, f"internal error: {exc}"), None
            return
        if response is None:
            return
        if event.is_cancelled:
            logger.info("MWL C-FIND from %s cancelled by the peer", calling_ae_title)
            yield status.FIND_CANCELLED, None
            return
        yield status.PENDING, response


def _mpps_allowed(event: evt.Event, service: str) -> Dataset | None:
    """MPPS needs the MWL permission (a modality that takes the worklist reports on it)."""
    calling_ae_title = event.assoc.requestor.ae_title
    decision = acl.may(calling_ae_title, acl.Permission.MWL)
    if decision.allowed:
        return None
    logger.warning("MPPS %s from %s refused: %s", service, calling_ae_title, decision.reason)
    return _status(status.REFUSED_NOT_AUTHORIZED, decision.reason)


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
        return _status(exc.dimse_status, str(exc)), None
    except Exception as exc:
        logger.exception("MPPS N-CREATE failed")
        return _status(status.PROCESSING_FAILURE, f"internal error: {exc}"), None
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
        return _status(exc.dimse_status, str(exc)), None
    except Exception as exc:
        logger.exception("MPPS N-SET failed")
        return _status(status.PROCESSING_FAILURE, f"internal error: {exc}"), None
    return status.SUCCESS, modifications
