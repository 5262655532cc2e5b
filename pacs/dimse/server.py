"""The DICOM SCP: builds the application entity, binds each app's DIMSE handlers and serves
associations until told to stop.

Speed notes (measured, see docs/performance.md): every accepted socket gets TCP_NODELAY, the
AE offers a large maximum PDU, and C-STORE datasets are received straight into a file in the
temp folder (pynetdicom's chunked receive), which the ingest service moves into storage. The
listening socket sets SO_REUSEPORT so several SCP processes share one port: the kernel
spreads associations across them, and each process uses its own core.
"""

from __future__ import annotations

import logging
import socket
import tempfile
import threading
import time
from pathlib import Path

from django.conf import settings
from django.db import close_old_connections, connections
from pydicom import config as pydicom_config
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, DEFAULT_TRANSFER_SYNTAXES, _config, evt
from pynetdicom.association import Association
from pynetdicom.dimse_primitives import C_GET, C_MOVE
from pynetdicom.presentation import AllStoragePresentationContexts
from pynetdicom.service_class import ServiceClass, StorageServiceClass
from pynetdicom.sop_class import (
    ModalityPerformedProcedureStep,
    ModalityWorklistInformationFind,
    Verification,
    register_uid,
    uid_to_service_class,
)
from pynetdicom.transport import RequestHandler, ThreadedAssociationServer

from devices import acl
from pacs.config import get_runtime_settings
from pacs.dimse import status
from studies.dimse import FIND_QUERY_MODELS, handle_find, handle_sop_extended, handle_store
from studies.retrieve import QUERY_MODELS as RETRIEVE_QUERY_MODELS
from studies.retrieve import RetrieveServiceClass
from worklist.dimse import handle_mwl_find, handle_n_create, handle_n_set

logger = logging.getLogger(__name__)

UNCOMPRESSED_IDENTIFIER_SYNTAXES = [
    ImplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ExplicitVRBigEndian,
]
# Where a peer offers several syntaxes in one context, the first we support wins: Explicit
# VR Little Endian first keeps the VRs (and is what most archives store), so a C-GET of
# such files needs no transcoding.
STORAGE_SYNTAXES = [ExplicitVRLittleEndian] + [
    syntax for syntax in ALL_TRANSFER_SYNTAXES if syntax != ExplicitVRLittleEndian
]

# Receive C-STORE datasets into a temp file instead of memory (see module docstring).
_config.STORE_RECV_CHUNKED_DATASET = True
# Indexing reads values, it does not vet them: pydicom's per-value checks (a regex per
# element, with a warning for each odd value) cost a sizeable share of the header read.
pydicom_config.settings.reading_validation_mode = pydicom_config.IGNORE
# Patient data stays out of the logs (DESIGN §5).
_config.LOG_RESPONSE_IDENTIFIERS = False
_config.LOG_REQUEST_IDENTIFIERS = False

# An AE title no peer can have (backslash is not allowed in the AE VR): the list of accepted
# calling AE titles when no device is configured and accept-any is off.
_NOBODY = "\\"


class PacsAE(AE):
    """An AE whose accepted calling AE titles follow the device table and the accept-any
    setting at the moment each association is requested [DEV-ACL]."""

    @property
    def require_calling_aet(self) -> list[str]:  # type: ignore[override]
        if get_runtime_settings().accept_any_ae:
            return []
        return list(acl._devices()) or [_NOBODY]

    @require_calling_aet.setter
    def require_calling_aet(self, ae_titles: list[str]) -> None:
        """Ignored: the device table decides (the base class sets [] at construction)."""


class _SharedContexts(list):
    """The server's supported contexts, shared read-only by every association.

    pynetdicom deep-copies them for each association; with every storage SOP class in
    every transfer syntax that copy costs ~150 ms per association. Negotiation only reads
    them (``negotiate_as_acceptor`` builds new result contexts), so sharing is safe."""

    def __deepcopy__(self, memo: dict) -> _SharedContexts:
        return self


class PacsAssociation(Association):
    """An acceptor association whose C-MOVE and C-GET requests go to our retrieve service
    (studies.retrieve); everything else is served as pynetdicom does."""

    def _serve_request(self, msg, context_id: int) -> None:
        context = self._accepted_cx.get(context_id)
        if (
            isinstance(msg, C_GET | C_MOVE)
            and msg.is_valid_request
            and context is not None
            and str(context.abstract_syntax) in RETRIEVE_QUERY_MODELS
        ):
            self.dimse.cancel_req = {}
            self._is_paused = True
            try:
                RetrieveServiceClass(self).SCP(msg, context)
            except Exception:
                logger.exception("C-MOVE/C-GET failed; aborting the association")
                self.abort()
            finally:
                self._is_paused = False
                self.dimse.cancel_req = {}
            return
        super()._serve_request(msg, context_id)


