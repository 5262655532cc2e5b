"""The one sender [QR-2], [QR-3]: every outgoing C-STORE (C-MOVE and C-GET sub-operations,
later forwarding and send-to-device) goes through :class:`InstanceSender`.

It picks the transfer syntax of each instance by [QR-3] — the device's preferred syntax if
the receiver accepted it (lossy only when the device allows lossy), else the stored one, else
Explicit VR Little Endian — transcodes when needed, and sends the file's bytes as they are
(no decode and re-encode) when the stored syntax is used, so "as is" is byte-identical.
"""

from __future__ import annotations

import logging
import os
import socket
import struct
import tempfile
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE, _config
from pynetdicom.association import Association
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.dsutils import split_dataset
from pynetdicom.presentation import PresentationContext, build_context

from devices.choices import AS_IS
from studies.models import Instance

logger = logging.getLogger(__name__)

# Outgoing datasets are sent from their files, raw (pynetdicom's chunked send).
_config.STORE_SEND_CHUNKED_DATASET = True

# PS3.4 C.4.2.1.5 / C.4.3.1.5: sub-operation failures are counted, not raised.
SUBOPERATION_FAILED = 0xA702
_MAX_CONTEXTS = 128  # PS3.8 9.3.2.2: context IDs are odd numbers 1-255
_SUCCESS_CATEGORIES = {"success": 0, "warning": 1, "failure": 2}


@dataclass(frozen=True)
class SendPolicy:
    """What a receiving device wants [DEV-TS]: its preferred syntax and whether lossy
    compression is allowed for it."""

    preferred_transfer_syntax: str = AS_IS
    allow_lossy: bool = False
    quality: int = 90

    @classmethod
    def for_device(cls, device) -> SendPolicy:
        return cls(device.preferred_transfer_syntax, device.allow_lossy)

    def candidates(self, stored_transfer_syntax: str) -> list[str]:
        """Transfer syntaxes to send an instance in, best first ([QR-3])."""
        ordered = []
        preferred = self.preferred_transfer_syntax
        if preferred not in (AS_IS, stored_transfer_syntax) and _can_transcode(
            stored_transfer_syntax, preferred, self.allow_lossy
        ):
            ordered.append(preferred)
        ordered.append(stored_transfer_syntax)
        for fallback in (str(ExplicitVRLittleEndian), str(ImplicitVRLittleEndian)):
            if fallback not in ordered and _can_transcode(
                stored_transfer_syntax, fallback, self.allow_lossy
            ):
                ordered.append(fallback)
        if preferred == stored_transfer_syntax:
            ordered.remove(preferred)
            ordered.insert(0, preferred)
        return ordered


def _can_transcode(source: str, target: str, allow_lossy: bool) -> bool:
    from studies import transcoding

    if target in transcoding.LOSSY_TRANSFER_SYNTAXES and not allow_lossy:
        return False
    return transcoding.can_decode(source) and transcoding.can_encode(target)


def requested_contexts(
    instances: Iterable[tuple[str, str]], policy: SendPolicy
) -> list[PresentationContext]:
    """Presentation contexts to propose for (SOP class, stored syntax) pairs: one context
    per candidate syntax, so the receiver's answer says which syntaxes it takes. Beyond 128
    contexts, one context per SOP class lists all its candidates."""
    by_sop_class: dict[str, list[str]] = {}
    for sop_class_uid, stored in instances:
        candidates = by_sop_class.setdefault(sop_class_uid, [])
        for syntax in policy.candidates(stored):
            if syntax not in candidates:
                candidates.append(syntax)
    if sum(len(syntaxes) for syntaxes in by_sop_class.values()) <= _MAX_CONTEXTS:
        return [
            build_context(sop_class_uid, [syntax])
            for sop_class_uid, syntaxes in by_sop_class.items()
            for syntax in syntaxes
        ]
    return [
        build_context(sop_class_uid, syntaxes)
        for sop_class_uid, syntaxes in list(by_sop_class.items())[:_MAX_CONTEXTS]
    ]


def open_association(ae_title: str, device, contexts: list[PresentationContext]) -> Association:
    """An association from us to a device (C-MOVE destination, forwarding target)."""
    ae = AE(ae_title=ae_title)
    ae.requested_contexts = contexts
    ae.acse_timeout = 30
    ae.dimse_timeout = 120
    ae.network_timeout = 120
    assoc = ae.associate(device.host, device.port, ae_title=device.ae_title)
    if assoc.is_established:
        _no_delay(assoc)
    return assoc


