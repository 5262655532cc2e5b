"""API authentication [WEB-2]: console session with CSRF, and the master cookie."""

from __future__ import annotations

import ipaddress
import socket
import uuid

from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from pacs.config import get_runtime_settings


class CsrfSessionAuthentication(authentication.SessionAuthentication):
    """Session login; unsafe methods need the CSRF token (DRF enforces it).

    ``authenticate_header`` makes unauthenticated requests answer 401 rather than 403."""

    def authenticate_header(self, request) -> str:
        return 'Session realm="api"'


class MasterUser(AnonymousUser):
    """The principal of a request authenticated by the master cookie: full API access."""

    username = "master-cookie"

    @property
    def is_authenticated(self) -> bool:  # type: ignore[override]
        return True

    @property
    def is_staff(self) -> bool:  # type: ignore[override]
        return True


def _host_matches(client_address: str, allowed_host: str) -> bool:
    """True when the client address is the allowed IP, or one the allowed FQDN resolves to."""
    try:
        return ipaddress.ip_address(client_address) == ipaddress.ip_address(allowed_host)
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(allowed_host, None)
    except OSError:
        return False
    return any(info[4][0] == client_address for info in infos)


class MasterCookieAuthentication(authentication.BaseAuthentication):
    """The master cookie: a random UUID set in Settings, optionally bound to one host.

    It is meant for integrations (scripts, a RIS), so no CSRF token is asked for; the host
    restriction is what limits where it can be used from."""

    def authenticate(self, request):
        raw = request.COOKIES.get(settings.PACS_MASTER_COOKIE_NAME)
        if not raw:
            return None
        runtime = get_runtime_settings()
        try:
            presented = uuid.UUID(raw)
        except ValueError:
            raise exceptions.AuthenticationFailed("The master cookie is not valid.") from None
        if runtime.master_cookie is None or presented != runtime.master_cookie:
            raise exceptions.AuthenticationFailed("The master cookie is not valid.")
        if runtime.master_cookie_host and not _host_matches(
            request.META.get("REMOTE_ADDR", ""), runtime.master_cookie_host
        ):
            raise exceptions.PermissionDenied(
                "The master cookie is not accepted from this address."
            )
        return MasterUser(), None


class CsrfSessionScheme(OpenApiAuthenticationExtension):
    """OpenAPI description of the console session."""

    target_class = CsrfSessionAuthentication
    name = "session"

    def get_security_definition(self, auto_schema) -> dict:
        return {"type": "apiKey", "in": "cookie", "name": settings.SESSION_COOKIE_NAME}


class MasterCookieScheme(OpenApiAuthenticationExtension):
    """OpenAPI description of the master cookie."""

    target_class = MasterCookieAuthentication
    name = "masterCookie"

    def get_security_definition(self, auto_schema) -> dict:
        return {"type": "apiKey", "in": "cookie", "name": settings.PACS_MASTER_COOKIE_NAME}