class PacsRequestHandler(RequestHandler):
    """Closes the association thread's database connection when the association ends."""

    def _create_association(self):
        assoc = super()._create_association()
        assoc.__class__ = PacsAssociation  # same state, our C-MOVE/C-GET dispatch
        run = assoc.run

        def run_then_close_connections() -> None:
            try:
                run()
            finally:
                connections.close_all()

        assoc.run = run_then_close_connections  # type: ignore[method-assign]
        return assoc


_ACCEPT_DELAY_PER_ASSOCIATION = 0.005
_ACCEPT_DELAY_MAX = 0.05


class PacsAssociationServer(ThreadedAssociationServer):
    """Threaded association server for the PACS.

    - TCP_NODELAY on every accepted socket.
    - Either binds its own socket with SO_REUSEPORT, or serves a listening socket inherited
      from the ``runscp`` supervisor (``listen_fd``). With an inherited socket the worker
      processes race to accept each connection: the least busy one wins, which spreads
      associations more evenly than SO_REUSEPORT's hashing. A process that loses the race
      gets EAGAIN from its non-blocking accept and goes back to waiting; a worker already
      serving associations waits a few milliseconds per association before it tries.
    """

    daemon_threads = True
    request_queue_size = 128  # socketserver's default of 5 drops bursts of associations

    def __init__(self, *args, listen_fd: int | None = None, **kwargs) -> None:
        self._listen_fd = listen_fd
        super().__init__(*args, **kwargs)

    def server_bind(self) -> None:
        if self._listen_fd is not None:
            self.socket.close()
            self.socket = socket.socket(fileno=self._listen_fd)
            self.socket.setblocking(False)
            self.server_address = self.socket.getsockname()
            return
        if hasattr(socket, "SO_REUSEPORT"):
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        super().server_bind()

    def server_activate(self) -> None:
        if self._listen_fd is None:
            super().server_activate()

    def get_request(self):
        if self._listen_fd is not None:
            # Let a less busy worker win the race: wait a little per running association.
            busy = len(self.active_associations)
            if busy:
                time.sleep(min(_ACCEPT_DELAY_PER_ASSOCIATION * busy, _ACCEPT_DELAY_MAX))
        client_socket, address = super().get_request()
        client_socket.setblocking(True)
        client_socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return client_socket, address


