"""The one sender [QR-2], [QR-3]: every outgoing C-STORE (C-MOVE and C-GET sub-operations,
later forwarding and send-to-device) goes through :class:`InstanceSender`.

It picks the transfer syntax of each instance by [QR-3] — the device's preferred syntax if
the receiver accepted it (lossy only when the device allows lossy), else the stored one, else
Explicit VR Little Endian — transcodes when needed, and sends the file's bytes as they are
(no decode and re-encode) when the stored syntax is used, so "as is" is byte-identical.
"""

from __future__ import annotations

import functools
import logging
import socket
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE, _config
from pynetdicom.association import Association
from pynetdicom.presentation import PresentationContext, build_context

from devices.choices import AS_IS
from pacs.dimse.scu import keep_responses_for_sender
from studies.models import Instance
from studies.services.direct_store import DirectStore, NoResponse, StoreRequest

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
        return list(_candidates(self, stored_transfer_syntax))


@functools.lru_cache(maxsize=256)
def _candidates(policy: SendPolicy, stored_transfer_syntax: str) -> tuple[str, ...]:
    """SendPolicy.candidates, computed once per policy and stored syntax (it is asked for
    every instance sent)."""
    ordered = []
    preferred = policy.preferred_transfer_syntax
    if preferred not in (AS_IS, stored_transfer_syntax) and _can_transcode(
        stored_transfer_syntax, preferred, policy.allow_lossy
    ):
        ordered.append(preferred)
    ordered.append(stored_transfer_syntax)
    for fallback in (str(ExplicitVRLittleEndian), str(ImplicitVRLittleEndian)):
        if fallback not in ordered and _can_transcode(
            stored_transfer_syntax, fallback, policy.allow_lossy
        ):
            ordered.append(fallback)
    if preferred == stored_transfer_syntax:
        ordered.remove(preferred)
        ordered.insert(0, preferred)
    return tuple(ordered)


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
        keep_responses_for_sender(assoc)
    return assoc


def _no_delay(assoc: Association) -> None:
    sock = getattr(getattr(assoc.dul, "socket", None), "socket", None)
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


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
        self._contexts: dict[str, dict[str, int]] | None = None

    def _direct_store(self) -> DirectStore | None:
        if self._direct is None:
            self._direct = DirectStore.attach(self.assoc)
        return self._direct

    def _accepted_contexts(self) -> dict[str, dict[str, int]]:
        """SOP class -> transfer syntax -> context ID of the contexts we may send on, read
        once (pynetdicom rebuilds and sorts the list on each access)."""
        if self._contexts is None:
            self._contexts = {}
            for cx in self.assoc.accepted_contexts:
                if cx.as_scu:
                    syntaxes = self._contexts.setdefault(str(cx.abstract_syntax), {})
                    syntaxes.setdefault(str(cx.transfer_syntax[0]), cx.context_id)
        return self._contexts

    def _request(self, instance: Instance, message_id: int) -> tuple[int, StoreRequest]:
        """The accepted context for the stored syntax and the C-STORE request (PS3.7 9.1.1)."""
        context_id = self._accepted_contexts()[instance.sop_class_uid][instance.transfer_syntax_uid]
        request = StoreRequest(
            message_id,
            instance.sop_class_uid,
            instance.sop_instance_uid,
            move_originator_ae_title=self.originator_ae_title,
            move_originator_message_id=self.originator_message_id,
        )
        return context_id, request

    def accepted_syntaxes(self, sop_class_uid: str) -> set[str]:
        return set(self._accepted_contexts().get(sop_class_uid, ()))

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
        except NoResponse as exc:
            return self._failed(instance, f"no response: {exc}")
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
