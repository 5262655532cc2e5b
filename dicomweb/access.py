"""Who may use DICOMweb [WADO-DEV], [WEB-2], and the base view of every DICOMweb resource.

A request authenticated as a console user (Basic or session) or by the master cookie may do
everything. Otherwise the client address must be a listed ``WadoDevice`` with the permission
the service needs: QIDO-RS needs FIND, WADO-RS and WADO-URI need DOWNLOAD, STOW-RS needs UPLOAD.
No credentials from an unlisted address answers 401; a listed address without the permission,
or the master cookie from a host it is not accepted from, answers 403 — always as the API's
JSON error body.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
import time

from django.contrib.auth import get_user_model
from rest_framework import authentication, exceptions
from rest_framework.permissions import BasePermission
from rest_framework.renderers import JSONRenderer
from rest_framework.views import APIView

from devices.models import WadoDevice
from pacs.api.authentication import (
    CsrfSessionAuthentication,
    MasterCookieAuthentication,
    _host_matches,
)
from pacs.api.negotiation import IgnoreAcceptNegotiation


class RememberedBasicAuthentication(authentication.BasicAuthentication):
    """HTTP Basic with a console login, the password check remembered for a minute.

    A viewer sends its Basic credentials with every request (study list, metadata, each
    frame), and each check costs a deliberately slow password hash (~400 ms of CPU here).
    A successful check is remembered per process under an HMAC of the credentials (with a
    random per-process key), for ``REMEMBER_SECONDS``, and only while the user is active and
    the stored password hash is the one that was checked: a password change or a deactivation
    ends it at once. Failed checks are never remembered."""

    REMEMBER_SECONDS = 60
    _MAX_ENTRIES = 1024
    _key = secrets.token_bytes(32)
    _checked: dict[bytes, tuple[float, int, str]] = {}  # digest -> (until, user pk, hash)

    def authenticate_credentials(self, userid, password, request=None):
        digest = hmac.new(self._key, f"{userid}\0{password}".encode(), "sha256").digest()
        now = time.monotonic()
        remembered = self._checked.get(digest)
        if remembered is not None and remembered[0] > now:
            user = get_user_model().objects.filter(pk=remembered[1], is_active=True).first()
            if user is not None and user.password == remembered[2]:
                return user, None
        user, auth = super().authenticate_credentials(userid, password, request)
        if len(self._checked) >= self._MAX_ENTRIES:
            self._checked.clear()
        self._checked[digest] = (now + self.REMEMBER_SECONDS, user.pk, user.password)
        return user, auth


DICOMWEB_AUTHENTICATION_CLASSES = [
    RememberedBasicAuthentication,
    CsrfSessionAuthentication,
    MasterCookieAuthentication,
]


def wado_device_for(client_address: str) -> WadoDevice | None:
    """The WADO device listed for this client address: an IP entry equal to it, else an FQDN
    entry that resolves to it. The table is small (one row per DICOMweb client)."""
    try:
        client_ip = ipaddress.ip_address(client_address)
    except ValueError:
        return None
    by_name = []
    for device in WadoDevice.objects.all():
        try:
            if ipaddress.ip_address(device.address) == client_ip:
                return device
        except ValueError:
            by_name.append(device)
    return next(
        (device for device in by_name if _host_matches(client_address, device.address)), None
    )


class _WadoDevicePermission(BasePermission):
    """Console user or master cookie, else a WADO device with ``device_flag`` set."""

    device_flag: str
    service: str

    def has_permission(self, request, view) -> bool:
        user = request.user
        if user is not None and user.is_authenticated:
            return True
        device = wado_device_for(request.META.get("REMOTE_ADDR", ""))
        if device is None:
            raise exceptions.NotAuthenticated(
                "Authentication credentials were not provided, and this address is not a "
                "listed DICOMweb client."
            )
        if not getattr(device, self.device_flag):
            raise exceptions.PermissionDenied(
                f"This DICOMweb client may not use {self.service} "
                f"(it lacks the {self.device_flag.upper()} permission)."
            )
        return True


class MayFind(_WadoDevicePermission):
    """QIDO-RS."""

    device_flag = "find"
    service = "QIDO-RS"


class MayDownload(_WadoDevicePermission):
    """WADO-RS and WADO-URI."""

    device_flag = "download"
    service = "WADO-RS / WADO-URI"


class MayUpload(_WadoDevicePermission):
    """STOW-RS."""

    device_flag = "upload"
    service = "STOW-RS"


def absolute_url(request, path: str) -> str:
    """``request.build_absolute_uri(path)`` for URLs handed to clients (RetrieveURL).

    dicomweb-client sends a Host header without the port; the URL would then point at port
    80. When the Host has no port, no proxy says where the request came from
    (X-Forwarded-Host / -Proto) and the request arrived on a port that is not the scheme's
    default, that port is added."""
    url = request.build_absolute_uri(path)
    scheme, _, rest = url.partition("://")
    host, slash, tail = rest.partition("/")
    port = request.META.get("SERVER_PORT", "")
    default_port = "443" if scheme == "https" else "80"
    proxied = "HTTP_X_FORWARDED_HOST" in request.META or "HTTP_X_FORWARDED_PROTO" in request.META
    if not proxied and port and port != default_port and ":" not in host.rpartition("]")[2]:
        host = f"{host}:{port}"
    return f"{scheme}://{host}{slash}{tail}"


class DicomwebView(APIView):
    """Base of every DICOMweb view.

    Views read Accept themselves (PS3.18 8.3.3 media types, transfer-syntax parameters) and
    raise ``NotAcceptable`` when nothing fits; the negotiation here never answers 406 on its
    own, so errors always come out as the API's JSON body. Request bodies are read as a
    stream by the view (STOW-RS), never parsed by DRF. The resources are described in
    docs/conformance.md, not in the REST API's OpenAPI document."""

    authentication_classes = DICOMWEB_AUTHENTICATION_CLASSES
    content_negotiation_class = IgnoreAcceptNegotiation
    renderer_classes = [JSONRenderer]
    parser_classes: list = []
    schema = None