def listening_socket(host: str, port: int) -> socket.socket:
    """The socket the ``runscp`` supervisor opens once and hands to its workers."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if hasattr(socket, "SO_REUSEPORT"):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(PacsAssociationServer.request_queue_size)
    sock.set_inheritable(True)
    return sock


def handle_echo(event: evt.Event) -> int:
    """C-ECHO (Verification, PS3.4 A.4): any accepted association may echo."""
    return status.SUCCESS


def _log_rejection(event: evt.Event) -> None:
    """Say why an association was rejected (pynetdicom only logs that it was)."""
    calling = event.assoc.requestor.ae_title
    decision = acl.may_associate(calling)
    if not decision.allowed:
        logger.warning(
            "Association from %s (%s) rejected: %s",
            calling,
            event.assoc.requestor.address,
            decision.reason,
        )


def _pacs_ae() -> PacsAE:
    ae = PacsAE(ae_title=get_runtime_settings().ae_title)
    ae.maximum_pdu_size = settings.PACS_MAX_PDU
    ae.maximum_associations = settings.PACS_SCP_MAX_ASSOCIATIONS
    ae.dimse_timeout = settings.PACS_DIMSE_TIMEOUT
    ae.network_timeout = settings.PACS_NETWORK_TIMEOUT
    ae.acse_timeout = 30
    ae.add_supported_context(Verification, ALL_TRANSFER_SYNTAXES)
    return ae


def build_store_ae() -> PacsAE:
    """The AE of port 3000: Verification and every storage SOP class in every transfer
    syntax pydicom knows [ING-1], and Query/Retrieve FIND [QR-1]."""
    ae = _pacs_ae()
    for sop_class_uid in storage_sop_classes():
        # Both roles: a C-GET requestor asks to be the storage SCP (role selection).
        ae.add_supported_context(sop_class_uid, STORAGE_SYNTAXES, scu_role=True, scp_role=True)
    # Query/Retrieve MOVE and GET: Patient Root and Study Root [QR-2].
    for sop_class_uid in RETRIEVE_QUERY_MODELS:
        ae.add_supported_context(sop_class_uid, UNCOMPRESSED_IDENTIFIER_SYNTAXES)
    # Query/Retrieve FIND: Patient Root and Study Root [QR-1], uncompressed syntaxes.
    for sop_class_uid in FIND_QUERY_MODELS:
        ae.add_supported_context(sop_class_uid, DEFAULT_TRANSFER_SYNTAXES)
    return ae


def storage_sop_classes() -> list[str]:
    """pynetdicom's storage SOP classes plus every other non-retired "... Storage" SOP class
    in pydicom's dictionary (Color Palette, DICOS, Eddy Current, implant templates...).
    A DICOMDIR sent by C-STORE is accepted at negotiation and then refused by ingest with
    a reason (it is a file-set index, not an instance)."""
    from pydicom._uid_dict import UID_dictionary

    uids = {str(context.abstract_syntax) for context in AllStoragePresentationContexts}
    for uid, (name, kind, _info, retired, keyword) in UID_dictionary.items():
        is_storage = kind == "SOP Class" and name.endswith("Storage") and not retired
        if is_storage and "Commitment" not in name and uid not in uids:
            if uid_to_service_class(uid) is ServiceClass:
                # Unknown to pynetdicom: without this it would not route C-STORE to us.
                register_uid(uid, keyword, StorageServiceClass)
            uids.add(uid)
    return sorted(uids)


STORE_HANDLERS = [
    (evt.EVT_C_ECHO, handle_echo),
    (evt.EVT_C_STORE, handle_store),
    (evt.EVT_C_FIND, handle_find),
    (evt.EVT_SOP_EXTENDED, handle_sop_extended),
    (evt.EVT_REJECTED, _log_rejection),
]


def build_worklist_ae() -> PacsAE:
    """The AE of port ``PACS_MWL_PORT`` (3001): Verification, Modality Worklist FIND
    [MWL-2] and Modality Performed Procedure Step [MWL-3], uncompressed syntaxes."""
    ae = _pacs_ae()
    ae.add_supported_context(ModalityWorklistInformationFind, DEFAULT_TRANSFER_SYNTAXES)
    ae.add_supported_context(ModalityPerformedProcedureStep, DEFAULT_TRANSFER_SYNTAXES)
    return ae


WORKLIST_HANDLERS = [
    (evt.EVT_C_ECHO, handle_echo),
    (evt.EVT_C_FIND, handle_mwl_find),
    (evt.EVT_N_CREATE, handle_n_create),
    (evt.EVT_N_SET, handle_n_set),
    (evt.EVT_REJECTED, _log_rejection),
]


def prepare_temp_folder() -> Path:
    """Point Python's temp files (where pynetdicom receives datasets) at the PACS temp
    folder, and fail loudly if it is not writable [STO-6]."""
    folder = Path(get_runtime_settings(fresh=True).temp_dir)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-check-"):
            pass
    except OSError as exc:
        raise RuntimeError(f"The temp folder {folder} is not writable: {exc}") from exc
    tempfile.tempdir = str(folder)
    return folder


class StoreServer:
    """One SCP process: serves associations in threads until :meth:`stop`."""

    name = "DICOM SCP"
    handlers = STORE_HANDLERS
    build_ae = staticmethod(build_store_ae)

    def __init__(self, host: str, port: int, listen_fd: int | None = None) -> None:
        close_old_connections()
        self.temp_folder = prepare_temp_folder()
        self.ae = self.build_ae()
        self.server = self.ae.make_server(
            (host, port),
            ae_title=self.ae.ae_title,
            evt_handlers=self.handlers,
            server_class=PacsAssociationServer,
            request_handler=PacsRequestHandler,
            listen_fd=listen_fd,
        )
        self.ae._servers.append(self.server)  # as start_server does; shutdown() expects it
        self.server.contexts = _SharedContexts(self.server.contexts)
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True
        )
        connections.close_all()

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    def start(self) -> None:
        self._thread.start()
        logger.info(
            "%s %s listening on port %s (temp folder %s)",
            self.name,
            self.ae.ae_title,
            self.port,
            self.temp_folder,
        )

    def stop(self, drain_seconds: float) -> None:
        """Stop accepting, let running associations finish for up to ``drain_seconds``,
        then abort what is left."""
        self.server.shutdown()
        deadline = time.monotonic() + drain_seconds
        while self.server.active_associations and time.monotonic() < deadline:
            time.sleep(0.1)
        remaining = self.server.active_associations
        for assoc in remaining:
            assoc.abort()
        if remaining:
            logger.warning("Aborted %d association(s) still running at shutdown", len(remaining))
        logger.info("%s on port %s stopped", self.name, self.port)


class WorklistServer(StoreServer):
    """The MWL and MPPS SCP on ``PACS_MWL_PORT``, served by the same processes [MWL-2]."""

    name = "MWL/MPPS SCP"
    handlers = WORKLIST_HANDLERS
    build_ae = staticmethod(build_worklist_ae)
