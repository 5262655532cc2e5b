"""Device operations: C-ECHO [DEV] and certificate checks."""

from __future__ import annotations

import base64
import binascii
import re
import ssl
import time
from dataclasses import dataclass
from enum import StrEnum

from django.core.exceptions import ValidationError
from pynetdicom import AE, evt
from pynetdicom.sop_class import Verification
from pynetdicom.status import Status

from pacs.config import get_runtime_settings

ECHO_TIMEOUT_SECONDS = 10.0

_PEM_CERTIFICATE_RE = re.compile(
    r"-----BEGIN CERTIFICATE-----\s*([A-Za-z0-9+/=\s]+?)\s*-----END CERTIFICATE-----"
)


class EchoOutcome(StrEnum):
    """What the console shows after a C-ECHO."""

    SUCCESS = "success"  # the association was accepted and C-ECHO answered Success
    REFUSED = "refused"  # TCP connection refused, or the association rejected (A-ASSOCIATE-RJ)
    TIMEOUT = "timeout"  # no connection or no answer within the timeout
    ERROR = "error"  # aborted, or C-ECHO answered with a failure status


@dataclass(frozen=True)
class EchoResult:
    """The outcome of a C-ECHO with the time it took."""

    result: EchoOutcome
    elapsed_ms: float
    message: str
    status: int | None = None


def _tls_args(certificate: str) -> tuple[ssl.SSLContext, None]:
    """Trust exactly the device's certificate (the SCU certificate of [SET-4] comes later)."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cadata=certificate)
    context.check_hostname = False
    return context, None


def echo(
    ae_title: str,
    host: str,
    port: int,
    *,
    certificate: str | None = None,
    timeout: float = ECHO_TIMEOUT_SECONDS,
) -> EchoResult:
    """Send a C-ECHO (PS3.7 9.1.5) to a peer and report how it went and how long it took.

    ``certificate`` (PEM) makes the association use TLS and trust that certificate."""
    ae = AE(ae_title=get_runtime_settings().ae_title)
    ae.add_requested_context(Verification)
    ae.connection_timeout = timeout
    ae.acse_timeout = timeout
    ae.dimse_timeout = timeout
    ae.network_timeout = timeout
    connected: list[bool] = []
    handlers = [(evt.EVT_CONN_OPEN, lambda event: connected.append(True))]
    started = time.monotonic()

    def elapsed_ms() -> float:
        return round((time.monotonic() - started) * 1000, 1)

    try:
        assoc = ae.associate(
            host,
            port,
            ae_title=ae_title,
            evt_handlers=handlers,
            tls_args=_tls_args(certificate) if certificate else None,
        )
    except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
        return EchoResult(EchoOutcome.ERROR, elapsed_ms(), str(exc))
    try:
        if assoc.is_established:
            response = assoc.send_c_echo()
            code = int(response.Status) if response and "Status" in response else None
            assoc.release()
            if code == Status.SUCCESS:
                return EchoResult(EchoOutcome.SUCCESS, elapsed_ms(), "C-ECHO succeeded.", code)
            if code is None:
                return EchoResult(EchoOutcome.TIMEOUT, elapsed_ms(), "No C-ECHO response.")
            return EchoResult(
                EchoOutcome.ERROR, elapsed_ms(), f"C-ECHO failed with status 0x{code:04X}.", code
            )
        spent = time.monotonic() - started
        if assoc.is_rejected:
            return EchoResult(EchoOutcome.REFUSED, elapsed_ms(), "The association was rejected.")
        if not connected:
            if spent >= timeout * 0.95:
                return EchoResult(EchoOutcome.TIMEOUT, elapsed_ms(), "The connection timed out.")
            return EchoResult(EchoOutcome.REFUSED, elapsed_ms(), "The connection was refused.")
        if spent >= timeout * 0.95:
            return EchoResult(EchoOutcome.TIMEOUT, elapsed_ms(), "No answer to the association.")
        return EchoResult(EchoOutcome.ERROR, elapsed_ms(), "The association was aborted.")
    finally:
        ae.shutdown()


def validate_certificate(pem: str) -> None:
    """Accept a PEM X.509 certificate [DEV]; raise ValidationError otherwise.

    With the ``cryptography`` package the certificate is parsed; without it the PEM armour,
    the base64 body and the outer DER SEQUENCE are checked."""
    pem = pem.strip()
    match = _PEM_CERTIFICATE_RE.search(pem)
    if not match:
        raise ValidationError("Not a PEM certificate (-----BEGIN CERTIFICATE----- ... ).")
    try:
        der = base64.b64decode("".join(match.group(1).split()), validate=True)
    except (binascii.Error, ValueError):
        raise ValidationError("The certificate's base64 body is damaged.") from None
    try:
        from cryptography import x509
    except ImportError:
        if len(der) < 64 or der[0] != 0x30:
            raise ValidationError("The certificate is not X.509 (DER) data.") from None
        return
    try:
        x509.load_der_x509_certificate(der)
    except ValueError as exc:
        raise ValidationError(f"The certificate is not valid X.509: {exc}") from None
