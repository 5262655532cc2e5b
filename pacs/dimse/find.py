"""The C-FIND response loop shared by every C-FIND SCP (Query/Retrieve on the store port,
Modality Worklist on the worklist port): one place for the rules of PS3.4 C.4.1 / K.4.1
that the handlers must all keep.

- The permission is checked first [DEV-ACL]; a refusal is logged with the reason.
- ``is_cancelled`` is checked before each pending response (Cancel, 0xFE00).
- After any failure status the generator returns; pynetdicom sends the final Success only
  when it ends without one.
- It never raises: an invalid identifier answers 0xA900, an unexpected error 0xC000.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator

from django.db import close_old_connections
from pydicom.dataset import Dataset
from pynetdicom import evt

from devices import acl
from pacs.dimse import status
from studies.matching import InvalidIdentifier

logger = logging.getLogger(__name__)

FindResponse = tuple[Dataset | int, Dataset | None]


def status_dataset(code: int, comment: str = "") -> Dataset:
    """A status dataset; the Error Comment (0000,0902; LO, 64 chars) tells the peer why."""
    rsp = Dataset()
    rsp.Status = code
    if comment:
        rsp.ErrorComment = comment[:64]
    return rsp


def serve_find(
    event: evt.Event,
    *,
    service: str,
    permission: acl.Permission,
    find_matches: Callable[[], Iterable[Dataset]],
) -> Iterator[FindResponse]:
    """Yield the C-FIND responses of ``find_matches()`` (one pending response each) for a
    peer that has ``permission``; ``service`` names the service in log lines."""
    close_old_connections()
    calling_ae_title = event.assoc.requestor.ae_title
    try:
        decision = acl.may(calling_ae_title, permission)
        if not decision.allowed:
            logger.warning("%s from %s refused: %s", service, calling_ae_title, decision.reason)
            yield status_dataset(status.REFUSED_NOT_AUTHORIZED, decision.reason), None
            return
        matches = iter(find_matches())
    except InvalidIdentifier as exc:
        logger.warning("%s from %s: invalid identifier: %s", service, calling_ae_title, exc)
        yield status_dataset(status.FIND_IDENTIFIER_MISMATCH, str(exc)), None
        return
    except Exception as exc:
        logger.exception("%s from %s failed", service, calling_ae_title)
        yield status_dataset(status.FIND_UNABLE_TO_PROCESS, f"internal error: {exc}"), None
        return
    while True:
        try:
            response = next(matches, None)
        except Exception as exc:
            logger.exception("%s from %s failed while reading matches", service, calling_ae_title)
            yield status_dataset(status.FIND_UNABLE_TO_PROCESS, f"internal error: {exc}"), None
            return
        if response is None:
            return  # pynetdicom sends the final Success
        if event.is_cancelled:
            logger.info("%s from %s cancelled by the peer", service, calling_ae_title)
            yield status.FIND_CANCELLED, None
            return
        yield status.PENDING, response
