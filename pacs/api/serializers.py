"""Serializers of the console's own endpoints: login, master cookie, runtime settings."""

from __future__ import annotations

import os

from django.conf import settings
from django.contrib.auth import get_user_model
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from pacs.models import RuntimeSettings
from pacs.validators import validate_host
from storages.exceptions import StoragePathInvalid
from storages.services import check_storage_path


class LoginSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=4096, trim_whitespace=False)


class UserSerializer(serializers.ModelSerializer):
    class Meta:
        model = get_user_model()
        fields = ["id", "username", "first_name", "last_name", "email", "is_staff"]


class MeSerializer(serializers.Serializer):
    """Who the request is authenticated as; ``user`` is null for the master cookie."""

    authenticated_by = serializers.ChoiceField(choices=["session", "basic", "master_cookie"])
    user = UserSerializer(allow_null=True)


class LoginResponseSerializer(serializers.Serializer):
    user = UserSerializer()
    csrf_token = serializers.CharField()


class CsrfSerializer(serializers.Serializer):
    csrf_token = serializers.CharField()


class MasterCookieSerializer(serializers.Serializer):
    """The master cookie [WEB-2]; ``host`` optionally restricts where it is accepted from."""

    master_cookie = serializers.UUIDField(read_only=True, allow_null=True)
    cookie_name = serializers.SerializerMethodField()
    host = serializers.CharField(
        source="master_cookie_host",
        max_length=255,
        required=False,
        allow_blank=True,
        validators=[validate_host],
        help_text="IP address or FQDN the cookie is accepted from; empty for any.",
    )

    def get_cookie_name(self, _obj) -> str:
        return settings.PACS_MASTER_COOKIE_NAME


class DatabaseInfoSerializer(serializers.Serializer):
    engine = serializers.CharField()
    host = serializers.CharField()
    port = serializers.CharField()
    name = serializers.CharField()
    user = serializers.CharField()


class ServerInfoSerializer(serializers.Serializer):
    """Read-only configuration, set by environment variables [SET-1]."""

    version = serializers.CharField()
    database = DatabaseInfoSerializer()
    dicom_port = serializers.IntegerField()
    mwl_port = serializers.IntegerField()
    dicom_tls_port = serializers.IntegerField()
    mwl_tls_port = serializers.IntegerField()
    http_port = serializers.IntegerField()
    dicomweb_port = serializers.IntegerField()
    dicomweb_enabled = serializers.BooleanField(
        help_text="DICOMweb at the root of dicomweb_port (also under /dicomweb/ on http_port)."
    )
    data_dir = serializers.CharField()
    page_size = serializers.IntegerField()


def server_info() -> dict:
    database = settings.DATABASES["default"]
    return {
        "version": settings.VERSION,
        "database": {
            "engine": database["ENGINE"].rsplit(".", 1)[-1],
            "host": str(database.get("HOST") or ""),
            "port": str(database.get("PORT") or ""),
            "name": str(database.get("NAME") or ""),
            "user": str(database.get("USER") or ""),
        },
        "dicom_port": settings.PACS_DICOM_PORT,
        "mwl_port": settings.PACS_MWL_PORT,
        "dicom_tls_port": settings.PACS_DICOM_TLS_PORT,
        "mwl_tls_port": settings.PACS_MWL_TLS_PORT,
        "http_port": settings.PACS_HTTP_PORT,
        "dicomweb_port": settings.PACS_DICOMWEB_PORT,
        "dicomweb_enabled": settings.PACS_DICOMWEB_ENABLED,
        "data_dir": str(settings.DATA_DIR),
        "page_size": settings.PACS_PAGE_SIZE,
    }


class RuntimeSettingsSerializer(serializers.ModelSerializer):
    """Runtime settings; changes apply to every process within seconds.

    ``environment_overrides`` lists the fields whose environment variable is set: those are
    written back to the environment's value at the next process start."""

    server = serializers.SerializerMethodField()
    environment_overrides = serializers.SerializerMethodField()

    class Meta:
        model = RuntimeSettings
        fields = [
            "ae_title",
            "accept_any_ae",
            "accession_crop",
            "overwrite_image",
            "free_space_limit_mb",
            "critical_free_space_mb",
            "temp_dir",
            "updated_at",
            "environment_overrides",
            "server",
        ]
        read_only_fields = ["updated_at"]

    @extend_schema_field(ServerInfoSerializer)
    def get_server(self, _obj) -> dict:
        return server_info()

    def get_environment_overrides(self, _obj) -> list[str]:
        return [
            field
            for field, (env_name, _read) in settings.PACS_RUNTIME_ENV.items()
            if env_name in os.environ
        ]

    def validate_temp_dir(self, value: str) -> str:
        """The temp folder must exist and be writable by the server [STO-6]."""
        try:
            return check_storage_path(value)
        except StoragePathInvalid as exc:
            raise serializers.ValidationError(str(exc)) from None
