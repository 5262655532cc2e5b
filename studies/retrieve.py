"""C-MOVE and C-GET SCP (PS3.4 C.4.2, C.4.3) [QR-2]: the instances named by the identifier
(the one query engine) go out through the one sender, from their files.

pynetdicom's own C-MOVE/C-GET service takes only decoded datasets from a handler and
re-encodes them, which is neither byte-identical ("as is") nor fast, and opens the C-MOVE
sub-association itself, so the receiver's accepted transfer syntaxes cannot drive [QR-3].
This service class replaces those two operations; C-FIND stays with pynetdicom and its
handler.
"""

from __future__ import annotations

import logging
import threading
import time
from io import BytesIO
from pathlib import Path

from pydicom.dataset import Dataset
from pynetdicom.dimse_primitives import C_GET, C_MOVE
from pynetdicom.dsutils import decode, encode
from pynetdicom.service_class import QueryRetrieveServiceClass

from devices import acl
from devices.models import Device
from pacs.config import get_runtime_settings
from pacs.dimse import status
from studies.matching import InvalidIdentifier, select_instances
from studies.services.sending import (
    InstanceSender,
    SendPolicy,
    open_association,
    requested_contexts,
)

logger = logging.getLogger(__name__)

PATIENT_ROOT_MOVE = "1.2.840.10008.5.1.4.1.2.1.2"
STUDY_ROOT_MOVE = "1.2.840.10008.5.1.4.1.2.2.2"
PATIENT_ROOT_GET = "1.2.840.10008.5.1.4.1.2.1.3"
STUDY_ROOT_GET = "1.2.840.10008.5.1.4.1.2.2.3"
QUERY_MODELS = {
    PATIENT_ROOT_MOVE: "patient",
    STUDY_ROOT_MOVE: "study",
    PATIENT_ROOT_GET: "patient",
    STUDY_ROOT_GET: "study",
}
_MAX_SUBOPERATIONS = 65535  # the Number of ... Sub-operations are US
_PENDING_INTERVAL_SECONDS = 0.25
# What the sender reads of each instance (the rest of the row is not loaded).
_SENDER_FIELDS = (
    "sop_instance_uid",
    "sop_class_uid",
    "transfer_syntax_uid",
    "relative_path",
    "storage__path",
)


