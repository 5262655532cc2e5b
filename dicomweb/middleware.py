"""The DICOMweb port [WEB-3] and the console's own origin for CORS.

gunicorn binds the web port (8000) and, when DICOMweb is enabled, the DICOMweb port (8010)
too; both reach the same Django application. A request that arrived on the DICOMweb port
(the listening socket's port, which gunicorn puts in SERVER_PORT) is resolved against the
DICOMweb URL map at the root, so ``http://pacs:8010/studies`` is
``http://pacs:8000/dicomweb/studies``; nothing else (console, REST API) is served there.

Cross-origin requests (django-cors-headers) are allowed from the origins configured in
PACS_CORS_ALLOWED_ORIGINS and, always, from the console's own origin: the same host on the
web port. A viewer served with the console can then query the DICOMweb port.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

from corsheaders.signals import check_request_enabled
from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.http import HttpRequest, HttpResponse
from django.http.request import split_domain_port

ROOT_URLCONF = "dicomweb.root_urls"


def on_dicomweb_port(request: HttpRequest) -> bool:
    """True when the request came in on the DICOMweb port (and that port is enabled)."""
    return settings.PACS_DICOMWEB_ENABLED and request.META.get("SERVER_PORT") == str(
        settings.PACS_DICOMWEB_PORT
    )


class DicomwebPortMiddleware:
    """Route requests of the DICOMweb port to the DICOMweb URL map at the root."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if on_dicomweb_port(request):
            request.urlconf = ROOT_URLCONF
        return self.get_response(request)


def allow_the_consoles_own_origin(sender, request: HttpRequest, **kwargs) -> bool:
    """django-cors-headers asks each receiver whether a request's Origin may be allowed
    beyond CORS_ALLOWED_ORIGINS: yes for the console's origin (same host name, web port)."""
    origin = request.headers.get("Origin", "")
    if not origin:
        return False
    try:
        parts = urlsplit(origin)
        origin_port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    except ValueError:
        return False
    try:
        host, _port = split_domain_port(request.get_host())
    except DisallowedHost:
        return False
    return (
        bool(host)
        and parts.hostname == host.strip("[]").lower()
        and origin_port == settings.PACS_HTTP_PORT
    )


check_request_enabled.connect(allow_the_consoles_own_origin, dispatch_uid="vesalius-console")
