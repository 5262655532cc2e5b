"""C-STORE requests of stored files written straight to an association's socket: the fast
path of the one sender (:mod:`studies.services.sending`) for files sent as they are.

Why: pynetdicom builds every P-DATA-TF PDU in Python, hands them to its DUL thread one per
loop, and picks up each response in a thread that polls every millisecond; measured, that
was nearly all the time of an "as is" C-GET or C-MOVE (docs/performance.md). Here:

- the C-STORE-RQ command set is packed in Implicit VR Little Endian (PS3.7 6.3.1, 9.3.1.1);
- the command and the file's dataset bytes go out as P-DATA-TF PDUs of one PDV each, of the
  peer's maximum PDU length (PS3.8 9.3.5, Annex E), from a reused buffer, with one
  ``sendmsg`` per 4 MB of the file;
- the C-STORE-RSP is read from the socket by the sending thread itself, without waiting for
  pynetdicom's polling loop. Anything else that arrives meanwhile (a C-CANCEL, A-RELEASE,
  A-ABORT) is handed to pynetdicom's DUL exactly as its own reader would have queued it.

pynetdicom keeps everything else: negotiation (context IDs, maximum PDU length), pending and
final C-MOVE/C-GET responses, cancel bookkeeping, release and abort. Its writes on the same
socket take the same lock, and a message starts only once pynetdicom's send queue is empty,
so the PDUs of two messages never interleave (PS3.8 9.3.5.1); its reader stands aside from
the moment a request is written until its response is read here. This touches pynetdicom
internals of the 3.0 series (the DUL's queues, transport-event check and idle timer), which
pyproject.toml pins.
"""

from __future__ import annotations

import logging
import os
import select
import socket
import struct
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from pynetdicom.association import Association
from pynetdicom.dsutils import split_dataset

logger = logging.getLogger(__name__)

# PS3.8 9.3.1: PDU type, reserved, PDU length. 9.3.5.1: PDV item length, presentation
# context ID; E.2: message control header (bit 0 command, bit 1 last fragment).
_PDU_HEADER = struct.Struct(">BBL")
_PDATA_TF = struct.Struct(">BBLLBB")
_PDV_HEADER = struct.Struct(">LBB")
P_DATA_TF = 0x04
_PDV_OVERHEAD = 6  # item length (4) + context ID (1) + message control header (1)
_COMMAND_BIT = 0x01
_LAST_FRAGMENT_BIT = 0x02
_READ_CHUNK = 4 * 1024 * 1024
_UNLIMITED_FRAGMENT = 1024 * 1024  # a peer maximum PDU length of 0 means "no limit"
_IOVECS_PER_CALL = 512  # below IOV_MAX (1024 on Linux)
# Implicit VR Little Endian element header: group, element, value length.
_ELEMENT = struct.Struct("<HHL")
_US = struct.Struct("<H")
_UL = struct.Struct("<L")
_C_STORE_RQ, _C_STORE_RSP = 0x0001, 0x8001  # (0000,0100) Command Field, PS3.7 E.1
# PS3.10 7.1: preamble, "DICM", then (0002,0000) File Meta Information Group Length (UL),
# which gives the offset of the dataset without parsing the file meta.
_GROUP_LENGTH_ELEMENT = b"DICM\x02\x00\x00\x00UL\x04\x00"


@dataclass(frozen=True)
class StoreRequest:
    """The parameters of a C-STORE request (PS3.7 9.1.1.1) as plain values: pynetdicom's
    C_STORE primitive validates each UID on assignment, for every instance."""

    message_id: int
    sop_class_uid: str
    sop_instance_uid: str
    priority: int = 0x0002  # LOW, as pynetdicom sends by default
    move_originator_ae_title: str | None = None
    move_originator_message_id: int | None = None


class NoResponse(Exception):
    """No valid C-STORE response came: the association is aborted or lost."""


