"""Permissions beyond DRF's IsAuthenticated."""

from __future__ import annotations

from rest_framework.permissions import BasePermission

from pacs.api.authentication import MasterUser


class IsConsoleUser(BasePermission):
    """A logged-in user, not the master cookie: the cookie cannot manage itself."""

    message = "This needs a console login; the master cookie is not enough."

    def has_permission(self, request, view) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and not isinstance(user, MasterUser))
