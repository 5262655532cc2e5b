"""Console endpoints of the pacs app: login [WEB-2], master cookie [WEB-2], settings [SET-1]."""

from __future__ import annotations

import uuid

from django.contrib.auth import authenticate, login, logout
from django.middleware.csrf import get_token
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions, status
from rest_framework.authentication import BasicAuthentication
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from pacs.api.authentication import MasterUser
from pacs.api.permissions import IsConsoleUser
from pacs.api.serializers import (
    CsrfSerializer,
    LoginResponseSerializer,
    LoginSerializer,
    MasterCookieSerializer,
    MeSerializer,
    RuntimeSettingsSerializer,
    UserSerializer,
)
from pacs.config import get_runtime_settings, invalidate_runtime_settings


class LoginView(APIView):
    """Session login. CSRF-exempt like any unauthenticated DRF view, so that scripts can log
    in with one request; every later unsafe request needs the returned CSRF token."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(
        request=LoginSerializer,
        responses={200: LoginResponseSerializer},
        auth=[],
    )
    def post(self, request: Request) -> Response:
        serializer = LoginSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = authenticate(request, **serializer.validated_data)
        if user is None:
            raise exceptions.AuthenticationFailed("Wrong user name or password.")
        login(request, user)
        return Response({"user": UserSerializer(user).data, "csrf_token": get_token(request)})


class LogoutView(APIView):
    """End the session (CSRF-checked when a session is active)."""

    permission_classes = [AllowAny]

    @extend_schema(request=None, responses={204: None})
    def post(self, request: Request) -> Response:
        logout(request)
        return Response(status=status.HTTP_204_NO_CONTENT)


class MeView(APIView):
    """Who is logged in."""

    @extend_schema(responses=MeSerializer)
    def get(self, request: Request) -> Response:
        if isinstance(request.user, MasterUser):
            return Response({"authenticated_by": "master_cookie", "user": None})
        basic = isinstance(request.successful_authenticator, BasicAuthentication)
        return Response(
            {
                "authenticated_by": "basic" if basic else "session",
                "user": UserSerializer(request.user).data,
            }
        )


class CsrfView(APIView):
    """A CSRF token (also set as the ``csrftoken`` cookie) for the console's unsafe requests."""

    permission_classes = [AllowAny]

    @extend_schema(responses=CsrfSerializer, auth=[])
    def get(self, request: Request) -> Response:
        return Response({"csrf_token": get_token(request)})


class MasterCookieView(APIView):
    """Generate, regenerate, restrict or delete the master cookie [WEB-2]."""

    permission_classes = [IsConsoleUser]

    def _respond(self, code: int = status.HTTP_200_OK) -> Response:
        return Response(MasterCookieSerializer(get_runtime_settings(fresh=True)).data, status=code)

    def _save(self, request: Request, *, cookie: uuid.UUID | None, change_cookie: bool) -> None:
        row = get_runtime_settings(fresh=True)
        serializer = MasterCookieSerializer(row, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        fields = ["updated_at"]
        if "master_cookie_host" in serializer.validated_data:
            row.master_cookie_host = serializer.validated_data["master_cookie_host"]
            fields.append("master_cookie_host")
        if change_cookie:
            row.master_cookie = cookie
            fields.append("master_cookie")
        row.save(update_fields=fields)
        invalidate_runtime_settings()

    @extend_schema(responses=MasterCookieSerializer)
    def get(self, request: Request) -> Response:
        return self._respond()

    @extend_schema(
        request=MasterCookieSerializer,
        responses=MasterCookieSerializer,
        description="Generate a new cookie (the old one stops working); optionally set host.",
    )
    def post(self, request: Request) -> Response:
        self._save(request, cookie=uuid.uuid4(), change_cookie=True)
        return self._respond(status.HTTP_201_CREATED)

    @extend_schema(
        request=MasterCookieSerializer,
        responses=MasterCookieSerializer,
        description="Change the host restriction only.",
    )
    def patch(self, request: Request) -> Response:
        self._save(request, cookie=None, change_cookie=False)
        return self._respond()

    @extend_schema(responses={204: None})
    def delete(self, request: Request) -> Response:
        row = get_runtime_settings(fresh=True)
        row.master_cookie = None
        row.save(update_fields=["master_cookie", "updated_at"])
        invalidate_runtime_settings()
        return Response(status=status.HTTP_204_NO_CONTENT)


class RuntimeSettingsView(APIView):
    """Runtime settings (editable) and the read-only server configuration [SET-1]."""

    permission_classes = [IsAuthenticated]

    @extend_schema(responses=RuntimeSettingsSerializer)
    def get(self, request: Request) -> Response:
        return Response(RuntimeSettingsSerializer(get_runtime_settings(fresh=True)).data)

    @extend_schema(
        request=RuntimeSettingsSerializer,
        responses={200: RuntimeSettingsSerializer, 400: OpenApiResponse(description="Invalid")},
    )
    def patch(self, request: Request) -> Response:
        serializer = RuntimeSettingsSerializer(
            get_runtime_settings(fresh=True), data=request.data, partial=True
        )
        serializer.is_valid(raise_exception=True)
        serializer.save()
        invalidate_runtime_settings()
        return Response(serializer.data)