class DirectStore:
    """The fast C-STORE path of one association (see the module docstring)."""

    def __init__(self, assoc: Association, sock: socket.socket) -> None:
        self.assoc = assoc
        self.sock = sock
        self._write_lock = threading.Lock()
        self._read_lock = threading.Lock()
        self._guard_in_use = threading.Event()
        peer_maximum = assoc.dimse.maximum_pdu_size
        self.fragment = (peer_maximum - _PDV_OVERHEAD) if peer_maximum else _UNLIMITED_FRAGMENT
        self.chunk = max(1, _READ_CHUNK // self.fragment) * self.fragment
        self._buffer = bytearray(self.chunk)
        self._share_the_socket_with_pynetdicom()

    @classmethod
    def attach(cls, assoc: Association) -> DirectStore | None:
        """The fast path of an association, or None where it does not apply: a socket that
        is not a plain TCP socket (TLS records are pynetdicom's to write)."""
        existing = getattr(assoc, "_vesalius_direct_store", None)
        if existing is not None:
            return existing
        sock = getattr(getattr(assoc.dul, "socket", None), "socket", None)
        if type(sock) is not socket.socket or not assoc.is_established:
            return None
        direct = cls(assoc, sock)
        assoc._vesalius_direct_store = direct
        return direct

    def _share_the_socket_with_pynetdicom(self) -> None:
        transport, dul = self.assoc.dul.socket, self.assoc.dul
        unlocked_send = transport.send
        unguarded_check = dul._is_transport_event
        write_lock, read_lock = self._write_lock, self._read_lock

        def locked_send(data: bytes) -> None:
            with write_lock:
                unlocked_send(data)

        guard_in_use = self._guard_in_use

        def guarded_check() -> bool:
            # While a response is read here, pynetdicom's reader sees no incoming data.
            guard_in_use.set()
            if not read_lock.acquire(blocking=False):
                return False
            try:
                return unguarded_check()
            finally:
                read_lock.release()

        transport.send = locked_send  # what pynetdicom's DUL writes PDUs through
        dul._is_transport_event = guarded_check  # what its reactor reads PDUs through

    def store(self, path: Path, context_id: int, request: StoreRequest) -> int:
        """Send the file's dataset as it is in a C-STORE request and return the response
        status; :class:`NoResponse` (after aborting) when none came."""
        if not self.assoc.is_established:
            raise NoResponse("the association is no longer established")
        with open(path, "rb", buffering=0) as file:
            size = os.fstat(file.fileno()).st_size
            view = memoryview(self._buffer)
            length = file.readinto(view[: min(size, self.chunk)])
            offset = dataset_offset(bytes(view[: min(length, 144)]), path)
            command = c_store_command(request)
            self._wait_for_the_guard()
            self._wait_for_queued_pdus()
            # Reading is ours from before the request leaves, so that pynetdicom's reader
            # cannot take the response first.
            with self._read_lock:
                with self._write_lock:
                    try:
                        self._send_message(context_id, command, view, length, offset, size, file)
                    except OSError as exc:
                        # A PDU may have been cut short: the association cannot go on.
                        self.assoc.abort()
                        raise NoResponse(f"sending failed: {exc}") from exc
                return self._read_response(context_id, request.message_id)

    def _send_message(self, context_id, command, view, length, offset, size, file) -> None:
        buffers = self._pdus(context_id, memoryview(command), _COMMAND_BIT)
        data, position = view[offset:length], length
        while True:
            is_last_chunk = position >= size
            buffers += self._pdus(context_id, data, 0, ends_message=is_last_chunk)
            self._send_buffers(buffers)
            if is_last_chunk:
                return
            length = file.readinto(view[: min(size - position, self.chunk)])
            if not length:
                raise OSError("the file is shorter than its size")
            data, position = view[:length], position + length
            buffers = []

    def _pdus(
        self, context_id: int, data: memoryview, kind: int, *, ends_message: bool = True
    ) -> list[bytes | memoryview]:
        """P-DATA-TF PDUs of one PDV each for ``data``; the last fragment of the message
        is flagged (an empty one if there is no data, so a message always ends)."""
        buffers: list[bytes | memoryview] = []
        for start in range(0, max(len(data), 1), self.fragment):
            piece = data[start : start + self.fragment]
            is_last = ends_message and start + self.fragment >= len(data)
            control = kind | (_LAST_FRAGMENT_BIT if is_last else 0)
            item_length = len(piece) + 2  # context ID and message control header
            pdu_length = item_length + 4
            buffers.append(
                _PDATA_TF.pack(P_DATA_TF, 0, pdu_length, item_length, context_id, control)
            )
            buffers.append(piece)
        return buffers

    def _send_buffers(self, buffers: list[bytes | memoryview]) -> None:
        views = [memoryview(buffer) for buffer in buffers]
        index = 0
        while index < len(views):
            sent = self.sock.sendmsg(views[index : index + _IOVECS_PER_CALL])
            while sent:
                if sent >= len(views[index]):
                    sent -= len(views[index])
                    index += 1
                else:
                    views[index] = views[index][sent:]
                    sent = 0
            while index < len(views) and not len(views[index]):
                index += 1

    def _wait_for_the_guard(self) -> None:
        """Before the first request: wait until pynetdicom's reactor has called the guarded
        check once. Until then it may still be inside the check it started before the guard
        was put in, and could read the response itself (it would then wait in pynetdicom's
        queue, unseen here)."""
        deadline = time.monotonic() + 5
        while not self._guard_in_use.wait(0.01):
            if not self.assoc.dul.is_alive() or time.monotonic() > deadline:
                raise NoResponse("pynetdicom's reactor is not running")

    def _wait_for_queued_pdus(self) -> None:
        """Let the DUL thread take what pynetdicom queued before (its last PDU is then
        written under the lock, before or after this message, never inside it)."""
        dul = self.assoc.dul
        while dul.to_provider_queue.qsize():
            if not dul.is_alive() or not self.assoc.is_established:
                raise NoResponse("the association ended")
            time.sleep(0.0001)

    def _read_response(self, context_id: int, message_id: int) -> int:
        """Read PDUs until the C-STORE-RSP to ``message_id``; hand any other PDU to
        pynetdicom. PS3.7 9.3.1.2: the response is a command without a dataset."""
        command = bytearray()
        while True:
            pdu = self._receive_pdu()
            if pdu[0] == P_DATA_TF and self._only_commands_of(pdu, context_id):
                for fragment, last in _pdv_fragments(pdu):
                    command += fragment
                    if last:
                        return self._status_of(bytes(command), message_id)
                continue
            self._hand_to_pynetdicom(pdu)
            if pdu[0] != P_DATA_TF:  # release request, abort: the association ends
                raise NoResponse("the association ended before the C-STORE response")

    def _receive_pdu(self) -> bytes:
        timeout = self.assoc.dimse_timeout
        ready, _, _ = select.select([self.sock], [], [], timeout)
        if not ready:
            logger.warning("No C-STORE response within the DIMSE timeout: aborting")
            self.assoc.abort()
            raise NoResponse("DIMSE timeout")
        try:
            header = self._receive_exactly(6)
            _, _, length = _PDU_HEADER.unpack(header)
            pdu = header + self._receive_exactly(length)
        except OSError as exc:
            self.assoc.dul.event_queue.put("Evt17")  # transport connection closed
            raise NoResponse(f"connection lost: {exc}") from exc
        self.assoc.dul._idle_timer.restart()  # as pynetdicom's reader does on each PDU
        return pdu

    def _receive_exactly(self, count: int) -> bytes:
        data = bytearray()
        while len(data) < count:
            piece = self.sock.recv(count - len(data))
            if not piece:
                raise ConnectionResetError("the peer closed the connection")
            data += piece
        return bytes(data)

    @staticmethod
    def _only_commands_of(pdu: bytes, context_id: int) -> bool:
        position = 6
        while position < len(pdu):
            item_length, pdv_context, control = _PDV_HEADER.unpack_from(pdu, position)
            if pdv_context != context_id or not control & _COMMAND_BIT:
                return False
            position += 4 + item_length
        return position == len(pdu)

    def _status_of(self, command: bytes, message_id: int) -> int:
        values = command_values(command)
        field = values.get(0x0100)
        responded_to = values.get(0x0120)
        status = values.get(0x0900)
        if (
            field is None
            or _US.unpack(field)[0] != _C_STORE_RSP
            or responded_to is None
            or _US.unpack(responded_to)[0] != message_id
            or status is None
        ):
            logger.warning("An unexpected message instead of the C-STORE response: aborting")
            self.assoc.abort()
            raise NoResponse("unexpected message instead of the C-STORE response")
        return _US.unpack(status)[0]

    def _hand_to_pynetdicom(self, pdu: bytes) -> None:
        """Queue a PDU for pynetdicom's DUL as its own reader does (dul._read_pdu_data):
        the decoded PDU first, then its state machine event."""
        dul = self.assoc.dul
        try:
            decoded, event = dul._decode_pdu(bytearray(pdu))
        except Exception:
            dul.event_queue.put("Evt19")  # invalid PDU (PS3.8 9.2, table 9-10)
            return
        dul._recv_pdu.put(decoded)
        dul.event_queue.put(event)


def c_store_command(request: StoreRequest) -> bytes:
    """The C-STORE-RQ command set (PS3.7 9.3.1.1) in Implicit VR Little Endian (PS3.7 6.3.1),
    packed directly: pynetdicom's message classes cost about a millisecond per request."""
    elements = [
        (0x0002, _even(request.sop_class_uid.encode("ascii"), b"\0")),
        (0x0100, _US.pack(_C_STORE_RQ)),
        (0x0110, _US.pack(request.message_id)),
        (0x0700, _US.pack(request.priority)),
        (0x0800, _US.pack(0x0001)),  # CommandDataSetType: a dataset follows
        (0x1000, _even(request.sop_instance_uid.encode("ascii"), b"\0")),
    ]
    if request.move_originator_ae_title:
        title = request.move_originator_ae_title.strip().encode("ascii")
        elements.append((0x1030, _even(title, b" ")))
    if request.move_originator_message_id is not None:
        elements.append((0x1031, _US.pack(request.move_originator_message_id)))
    body = b"".join(_ELEMENT.pack(0, element, len(value)) + value for element, value in elements)
    return _ELEMENT.pack(0, 0x0000, 4) + _UL.pack(len(body)) + body


def command_values(command: bytes) -> dict[int, bytes]:
    """The raw values of a command set's elements by element number (group 0000)."""
    values: dict[int, bytes] = {}
    position = 0
    while position + 8 <= len(command):
        _, element, length = _ELEMENT.unpack_from(command, position)
        values[element] = command[position + 8 : position + 8 + length]
        position += 8 + length
    return values


def dataset_offset(head: bytes, path: Path) -> int:
    """Where the dataset starts in a Part 10 file (after the file meta information)."""
    if head[128:140] == _GROUP_LENGTH_ELEMENT:
        return 144 + int.from_bytes(head[140:144], "little")
    return split_dataset(path)[1]


def _pdv_fragments(pdu: bytes):
    """(fragment, is last) for each PDV of a P-DATA-TF PDU."""
    position = 6
    while position < len(pdu):
        item_length, _, control = _PDV_HEADER.unpack_from(pdu, position)
        yield pdu[position + 6 : position + 4 + item_length], bool(control & _LAST_FRAGMENT_BIT)
        position += 4 + item_length


def _even(value: bytes, padding: bytes) -> bytes:
    return value + padding if len(value) % 2 else value