def _no_delay(assoc: Association) -> None:
    sock = getattr(getattr(assoc.dul, "socket", None), "socket", None)
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


# PS3.8 9.3.5 and Annex E: a P-DATA-TF PDU holding one PDV item (PDU type, reserved, PDU
# length; item length, presentation context ID, message control header).
_PDATA_TF = struct.Struct(">BBLLBB")
_PDV_OVERHEAD = 6  # item length (4) + context ID (1) + message control header (1)
# PS3.8 E.2 message control header: bit 0 set for a command, bit 1 for the last fragment.
_COMMAND_FRAGMENT = 0x01
_COMMAND_LAST_FRAGMENT = 0x03
_DATASET_FRAGMENT = 0x00
_DATASET_LAST_FRAGMENT = 0x02
_READ_CHUNK = 4 * 1024 * 1024
_UNLIMITED_FRAGMENT = 1024 * 1024  # a peer maximum PDU length of 0 means "no limit"
_ELEMENT = struct.Struct("<HHL")  # Implicit VR Little Endian element header: tag, length
_US = struct.Struct("<H")
_UL = struct.Struct("<L")
# PS3.10 7.1: preamble, "DICM", then (0002,0000) File Meta Information Group Length (UL),
# which gives the offset of the dataset without parsing the file meta.
_GROUP_LENGTH_ELEMENT = b"DICM\x02\x00\x00\x00UL\x04\x00"