class RetrieveServiceClass(QueryRetrieveServiceClass):
    """Query/Retrieve with our C-MOVE and C-GET; everything else as pynetdicom does it."""

    def _move_scp(self, req: C_MOVE, context) -> None:
        self._retrieve(req, context, C_MOVE())

    def _get_scp(self, req: C_GET, context) -> None:
        self._retrieve(req, context, C_GET())

    def _retrieve(self, req, context, rsp) -> None:
        rsp.MessageIDBeingRespondedTo = req.MessageID
        rsp.AffectedSOPClassUID = req.AffectedSOPClassUID
        self._context = context
        self._rsp = rsp
        is_move = isinstance(rsp, C_MOVE)
        operation = "C-MOVE" if is_move else "C-GET"
        calling = self.assoc.requestor.ae_title
        model = QUERY_MODELS.get(str(context.abstract_syntax))
        if model is None:
            return self._final(status.RETRIEVE_UNABLE_TO_PROCESS, "unsupported information model")

        decision = acl.may(calling, acl.Permission.DOWNLOAD)
        if not decision.allowed:
            logger.warning("%s from %s refused: %s", operation, calling, decision.reason)
            return self._final(status.REFUSED_NOT_AUTHORIZED, decision.reason)

        try:
            identifier = self._decode(req.Identifier)
            instances = list(
                select_instances(identifier, model)
                .select_related(None)
                .select_related("storage")
                .only(*_SENDER_FIELDS)
            )
        except InvalidIdentifier as exc:
            logger.warning("%s from %s: invalid identifier: %s", operation, calling, exc)
            return self._final(status.IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS, str(exc))
        except Exception as exc:
            logger.warning("%s from %s: unreadable identifier: %s", operation, calling, exc)
            return self._final(status.IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS, "bad identifier")
        if len(instances) > _MAX_SUBOPERATIONS:
            return self._final(
                status.RETRIEVE_OUT_OF_RESOURCES_MATCHES, "more than 65535 instances match"
            )

        runtime = get_runtime_settings()
        temp_dir = Path(runtime.temp_dir)
        if is_move:
            destination = Device.objects.filter(ae_title=req.MoveDestination.strip()).first()
            if destination is None or not destination.port:
                logger.warning(
                    "C-MOVE from %s: unknown destination %r", calling, req.MoveDestination
                )
                return self._final(status.MOVE_DESTINATION_UNKNOWN, "unknown move destination")
            if not instances:
                return self._final(status.SUCCESS, counts=(0, 0, 0, 0))
            policy = SendPolicy.for_device(destination)
            pairs = {(i.sop_class_uid, i.transfer_syntax_uid) for i in instances}
            store_assoc = open_association(
                runtime.ae_title, destination, requested_contexts(pairs, policy)
            )
            if not store_assoc.is_established:
                logger.warning("C-MOVE: cannot associate with %s", destination)
                return self._final(status.RETRIEVE_UNABLE_TO_PERFORM_SUBOPERATIONS)
            sender = InstanceSender(
                store_assoc,
                policy,
                temp_dir=temp_dir,
                originator_ae_title=calling,
                originator_message_id=req.MessageID,
            )
        else:
            device = Device.objects.filter(ae_title=calling.strip()).first()
            policy = SendPolicy.for_device(device) if device else SendPolicy()
            store_assoc = None
            sender = InstanceSender(self.assoc, policy, temp_dir=temp_dir)
            if not instances:
                return self._final(status.SUCCESS, counts=(0, 0, 0, 0))

        try:
            self._send_all(req, instances, sender, operation)
        finally:
            if store_assoc is not None and store_assoc.is_established:
                # After the final response: the requestor need not wait for this release
                # (pynetdicom's ends with a 10 ms polling loop) before it can release its own.
                threading.Thread(
                    target=store_assoc.release, name="c-move-release", daemon=True
                ).start()

    def _send_all(self, req, instances, sender: InstanceSender, operation: str) -> None:
        remaining, completed, failed, warning = len(instances), 0, 0, 0
        failed_uids: list[str] = []
        last_pending = float("-inf")
        for instance in instances:
            if self.is_cancelled(req.MessageID):
                # PS3.4 C.4.2.3.1: Cancel, with the counts and the UIDs not sent.
                not_sent = [i.sop_instance_uid for i in instances[-remaining:]]
                logger.info("%s cancelled with %d instance(s) left", operation, remaining)
                return self._final(
                    status.CANCEL,
                    counts=(remaining, completed, failed, warning),
                    failed_uids=failed_uids + not_sent,
                )
            result = sender.send(instance)
            remaining -= 1
            if result.category == "success":
                completed += 1
            elif result.category == "warning":
                warning += 1
            else:
                failed += 1
                failed_uids.append(instance.sop_instance_uid)
            now = time.monotonic()
            if remaining and now - last_pending >= _PENDING_INTERVAL_SECONDS:
                # Pending responses are optional (PS3.4 C.4.2.3.1, C.4.3.3.1); one per
                # instance costs a few percent of a fast transfer, so they are paced.
                self._respond(status.PENDING, (remaining, completed, failed, warning))
                last_pending = now
        if failed == len(instances):
            code = status.RETRIEVE_UNABLE_TO_PERFORM_SUBOPERATIONS
        elif failed or warning:
            code = status.RETRIEVE_SUBOPERATIONS_WARNING
        else:
            code = status.SUCCESS
        self._final(code, counts=(0, completed, failed, warning), failed_uids=failed_uids)

    def _decode(self, identifier: BytesIO) -> Dataset:
        syntax = self._context.transfer_syntax[0]
        return decode(
            identifier, syntax.is_implicit_VR, syntax.is_little_endian, syntax.is_deflated
        )

    def _respond(self, code: int, counts: tuple[int, int, int, int]) -> None:
        rsp = self._rsp
        rsp.Status = code
        rsp.Identifier = None
        rsp.ErrorComment = None
        (
            rsp.NumberOfRemainingSuboperations,
            rsp.NumberOfCompletedSuboperations,
            rsp.NumberOfFailedSuboperations,
            rsp.NumberOfWarningSuboperations,
        ) = counts
        self.dimse.send_msg(rsp, self._context.context_id)

    def _final(
        self,
        code: int,
        comment: str = "",
        *,
        counts: tuple[int, int, int, int] | None = None,
        failed_uids: list[str] | None = None,
    ) -> None:
        """The last response: success, warning, failure or cancel (PS3.4 C.4.2.1.6)."""
        rsp = self._rsp
        rsp.Status = code
        rsp.ErrorComment = comment[:64] if comment and code not in (0, 0xB000) else None
        rsp.Identifier = None
        rsp.NumberOfRemainingSuboperations = None
        rsp.NumberOfCompletedSuboperations = None
        rsp.NumberOfFailedSuboperations = None
        rsp.NumberOfWarningSuboperations = None
        if counts is not None:
            remaining, completed, failed, warning = counts
            if code == status.CANCEL:
                rsp.NumberOfRemainingSuboperations = remaining
            rsp.NumberOfCompletedSuboperations = completed
            rsp.NumberOfFailedSuboperations = failed
            rsp.NumberOfWarningSuboperations = warning
        if failed_uids:
            ds = Dataset()
            ds.FailedSOPInstanceUIDList = failed_uids
            syntax = self._context.transfer_syntax[0]
            rsp.Identifier = BytesIO(
                encode(ds, syntax.is_implicit_VR, syntax.is_little_endian, syntax.is_deflated)
            )
        self.dimse.send_msg(rsp, self._context.context_id)
