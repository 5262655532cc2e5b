"""Serializers of storage folders [STO-1], [STO-2]."""

from __future__ import annotations

from django.db.models import Count, Sum
from django.db.models.functions import Coalesce
from rest_framework import serializers

from storages.exceptions import StoragePathInvalid
from storages.models import Storage
from storages.services import check_storage_path, storage_usage


def with_usage(queryset):
    """Annotate the space used by the archive and the number of studies, in the same query."""
    return queryset.annotate(
        used_bytes=Coalesce(Sum("instances__size_bytes"), 0),
        number_of_studies=Count("instances__series__study", distinct=True),
    )


class StorageSerializer(serializers.ModelSerializer):
    """A storage folder with the free space of its disk and what the archive uses there.

    ``available`` is false when the folder cannot be reached; the sizes are then null."""

    free_bytes = serializers.IntegerField(read_only=True, allow_null=True)
    total_bytes = serializers.IntegerField(read_only=True, allow_null=True)
    available = serializers.BooleanField(read_only=True)
    used_bytes = serializers.IntegerField(read_only=True)
    number_of_studies = serializers.IntegerField(read_only=True)

    class Meta:
        model = Storage
        fields = [
            "id",
            "path",
            "enabled",
            "description",
            "created_at",
            "free_bytes",
            "total_bytes",
            "available",
            "used_bytes",
            "number_of_studies",
        ]
        read_only_fields = ["created_at"]

    def validate_path(self, value: str) -> str:
        """Absolute, no ``..``, an existing folder the server can write to [STO-2]."""
        try:
            path = check_storage_path(value)
        except StoragePathInvalid as exc:
            raise serializers.ValidationError(str(exc)) from None
        others = Storage.objects.filter(path=path)
        if self.instance is not None:
            others = others.exclude(pk=self.instance.pk)
        if others.exists():
            raise serializers.ValidationError(f"{path} is already a storage.")
        return path

    def to_representation(self, instance: Storage) -> dict:
        if not hasattr(instance, "used_bytes"):
            instance = with_usage(Storage.objects.filter(pk=instance.pk)).get()
        usage = storage_usage(instance)
        instance.free_bytes = usage.free_bytes
        instance.total_bytes = usage.total_bytes
        instance.available = usage.available
        return super().to_representation(instance)


class StorageDeleteSerializer(serializers.Serializer):
    """Query parameters of a storage removal [STO-5]."""

    confirm = serializers.BooleanField(
        default=False, help_text="Must be true: removal cannot be undone."
    )
    remove_files = serializers.BooleanField(
        default=False, help_text="Also delete the files in the folder."
    )

    def validate_confirm(self, value: bool) -> bool:
        if not value:
            raise serializers.ValidationError(
                "Removing a storage drops its index rows and cannot be undone; "
                "repeat with confirm=true."
            )
        return value