class DirectStore:
    """C-STORE requests for stored files written straight to the association's socket.

    pynetdicom builds every P-DATA-TF PDU in Python and hands them to its DUL thread one
    per loop (measured: most of the time of an "as is" retrieve). Here the command and the
    file's dataset bytes are packed into P-DATA-TF PDUs of the peer's maximum length
    (PS3.8 9.3.5) and written with one ``sendall`` per 4 MB of the file. Everything else
    stays with pynetdicom: the negotiated contexts and maximum PDU length, the reading and
    reassembly of the C-STORE response, C-CANCEL, release and abort. pynetdicom's own
    writes on the same socket (a pending C-GET response) take the same lock, and a message
    is only started once its queue is empty, so no two messages' PDUs interleave (PS3.8
    9.3.5.1).
    """

    def __init__(self, assoc: Association, sock: socket.socket) -> None:
        self.assoc = assoc
        self.sock = sock
        self._lock = threading.Lock()
        self._reactor_paused = False
        transport = assoc.dul.socket
        unlocked_send = transport.send

        def locked_send(data: bytes) -> None:
            with self._lock:
                unlocked_send(data)

        # The DUL thread writes through AssociationSocket.send (pynetdicom.dul._send).
        transport.send = locked_send
        peer_maximum = assoc.dimse.maximum_pdu_size
        self.fragment = (peer_maximum - _PDV_OVERHEAD) if peer_maximum else _UNLIMITED_FRAGMENT
        self.chunk = max(1, _READ_CHUNK // self.fragment) * self.fragment

    @classmethod
    def attach(cls, assoc: Association) -> DirectStore | None:
        """The direct path for an association, or None where it does not apply (a socket
        that is not a plain TCP socket, such as TLS, whose records pynetdicom writes)."""
        existing = getattr(assoc, "_vesalius_direct_store", None)
        if existing is not None:
            return existing
        sock = getattr(getattr(assoc.dul, "socket", None), "socket", None)
        if type(sock) is not socket.socket or not assoc.is_established:
            return None
        direct = cls(assoc, sock)
        assoc._vesalius_direct_store = direct
        return direct

    def store(
        self,
        path: Path,
        context_id: int,
        request: C_STORE,
    ) -> int | None:
        """Send the file's dataset as it is in a C-STORE request; the response status, or
        None when no valid response came (timeout, abort)."""
        with open(path, "rb") as file:
            size = os.fstat(file.fileno()).st_size
            chunk = file.read(self.chunk)
            offset = _dataset_offset(chunk, path)
            command = c_store_command(request)
            self._pause_reactor()
            self._wait_for_queued_pdus()
            with self._lock:
                try:
                    self._send_message(context_id, command, chunk, offset, size, file)
                except OSError:
                    # A PDU may be cut short: the association cannot go on (PS3.8 9.1.6).
                    self.assoc.abort()
                    raise
        _, response = self.assoc.dimse.get_msg(block=True)
        if (
            not isinstance(response, C_STORE)
            or response.MessageIDBeingRespondedTo != request.MessageID
            or not response.is_valid_response
        ):
            if self.assoc.is_established:
                logger.warning("No valid C-STORE response from the peer: aborting")
                self.assoc.abort()
            return None
        return int(response.Status)

    def _send_message(
        self, context_id: int, command: bytes, chunk: bytes, offset: int, size: int, file
    ) -> None:
        buffers = self._pdus(
            context_id, memoryview(command), _COMMAND_FRAGMENT, _COMMAND_LAST_FRAGMENT
        )
        data = memoryview(chunk)[offset:]
        position = len(chunk)
        while True:
            is_last_chunk = position >= size
            last_header = _DATASET_LAST_FRAGMENT if is_last_chunk else _DATASET_FRAGMENT
            buffers += self._pdus(context_id, data, _DATASET_FRAGMENT, last_header)
            self.sock.sendall(b"".join(buffers))
            if is_last_chunk:
                return
            chunk = file.read(self.chunk)
            if not chunk:
                raise OSError("the file is shorter than its size")
            position += len(chunk)
            data = memoryview(chunk)
            buffers = []

    def _pdus(
        self, context_id: int, data: memoryview, header: int, last_header: int
    ) -> list[bytes | memoryview]:
        """P-DATA-TF PDUs of one PDV each for ``data``, the last one flagged with
        ``last_header`` (an empty fragment if there is no data, so a message always ends)."""
        buffers: list[bytes | memoryview] = []
        for start in range(0, max(len(data), 1), self.fragment):
            piece = data[start : start + self.fragment]
            control = last_header if start + self.fragment >= len(data) else header
            item_length = len(piece) + 2  # context ID and message control header
            pdu_length = item_length + 4
            header_bytes = _PDATA_TF.pack(0x04, 0, pdu_length, item_length, context_id, control)
            buffers += (header_bytes, piece)
        return buffers

    def _wait_for_queued_pdus(self) -> None:
        """Let the DUL thread take what pynetdicom queued before (its last PDU is then
        written under the lock, before or after this message, never inside it)."""
        queue = self.assoc.dul.to_provider_queue
        while queue.qsize():
            time.sleep(0.0001)

    def _pause_reactor(self) -> None:
        """On an association we requested, pynetdicom's reactor thread would take the
        C-STORE response off the DIMSE queue; it is paused (as pynetdicom's own
        send_c_store does) until :meth:`close`. On an association the peer requested the
        reactor is the thread running this C-GET."""
        if self.assoc.is_requestor and not self._reactor_paused:
            self.assoc._reactor_checkpoint.clear()
            while not self.assoc._is_paused and self.assoc.is_established:
                time.sleep(0.0001)
            self._reactor_paused = True

    def close(self) -> None:
        if self._reactor_paused:
            self.assoc._reactor_checkpoint.set()
            self._reactor_paused = False


def c_store_command(request: C_STORE) -> bytes:
    """The C-STORE-RQ command set (PS3.7 9.3.1.1) in Implicit VR Little Endian (PS3.7 6.3.1),
    packed directly: pynetdicom's message classes cost about a millisecond per request."""
    elements = [
        (0x0002, _even(request.AffectedSOPClassUID.encode("ascii"), b"\0")),
        (0x0100, _US.pack(0x0001)),  # CommandField: C-STORE-RQ
        (0x0110, _US.pack(request.MessageID)),
        (0x0700, _US.pack(request.Priority)),
        (0x0800, _US.pack(0x0001)),  # CommandDataSetType: a dataset is present
        (0x1000, _even(request.AffectedSOPInstanceUID.encode("ascii"), b"\0")),
    ]
    if request.MoveOriginatorApplicationEntityTitle:
        title = request.MoveOriginatorApplicationEntityTitle.strip().encode("ascii")
        elements.append((0x1030, _even(title, b" ")))
    if request.MoveOriginatorMessageID is not None:
        elements.append((0x1031, _US.pack(request.MoveOriginatorMessageID)))
    body = b"".join(_ELEMENT.pack(0, element, len(value)) + value for element, value in elements)
    return _ELEMENT.pack(0, 0x0000, 4) + _UL.pack(len(body)) + body


def _even(value: bytes, padding: bytes) -> bytes:
    return value + padding if len(value) % 2 else value


def _dataset_offset(head: bytes, path: Path) -> int:
    """Where the dataset starts in a Part 10 file (after the file meta information)."""
    if head[128:140] == _GROUP_LENGTH_ELEMENT:
        return 144 + int.from_bytes(head[140:144], "little")
    return split_dataset(path)[1]


@dataclass(frozen=True)
class SendResult:
    """One C-STORE sub-operation: its status category and, on failure, why."""

    category: str  # "success", "warning" or "failure"
    status: int | None
    reason: str = ""


class InstanceSender:
    """Sends stored instances over an established association, whichever side opened it
    (ours for C-MOVE, the peer's for C-GET)."""

    def __init__(
        self,
        assoc: Association,
        policy: SendPolicy,
        *,
        temp_dir: Path,
        originator_ae_title: str | None = None,
        originator_message_id: int | None = None,
    ) -> None:
        self.assoc = assoc
        self.policy = policy
        self.temp_dir = temp_dir
        self.originator_ae_title = originator_ae_title
        self.originator_message_id = originator_message_id
        self._next_message_id = 1
        self._direct: DirectStore | None = None

    def _direct_store(self) -> DirectStore | None:
        if self._direct is None:
            self._direct = DirectStore.attach(self.assoc)
        return self._direct

    def _request(self, instance: Instance, message_id: int) -> tuple[int, C_STORE]:
        """The accepted context for the stored syntax and the C-STORE request (PS3.7 9.1.1)."""
        context_id = next(
            cx.context_id
            for cx in self.assoc.accepted_contexts
            if cx.abstract_syntax == instance.sop_class_uid
            and cx.transfer_syntax[0] == instance.transfer_syntax_uid
            and cx.as_scu
        )
        request = C_STORE()
        request.MessageID = message_id
        request.Priority = 0x0002  # low, as pynetdicom sends
        request.AffectedSOPClassUID = instance.sop_class_uid
        request.AffectedSOPInstanceUID = instance.sop_instance_uid
        request.MoveOriginatorApplicationEntityTitle = self.originator_ae_title
        request.MoveOriginatorMessageID = self.originator_message_id
        return context_id, request

    def accepted_syntaxes(self, sop_class_uid: str) -> set[str]:
        return {
            str(cx.transfer_syntax[0])
            for cx in self.assoc.accepted_contexts
            if cx.abstract_syntax == sop_class_uid and cx.as_scu
        }

    def send(self, instance: Instance) -> SendResult:
        path = Path(instance.storage.path) / instance.relative_path
        if not path.is_file():
            return self._failed(instance, "the stored file is missing")
        accepted = self.accepted_syntaxes(instance.sop_class_uid)
        if not accepted:
            return self._failed(instance, "the receiver accepted no context for its SOP class")
        reasons = []
        for syntax in self.policy.candidates(instance.transfer_syntax_uid):
            if syntax not in accepted:
                continue
            if syntax == instance.transfer_syntax_uid:
                return self._store(instance, path, as_stored=True)
            with tempfile.TemporaryDirectory(dir=self.temp_dir) as work:
                converted = Path(work) / "instance.dcm"
                try:
                    from studies import transcoding

                    transcoding.transcode_file(path, syntax, converted, quality=self.policy.quality)
                except Exception as exc:  # TranscodeError, or a decoder's own error
                    reasons.append(f"{syntax}: {exc}")
                    continue
                return self._store(instance, converted)
        reason = "; ".join(reasons) or "no accepted transfer syntax it can be sent in"
        return self._failed(instance, reason)

    def close(self) -> None:
        """Hand the association back to pynetdicom alone (after the last send)."""
        if self._direct is not None:
            self._direct.close()

    def _store(self, instance: Instance, path: Path, *, as_stored: bool = False) -> SendResult:
        message_id = self._next_message_id
        self._next_message_id = message_id % 65535 + 1
        try:
            if as_stored and (direct := self._direct_store()) is not None:
                status = direct.store(path, *self._request(instance, message_id))
            else:
                rsp = self.assoc.send_c_store(
                    path,
                    msg_id=message_id,
                    originator_aet=self.originator_ae_title,
                    originator_id=self.originator_message_id,
                )
                status = int(rsp.Status) if "Status" in rsp else None
        except Exception as exc:
            return self._failed(instance, f"C-STORE failed: {exc}")
        if status is None:
            return self._failed(instance, "no response (association lost or timed out)")
        if status == 0x0000:
            return SendResult("success", status)
        if status in (0x0001, 0x0107, 0x0116) or status >> 12 == 0xB:
            return SendResult("warning", status)
        return self._failed(instance, f"the receiver answered 0x{status:04X}", status)

    def _failed(self, instance: Instance, reason: str, status: int | None = None) -> SendResult:
        logger.warning("Sending %s failed: %s", instance.sop_instance_uid, reason)
        return SendResult("failure", status, reason)
